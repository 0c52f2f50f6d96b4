import Foundation
import Testing

@testable import ChorusModel

/// SplitMix64: a tiny seeded generator so every mutation is reproducible from the seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Seeded random damage to a real model file: whatever the damage, parsing either succeeds with
/// self-consistent results or throws a ``ModelError`` — it never crashes, hangs or reads out of bounds.
@Suite struct GGUFFuzzTests {
    /// Byte offsets of the fixed-width fields in a valid file's header, found by walking it.
    struct HeaderFields {
        /// u64 fields: counts, string and array lengths, extents, tensor offsets.
        var wide: [Int] = []
        /// u32 fields: value types, array element types, dimension counts, tensor types.
        var narrow: [Int] = []
        /// End of the tensor infos.
        var end = 0
    }

    /// Walks a file known to be valid (no checks: it only has to find where the fields are).
    static func walk(_ b: [UInt8]) -> HeaderFields {
        var fields = HeaderFields()
        var p = 8
        func wide() -> Int {
            fields.wide.append(p)
            defer { p += 8 }
            return Int(b.readLE(UInt64.self, at: p))
        }
        func narrow() -> UInt32 {
            fields.narrow.append(p)
            defer { p += 4 }
            return b.readLE(UInt32.self, at: p)
        }
        func skipString() { p += wide() }
        let widths: [UInt32: Int] = [0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8]
        let tensorCount = wide()
        let metadataCount = wide()
        for _ in 0..<metadataCount {
            skipString()
            let type = narrow()
            if type == 8 {
                skipString()
            } else if type == 9 {
                let element = narrow()
                let n = wide()
                for _ in 0..<n {
                    if element == 8 { skipString() } else { p += widths[element]! }
                }
            } else {
                p += widths[type]!
            }
        }
        for _ in 0..<tensorCount {
            skipString()
            let dims = narrow()
            for _ in 0..<dims { _ = wide() }
            _ = narrow()
            _ = wide()
        }
        fields.end = p
        return fields
    }

    /// Why a successfully parsed file is not self-consistent, or nil.
    static func inconsistency(of file: GGUFFile) -> String? {
        let size = file.file.size
        guard file.alignment > 0, file.alignment & (file.alignment - 1) == 0 else {
            return "alignment \(file.alignment)"
        }
        guard file.dataOffset % file.alignment == 0 else { return "data offset \(file.dataOffset)" }
        guard file.metadataKeys.count == file.metadata.count, Set(file.metadataKeys) == Set(file.metadata.keys) else {
            return "metadata keys"
        }
        guard Set(file.tensors.map(\.name)).count == file.tensors.count else { return "duplicate tensor names" }
        for t in file.tensors {
            guard (1...4).contains(t.shape.count), t.shape.allSatisfy({ $0 >= 1 }) else { return "\(t.name) shape" }
            guard let row = t.type.rowBytes(t.shape[0]), row * t.shape.dropFirst().reduce(1, *) == t.byteCount else {
                return "\(t.name) byte count"
            }
            guard t.offset >= file.dataOffset, (t.offset - file.dataOffset) % file.alignment == 0 else {
                return "\(t.name) offset \(t.offset)"
            }
            guard t.offset + t.byteCount <= size else { return "\(t.name) ends at \(t.offset + t.byteCount) > \(size)" }
            guard file.tensorInfo(t.name) == t, file.data(of: t).count == t.byteCount else { return "\(t.name) lookup" }
        }
        return nil
    }

    static func kind(of error: ModelError) -> String {
        switch error {
        case .io: return "io"
        case .badMagic: return "badMagic"
        case .unsupportedVersion: return "unsupportedVersion"
        case .truncated: return "truncated"
        case .absurdCount: return "absurdCount"
        case .invalidValueType: return "invalidValueType"
        case .invalidString: return "invalidString"
        case .duplicateKey: return "duplicateKey"
        case .duplicateTensor: return "duplicateTensor"
        case .invalidTensor: return "invalidTensor"
        case .unsupportedTensorType: return "unsupportedTensorType"
        case .wrongMetadataType: return "wrongMetadataType"
        default: return "other: \(error)"
        }
    }

    /// Values a mutated u64 field takes: huge, just past the file, off by one, random.
    static func wideValue(original: UInt64, position: Int, size: Int, _ rng: inout SplitMix64) -> UInt64 {
        let choices: [UInt64] = [
            .max, 1 << 63, 1 << 62, 1 << 40, 1 << 32, (1 << 32) + 1, UInt64(size), UInt64(size - position) + 1,
            UInt64(size - position) / 8, 0, 1, original &+ 1, original &- 1, original &* 2, original &+ 32, rng.next(),
        ]
        return choices[Int(rng.next() % UInt64(choices.count))]
    }

    /// Values a mutated u32 field takes: every value type and tensor type boundary, huge, random.
    static func narrowValue(original: UInt32, _ rng: inout SplitMix64) -> UInt32 {
        let choices: [UInt32] = [
            0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 12, 13, 14, 30, 31, 255, .max, original &+ 1,
            UInt32(truncatingIfNeeded: rng.next()),
        ]
        return choices[Int(rng.next() % UInt64(choices.count))]
    }

