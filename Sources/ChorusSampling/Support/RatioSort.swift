/// One support entry while it is sorted by `q/p`: its index in the support, the sort key, and the
/// values the prefix scan needs, carried along so the scan reads them in rank order instead of
/// gathering them at random from two arrays of n entries afterwards (issue 13). After
/// ``RatioSort/sortInPlace(count:_:)`` record j is rank j's: the records are the rank tables.
struct RatioRecord {
    /// Index into the draft's support.
    var index: UInt32
    /// The float32 bit pattern of `q/p` (non-negative, so the integer order is the numeric order).
    var key: UInt32
    var p: Double
    var q: Double

    /// Rank order: by key, ties by support index.
    @inline(__always)
    func precedes(key: UInt32, index: UInt32) -> Bool { self.key < key || (self.key == key && self.index < index) }
}

/// The sort key of a support entry: the float32 bits of `q/p` (p > 0 on the support).
@inline(__always)
func ratioKey(q: Double, p: Double) -> UInt32 { Float(q / p).bitPattern }

/// The ratio sort of the quantile-key build (`../shared/spec/OPTIMAL.md` step 1): the draft's support
/// ordered by the float32 bits of `q/p` ascending, ties in support (token) order — the same order as
/// a stable LSD radix sort of `(ratio bits, index)`, so the tables come out bit for bit as before.
///
/// Cache-conscious two-level radix sort (MSD then LSD; e.g. Satish, Harris, Garland, "Designing
/// Efficient Sorting Algorithms for Manycore GPUs", IPDPS 2009, local sorts per bucket; and the
/// classic LSD radix sort, Knuth TAOCP vol. 3 §5.2.5):
/// 1. one sequential pass computes the keys and a histogram of the top 11 bits;
/// 2. one scatter pass recomputes each key (a division is cheaper than a stored key's round trip
///    through memory) and moves the entry, with its p and q, into its top-digit bucket (stable);
/// 3. ``sortInPlace(count:_:)`` sorts each bucket by the low 21 bits — insertion sort below 48
///    entries, else stable LSD passes (11 + 10 bits, or 3 × 7 below 2048 entries) over 8-byte
///    (bits, position) words in a bucket-sized scratch that stays in cache — permutes the bucket's records into rank order in
///    place, and hands them to the scan.
/// At n = 151,936 the keys span a few dozen top-digit buckets of a few thousand entries, so only step 2
/// touches memory out of cache; nothing of size m is written besides the records themselves.
struct RatioSort {
    /// Counters: top digit of each half [2 × 2048], bucket starts [2049], one low digit [2048].
    static let countsSize = 2 * 2048 + 2049 + 2048
    static let insertionLimit = 48

    /// records: [m], grouped by top digit after ``sort(count:q:support:dense:sparse:)``, in rank
    /// order after ``sortInPlace(count:_:)``.
    let records: UnsafeMutablePointer<RatioRecord>
    /// local: [2m] sort words and their scratch; only twice the largest bucket is touched.
    let local: UnsafeMutablePointer<UInt64>
    /// bucket: [m] a copy of one bucket's records while it is permuted (largest bucket touched).
    let bucket: UnsafeMutablePointer<RatioRecord>
    let counts: UnsafeMutablePointer<Int32>

    private var bucketStart: UnsafeMutablePointer<Int32> { counts + 2 * 2048 }
    private var lowCounts: UnsafeMutablePointer<Int32> { counts + 2 * 2048 + 2049 }

    /// Steps 1 and 2. The draft probability of `support[i]` is `dense[support[i]]` (a dense law) or
    /// `sparse[i]` (the support's values); give exactly one.
    ///
    /// The histogram reads the support as two halves in step, each counted separately: two independent
    /// chains of counter updates instead of one (a run of equal top digits otherwise waits on its own
    /// store). The scatter is one stable pass in support order.
    func sort(
        count m: Int, q: UnsafeBufferPointer<Double>, support: UnsafeBufferPointer<Int>,
        dense: UnsafePointer<Double>?, sparse: UnsafePointer<Double>?
    ) {
        let first = counts, second = counts + 2048
        first.initialize(repeating: 0, count: 2 * 2048)
        // A support of all n tokens is 0..<n (ascending, distinct): then the token is the index and the
        // 1.2 MB support array is not read (the dense laws of the selection bench).
        let identity = m == q.count
        @inline(__always) func token(_ i: Int) -> Int { identity ? i : support[i] }
        @inline(__always) func probability(_ i: Int) -> Double {
            if let sparse { return sparse[i] }
            return dense.unsafelyUnwrapped[token(i)]
        }
        @inline(__always) func key(_ i: Int) -> UInt32 { ratioKey(q: q[token(i)], p: probability(i)) }
        let half = m / 2
        for i in 0..<half {
            first[Int(key(i) >> 21)] += 1
            second[Int(key(half + i) >> 21)] += 1
        }
        if m > 2 * half { second[Int(key(m - 1) >> 21)] += 1 }
        var total: Int32 = 0
        for d in 0..<2048 {
            bucketStart[d] = total
            let c = first[d] + second[d]
            first[d] = total
            total += c
        }
        bucketStart[2048] = total
        for i in 0..<m {
            let p = probability(i), qi = q[token(i)]
            let key = ratioKey(q: qi, p: p)
            let d = Int(key >> 21)
            let position = Int(first[d])
            first[d] += 1
            records[position] = RatioRecord(index: UInt32(i), key: key, p: p, q: qi)
        }
    }

