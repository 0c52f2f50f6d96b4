/// SentencePiece-style BPE (`tokenizer.ggml.model = llama`), following llama.cpp's
/// `llm_tokenizer_spm_session` and the `LLAMA_VOCAB_TYPE_SPM` branch of `llama_vocab::tokenize`:
///
/// 1. prepend a space when ``Tokenizer/addSpacePrefix`` (llama.cpp: `add_space_prefix`, default
///    true for `llama`), then replace every space with U+2581;
/// 2. start from one symbol per UTF-8 character;
/// 3. repeatedly merge the adjacent pair whose concatenated text is a token with the highest score
///    (ties: the leftmost pair), using a max-heap of candidates and a linked list of symbols;
/// 4. emit each final symbol's token; a symbol that is not a token is emitted byte by byte as
///    `<0xXX>` tokens (SentencePiece `byte_fallback`), else the one-byte token, else ``unknown``.
///
/// llama.cpp additionally re-splits a final symbol that is not a token through the merge history
/// (`resegment`); that path cannot be taken here, because a pair is only merged when its
/// concatenation is a token, so every multi-character symbol is a token.
extension Tokenizer {
    func encodeSentencePiece(_ text: String, into output: inout [Int]) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count + 3)
        if addSpacePrefix { bytes.append(contentsOf: [0xE2, 0x96, 0x81]) }
        for b in text.utf8 {
            if b == 0x20 { bytes.append(contentsOf: [0xE2, 0x96, 0x81]) } else { bytes.append(b) }
        }
        guard !bytes.isEmpty else { return }

        // Symbols: start/length in `bytes`; a merged-away symbol has length 0.
        var start: [Int] = []
        var length: [Int] = []
        var offset = 0
        while offset < bytes.count {
            let n = min(Self.utf8Length(lead: bytes[offset]), bytes.count - offset)
            start.append(offset)
            length.append(n)
            offset += n
        }
        let count = start.count
        var prev = (0..<count).map { $0 - 1 }
        var next = (0..<count).map { $0 + 1 < count ? $0 + 1 : -1 }
        var heap: [SentencePiecePair] = []

        func tokenID(_ from: Int, _ byteCount: Int) -> Int32? {
            idsByText[Array(bytes[from..<(from + byteCount)])]
        }
        func tryPair(_ left: Int, _ right: Int) {
            guard left >= 0, right >= 0 else { return }
            let size = length[left] + length[right]
            guard let id = tokenID(start[left], size) else { return }
            SentencePiecePair.push(
                SentencePiecePair(score: scores[Int(id)], left: left, right: right, size: size), into: &heap)
        }

        for i in 1..<max(count, 1) { tryPair(i - 1, i) }
        while let pair = SentencePiecePair.pop(from: &heap) {
            let l = pair.left, r = pair.right
            // Stale if either side changed since the pair was scored (llama.cpp checks the sizes).
            guard length[l] > 0, length[r] > 0, length[l] + length[r] == pair.size, next[l] == r else { continue }
            length[l] += length[r]
            length[r] = 0
            next[l] = next[r]
            if next[r] >= 0 { prev[next[r]] = l }
            tryPair(prev[l], l)
            tryPair(l, next[l])
        }

        var i = 0
        while i >= 0 {
            if let id = tokenID(start[i], length[i]) {
                output.append(Int(id))
            } else {
                for b in bytes[start[i]..<(start[i] + length[i])] { appendByteFallback(b, into: &output) }
            }
            i = next[i]
        }
    }

    /// Bytes in the UTF-8 sequence a lead byte starts (llama.cpp `unicode_len_utf8`: 1 for
    /// continuation or invalid bytes).
    static func utf8Length(lead: UInt8) -> Int {
        switch lead {
        case 0xF0...0xF7: return 4
        case 0xE0...0xEF: return 3
        case 0xC0...0xDF: return 2
        default: return 1
        }
    }
}

/// A mergeable pair for SentencePiece BPE; the heap pops the highest score, then the leftmost
/// (llama.cpp `llm_bigram_spm::comparator`).
struct SentencePiecePair {
    var score: Float
    var left: Int
    var right: Int
    /// Byte length of the merged text when the pair was scored.
    var size: Int

    @inline(__always)
    static func precedes(_ a: SentencePiecePair, _ b: SentencePiecePair) -> Bool {
        a.score > b.score || (a.score == b.score && a.left < b.left)
    }

    static func push(_ item: SentencePiecePair, into heap: inout [SentencePiecePair]) {
        heap.append(item)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard precedes(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    static func pop(from heap: inout [SentencePiecePair]) -> SentencePiecePair? {
        guard let last = heap.popLast() else { return nil }
        guard !heap.isEmpty else { return last }
        let top = heap[0]
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            guard left < heap.count else { break }
            let right = left + 1
            let best = right < heap.count && precedes(heap[right], heap[left]) ? right : left
            guard precedes(heap[best], heap[parent]) else { break }
            heap.swapAt(best, parent)
            parent = best
        }
        return top
    }
}