    @Test(.timeLimit(.minutes(2)))
    func seededMutationsOfARealFileNeverCrash() throws {
        let base = Array(try Data(contentsOf: URL(fileURLWithPath: modelPath("chorus-kjv-draft-small-f32.gguf"))))
        let fields = Self.walk(base)
        let original = try GGUFFile(path: modelPath("chorus-kjv-draft-small-f32.gguf"))
        #expect(fields.end <= original.dataOffset && original.dataOffset - fields.end < original.alignment)
        #expect(Self.inconsistency(of: original) == nil)
        let region = original.dataOffset  // mutations land in the header and its padding

        let scratch = try ScratchDirectory()
        let path = try scratch.write(base, name: "fuzz.gguf")
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? handle.close() }

        var rng = SplitMix64(seed: 0x5EED_C0DE_2024)
        var buffer = base  // one working copy, restored after every mutation
        var successes = 0
        var kinds: [String: Int] = [:]
        let iterations = 3000
        for iteration in 0..<iterations {
            var lo = 0
            var hi = 0
            var newSize = base.count
            let roll = rng.next() % 100
            switch roll {
            case 0..<25:  // flip 1 to 4 bits
                let positions = (0..<(1 + Int(rng.next() % 4))).map { _ in Int(rng.next() % UInt64(region)) }
                for p in positions { buffer[p] ^= UInt8(1) << (rng.next() % 8) }
                lo = positions.min()!
                hi = positions.max()! + 1
            case 25..<40:  // overwrite a run of 1 to 16 bytes with random bytes
                let n = 1 + Int(rng.next() % 16)
                lo = Int(rng.next() % UInt64(region - n))
                hi = lo + n
                for p in lo..<hi { buffer[p] = UInt8(truncatingIfNeeded: rng.next()) }
            case 40..<50:  // a count, length, extent or offset set to a huge or off-by-one value
                let p = fields.wide[Int(rng.next() % UInt64(fields.wide.count))]
                let value = Self.wideValue(
                    original: buffer.readLE(UInt64.self, at: p), position: p, size: base.count, &rng)
                buffer.writeLE(value, at: p)
                (lo, hi) = (p, p + 8)
            case 50..<58:  // the header itself: magic and version bytes, or the two counts
                if rng.next() % 2 == 0 {
                    let p = Int(rng.next() % 8)
                    buffer[p] = rng.next() % 2 == 0 ? UInt8(truncatingIfNeeded: rng.next()) : buffer[p] ^ 1
                    (lo, hi) = (p, p + 1)
                } else {
                    let p = fields.wide[Int(rng.next() % 2)]
                    let value = Self.wideValue(
                        original: buffer.readLE(UInt64.self, at: p), position: p, size: base.count, &rng)
                    buffer.writeLE(value, at: p)
                    (lo, hi) = (p, p + 8)
                }
            case 58..<68:  // a type id or dimension count
                let p = fields.narrow[Int(rng.next() % UInt64(fields.narrow.count))]
                buffer.writeLE(Self.narrowValue(original: buffer.readLE(UInt32.self, at: p), &rng), at: p)
                (lo, hi) = (p, p + 4)
            case 68..<80:  // truncation: mostly inside the header, sometimes anywhere
                newSize =
                    rng.next() % 3 == 0
                    ? Int(rng.next() % UInt64(base.count)) : Int(rng.next() % UInt64(region + 64))
            case 80..<90:  // splice: copy a chunk of the header over another place in it
                let n = 1 + Int(rng.next() % 64)
                let from = Int(rng.next() % UInt64(region - n))
                lo = Int(rng.next() % UInt64(region - n))
                hi = lo + n
                buffer.replaceSubrange(lo..<hi, with: base[from..<(from + n)])
            default:  // splice: move a chunk (rotate a range), shifting everything between
                lo = Int(rng.next() % UInt64(region - 2))
                hi = min(region, lo + 2 + Int(rng.next() % 512))
                let shift = 1 + Int(rng.next() % UInt64(hi - lo - 1))
                buffer.replaceSubrange(lo..<hi, with: Array(base[(lo + shift)..<hi] + base[lo..<(lo + shift)]))
            }

            if hi > lo {
                try handle.seek(toOffset: UInt64(lo))
                try handle.write(contentsOf: buffer[lo..<hi])
            }
            if newSize < base.count { try handle.truncate(atOffset: UInt64(newSize)) }

            do {
                let file = try GGUFFile(path: path)
                successes += 1
                if let problem = Self.inconsistency(of: file) {
                    Issue.record("iteration \(iteration) (mutation \(roll)): \(problem)")
                }
            } catch {
                kinds[Self.kind(of: error), default: 0] += 1
            }

            if hi > lo {
                buffer.replaceSubrange(lo..<hi, with: base[lo..<hi])
                try handle.seek(toOffset: UInt64(lo))
                try handle.write(contentsOf: base[lo..<hi])
            }
            if newSize < base.count {
                try handle.seek(toOffset: UInt64(newSize))
                try handle.write(contentsOf: base[newSize...])
            }
        }

        // The working file and buffer are back to the original: every mutation was seen alone.
        try handle.synchronize()
        #expect(buffer == base)
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: path))) == base)
        // Both outcomes occur, and the damage reaches every layer of the parser.
        #expect(successes > iterations / 20 && successes < iterations * 9 / 10, "successes \(successes)")
        let other = kinds.keys.filter { $0.hasPrefix("other") }
        #expect(other.isEmpty, "unexpected errors \(other)")
        for expected in [
            "truncated", "absurdCount", "invalidString", "invalidValueType", "invalidTensor", "unsupportedTensorType",
            "badMagic", "unsupportedVersion",
        ] {
            #expect(kinds[expected, default: 0] > 0, "no \(expected) among \(kinds)")
        }
    }
}
