/// The project's portable, seedable pseudo-random generator.
///
/// Algorithm: xoshiro256** (Blackman & Vigna, "Scrambled linear pseudorandom number generators",
/// 2018), its 256-bit state filled from the seed by SplitMix64 (Steele, Lea & Flood 2014), as the
/// authors recommend. Both are defined on 64-bit unsigned integers with wrapping arithmetic only,
/// so a seed yields the same stream on every machine and every Swift version.
///
/// Uniform doubles are `Double(next() >> 11) * 2^-53`, in `[0, 1)`. Use ``nextUnit()`` (not
/// `Double.random(in:using:)`, whose algorithm the standard library does not promise to keep).
public struct ChorusRandom: RandomNumberGenerator, Sendable, Equatable {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    /// A generator whose whole stream is determined by `seed`.
    public init(seed: UInt64) {
        var sm = seed
        func splitMix(_ x: inout UInt64) -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitMix(&sm)
        s1 = splitMix(&sm)
        s2 = splitMix(&sm)
        s3 = splitMix(&sm)
    }

    /// An independent stream for a sub-task (a session, a worker, a position): the seed mixed with
    /// `stream` through SplitMix64, so `derived(1)` and `derived(2)` do not overlap in practice.
    public func derived(_ stream: UInt64) -> ChorusRandom {
        var copy = self
        return ChorusRandom(seed: copy.next() ^ (stream &* 0xD1B5_4A32_D192_ED03))
    }

    public mutating func next() -> UInt64 {
        let result = rotateLeft(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotateLeft(s3, 45)
        return result
    }

    @inline(__always)
    private func rotateLeft(_ x: UInt64, _ k: UInt64) -> UInt64 {
        (x << k) | (x >> (64 &- k))
    }
}

extension RandomNumberGenerator {
    /// A uniform double in `[0, 1)` with 53 random bits: `Double(next() >> 11) * 2^-53`.
    /// Defined here (rather than `Double.random`) so that a seed reproduces a run on any platform.
    @inlinable
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }
}
