/// The support's token ids ordered by `q/p` ascending (q = 0 first; near-ties within float32
/// rounding in any order): a radix sort of (float32 ratio bits, index) pairs.
func supportSortedByRatio(q: [Double], p: [Double], support: [Int]) -> [Int32] {
    let m = support.count
    let packed = UnsafeMutablePointer<UInt64>.allocate(capacity: max(2 * m, 1))
    defer { packed.deallocate() }
    for i in 0..<m {
        let t = support[i]
        packed[i] = UInt64(ratioKey(q: q[t], p: p[t])) << 32 | UInt64(i)
    }
    radixSortHigh32(packed, scratch: packed + m, count: m)
    return (0..<m).map { Int32(support[Int(packed[$0] & 0xFFFF_FFFF)]) }
}

/// Sorts `values` ascending by their high 32 bits (stable), LSD radix with three 11-bit digits.
/// `scratch` must hold `count` values; the result ends in `values`.
func radixSortHigh32(_ values: UnsafeMutablePointer<UInt64>, scratch: UnsafeMutablePointer<UInt64>, count: Int) {
    // One read builds the three digit histograms (bits 32–42, 43–53, 54–63).
    let counts = UnsafeMutablePointer<Int>.allocate(capacity: 3 * 2048)
    defer { counts.deallocate() }
    counts.initialize(repeating: 0, count: 3 * 2048)
    for i in 0..<count {
        let v = values[i]
        counts[Int((v >> 32) & 0x7FF)] += 1
        counts[2048 + Int((v >> 43) & 0x7FF)] += 1
        counts[4096 + Int(v >> 54)] += 1
    }
    for pass in 0..<3 { exclusivePrefixSums(counts + pass * 2048, count: 2048) }
    var source = values, destination = scratch
    var shift: UInt64 = 32
    for pass in 0..<3 {
        let offsets = counts + pass * 2048
        for i in 0..<count {
            let v = source[i]
            let digit = Int((v >> shift) & 0x7FF)
            destination[offsets[digit]] = v
            offsets[digit] += 1
        }
        swap(&source, &destination)
        shift += 11
    }
    // After three passes the sorted data is in `scratch`; copy back.
    values.update(from: source, count: count)
}