    /// Step 3: puts the records in rank order (record j becomes rank j's) and calls `body(j, record)`
    /// for every rank j ascending.
    func sortInPlace(count m: Int, _ body: (Int, RatioRecord) -> Void) {
        for d in 0..<2048 {
            let start = Int(bucketStart[d]), end = Int(bucketStart[d + 1])
            let size = end - start
            if size == 0 { continue }
            if size == 1 {
                body(start, records[start])
                continue
            }
            let words = local
            let source = records + start
            for l in 0..<size {
                let record = source[l]
                bucket[l] = record
                words[l] = UInt64(record.key & 0x1F_FFFF) << 32 | UInt64(l)
            }
            let sorted: UnsafeMutablePointer<UInt64>
            if size < Self.insertionLimit {
                // Stable: a word moves past strictly larger words only (positions break ties).
                for a in 1..<size {
                    let v = words[a]
                    var b = a
                    while b > 0, words[b - 1] > v {
                        words[b] = words[b - 1]
                        b -= 1
                    }
                    words[b] = v
                }
                sorted = words
            } else {
                sorted = sortLow21(words, scratch: local + size, count: size)
            }
            for l in 0..<size {
                let record = bucket[Int(sorted[l] & 0xFFFF_FFFF)]
                source[l] = record
                body(start + l, record)
            }
        }
    }

    /// Stable LSD sort of `count` words by bits 32–52; returns where the sorted words are (`words` or
    /// `scratch`). Large buckets take two passes of 11 and 10 bits; below 2048 words three passes of 7
    /// bits, whose 128-entry histograms cost less to clear and scan than the words they sort.
    private func sortLow21(
        _ words: UnsafeMutablePointer<UInt64>, scratch: UnsafeMutablePointer<UInt64>, count: Int
    ) -> UnsafeMutablePointer<UInt64> {
        if count >= 2048 {
            lsdPass(words, into: scratch, count: count, shift: 32, bits: 11)
            lsdPass(scratch, into: words, count: count, shift: 43, bits: 10)
            return words
        }
        lsdPass(words, into: scratch, count: count, shift: 32, bits: 7)
        lsdPass(scratch, into: words, count: count, shift: 39, bits: 7)
        lsdPass(words, into: scratch, count: count, shift: 46, bits: 7)
        return scratch
    }

    /// One stable counting-sort pass of `count` words by the `bits`-bit digit at `shift`.
    @inline(__always)
    private func lsdPass(
        _ source: UnsafeMutablePointer<UInt64>, into destination: UnsafeMutablePointer<UInt64>, count: Int,
        shift: UInt64, bits: UInt64
    ) {
        let counts = lowCounts, mask: UInt64 = (1 << bits) - 1, size = 1 << Int(bits)
        counts.initialize(repeating: 0, count: size)
        for l in 0..<count { counts[Int((source[l] >> shift) & mask)] += 1 }
        exclusivePrefixSums(counts, count: size)
        for l in 0..<count {
            let v = source[l]
            let d = Int((v >> shift) & mask)
            destination[Int(counts[d])] = v
            counts[d] += 1
        }
    }
}

/// Replaces `counts[0..<count]` by their exclusive prefix sums (histogram → bucket offsets).
@inline(__always)
func exclusivePrefixSums<T: FixedWidthInteger>(_ counts: UnsafeMutablePointer<T>, count: Int) {
    var total: T = 0
    for d in 0..<count {
        let c = counts[d]
        counts[d] = total
        total += c
    }
}
