/// Byte-level BPE (`tokenizer.ggml.model = gpt2`), following llama.cpp's `llm_tokenizer_bpe_session`:
/// pre-tokenize, start every word from its single-byte symbols, and repeatedly merge the adjacent
/// pair with the lowest merge rank (ties: the leftmost pair). A min-heap of candidate pairs over a
/// doubly linked list of symbols makes a word of n bytes cost O(n log n), not O(n²).
extension Tokenizer {
    func encodeBytePair(_ text: String, into output: inout [Int]) {
        var text = text
        text.withUTF8 { utf8 in
            var scalars: [UInt32] = []
            var starts: [Int] = []  // starts: [scalars.count + 1], byte offset of each scalar, then utf8.count
            var classes: [UInt8] = []
            scalars.reserveCapacity(utf8.count)
            starts.reserveCapacity(utf8.count + 1)
            classes.reserveCapacity(utf8.count)
            TokenizerUTF8.decode(utf8) { value, offset in
                scalars.append(value)
                starts.append(offset)
                classes.append(PreTokenizerClass.of(value))
            }
            starts.append(utf8.count)

            var work = BytePairWorkspace()
            let pre = preTokenizer ?? .gpt2
            pre.split(scalars: scalars, classes: classes) { first, end in
                let word = UnsafeBufferPointer(rebasing: utf8[starts[first]..<starts[end]])
                encodeWord(word, work: &work, into: &output)
            }
        }
    }

    /// Encodes one pre-tokenized word (its raw UTF-8 bytes).
    private func encodeWord(_ word: UnsafeBufferPointer<UInt8>, work: inout BytePairWorkspace, into output: inout [Int])
    {
        let n = word.count
        if n == 1 {
            appendByteFallback(word[0], into: &output)
            return
        }
        work.reset(count: n)
        for i in 0..<n {
            work.ids[i] = byteTokens[Int(word[i])]
            work.prev[i] = Int32(i - 1)
            work.next[i] = i + 1 < n ? Int32(i + 1) : -1
        }
        for i in 0..<(n - 1) { pushPair(left: Int32(i), right: Int32(i + 1), work: &work) }

        while let pair = work.heap.popMin() {
            let l = Int(pair.left), r = Int(pair.right)
            // Stale if either side has since merged (its id changed or it is gone) or they are no
            // longer neighbours; llama.cpp compares the pair's text for the same effect.
            guard work.next[l] == pair.right, work.ids[l] == pair.leftID, work.ids[r] == pair.rightID else { continue }
            work.ids[l] = pair.result
            work.ids[r] = -2  // removed
            let after = work.next[r]
            work.next[l] = after
            if after >= 0 { work.prev[Int(after)] = pair.left }
            if work.prev[l] >= 0 { pushPair(left: work.prev[l], right: pair.left, work: &work) }
            if after >= 0 { pushPair(left: pair.left, right: after, work: &work) }
        }

        var i: Int32 = 0
        while i >= 0 {
            let id = work.ids[Int(i)]
            if id >= 0 {
                output.append(Int(id))
            } else {
                // Only a byte whose symbol is missing from the vocabulary can remain unmerged here.
                appendByteFallback(word[Int(i)], into: &output)
            }
            i = work.next[Int(i)]
        }
    }

    @inline(__always)
    private func pushPair(left: Int32, right: Int32, work: inout BytePairWorkspace) {
        let a = work.ids[Int(left)], b = work.ids[Int(right)]
        guard a >= 0, b >= 0 else { return }
        guard let merge = merges[UInt64(UInt32(a)) << 32 | UInt64(UInt32(b))] else { return }
        work.heap.push(
            BytePairCandidate(rank: merge.rank, left: left, right: right, leftID: a, rightID: b, result: merge.result))
    }
}

/// A mergeable adjacent pair. Ordered by (rank, left position), as llama.cpp's `llm_bigram_bpe`.
struct BytePairCandidate {
    var rank: Int32
    var left: Int32
    var right: Int32
    var leftID: Int32
    var rightID: Int32
    var result: Int32

    @inline(__always)
    static func precedes(_ a: BytePairCandidate, _ b: BytePairCandidate) -> Bool {
        a.rank < b.rank || (a.rank == b.rank && a.left < b.left)
    }
}

/// Buffers reused across the words of one `encode` call.
struct BytePairWorkspace {
    /// ids/prev/next: [word bytes]; ids[i] < 0 marks a missing byte symbol (-1) or a merged-away one (-2).
    var ids: [Int32] = []
    var prev: [Int32] = []
    var next: [Int32] = []
    var heap = BytePairHeap()

    mutating func reset(count: Int) {
        if ids.count < count {
            ids = [Int32](repeating: 0, count: count)
            prev = ids
            next = ids
        }
        heap.removeAll()
    }
}

/// A binary min-heap of ``BytePairCandidate`` (small and specialised, so no generic overhead).
struct BytePairHeap {
    private var items: [BytePairCandidate] = []

    mutating func removeAll() { items.removeAll(keepingCapacity: true) }

    mutating func push(_ item: BytePairCandidate) {
        items.append(item)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard BytePairCandidate.precedes(items[child], items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func popMin() -> BytePairCandidate? {
        guard let last = items.popLast() else { return nil }
        guard !items.isEmpty else { return last }
        let top = items[0]
        items[0] = last
        var parent = 0
        let n = items.count
        while true {
            let left = 2 * parent + 1
            guard left < n else { break }
            let right = left + 1
            let best = right < n && BytePairCandidate.precedes(items[right], items[left]) ? right : left
            guard BytePairCandidate.precedes(items[best], items[parent]) else { break }
            items.swapAt(best, parent)
            parent = best
        }
        return top
    }
}

/// UTF-8 → scalars. Swift strings hold valid UTF-8, but the decoder still treats any malformed byte
/// as U+FFFD of length 1 (llama.cpp `unicode_cpts_from_utf8`) rather than trusting it.
enum TokenizerUTF8 {
    /// Calls `body(scalar, byteOffset)` for each scalar in order.
    @inline(__always)
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>, _ body: (UInt32, Int) -> Void) {
        let n = bytes.count
        var i = 0
        while i < n {
            let b0 = bytes[i]
            if b0 < 0x80 {
                body(UInt32(b0), i)
                i += 1
                continue
            }
            var length = 0
            var value: UInt32 = 0
            if b0 & 0xE0 == 0xC0 {
                length = 2
                value = UInt32(b0 & 0x1F)
            } else if b0 & 0xF0 == 0xE0 {
                length = 3
                value = UInt32(b0 & 0x0F)
            } else if b0 & 0xF8 == 0xF0 {
                length = 4
                value = UInt32(b0 & 0x07)
            }
            var ok = length > 0 && i + length <= n
            if ok {
                for k in 1..<length {
                    let b = bytes[i + k]
                    if b & 0xC0 != 0x80 {
                        ok = false
                        break
                    }
                    value = value << 6 | UInt32(b & 0x3F)
                }
            }
            if ok {
                body(value, i)
                i += length
            } else {
                body(0xFFFD, i)
                i += 1
            }
        }
    }
}
