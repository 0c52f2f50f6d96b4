import Foundation
import Testing

@testable import ChorusModel

/// Valid and deliberately malformed GGUF files built in memory by ``GGUFWriter``: the valid file
/// round-trips, and every kind of damage is reported as its own ``ModelError`` case.
@Suite struct GGUFMalformedTests {
    // MARK: Sample file

    /// One scalar of every GGUF value type, in type-id order (bool twice).
    static let scalars: [(String, GGUFValue)] = [
        ("t.u8", .uint8(200)),
        ("t.i8", .int8(-100)),
        ("t.u16", .uint16(60_000)),
        ("t.i16", .int16(-30_000)),
        ("t.u32", .uint32(4_000_000_000)),
        ("t.i32", .int32(-2_000_000_000)),
        ("t.f32", .float32(-1.5)),
        ("t.bool.true", .bool(true)),
        ("t.bool.false", .bool(false)),
        ("t.string", .string("héllo, 世界 🙂")),
        ("t.string.empty", .string("")),
        ("t.u64", .uint64(.max)),
        ("t.i64", .int64(.min)),
        ("t.f64", .float64(-.pi)),
    ]

    /// Arrays of every element type that may appear in an array.
    static let arrays: [(String, GGUFValue)] = [
        ("a.u8", .array([.uint8(0), .uint8(255)])),
        ("a.i8", .array([.int8(-128), .int8(127)])),
        ("a.u16", .array([.uint16(1), .uint16(65_535)])),
        ("a.i16", .array([.int16(-32_768)])),
        ("a.u32", .array([.uint32(7), .uint32(8), .uint32(9)])),
        ("a.i32", .array([.int32(1), .int32(-2), .int32(3)])),
        ("a.f32", .array([.float32(.infinity), .float32(0.25), .float32(-.greatestFiniteMagnitude)])),
        ("a.bool", .array([.bool(true), .bool(false), .bool(true)])),
        ("a.string", .array([.string("a"), .string(""), .string("ß∂ƒ")])),
        ("a.u64", .array([.uint64(1 << 40)])),
        ("a.i64", .array([.int64(-1), .int64(.max)])),
        ("a.f64", .array([.float64(1e-300), .float64(2.5)])),
    ]

    /// Deterministic tensor bytes: no two tensors share content.
    static func pattern(_ count: Int, seed: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ seed &* 101 &+ 11) }
    }

    /// One tensor of every supported type; bytes chosen so each is a whole number of blocks.
    static let sampleTensors: [(name: String, shape: [Int], type: GGMLType)] = [
        ("w.f32", [4, 2], .f32),
        ("w.f16", [3], .f16),
        ("w.bf16", [2, 2], .bf16),
        ("w.q8_0", [32, 2], .q8_0),
        ("w.q4_0", [64], .q4_0),
        ("w.q4_K", [256, 1], .q4_K),
        ("w.q6_K", [256], .q6_K),
    ]

    /// A valid file with every value type and every supported tensor type.
    static func sampleWriter() -> GGUFWriter {
        var w = GGUFWriter()
        for (k, v) in scalars + arrays { w.add(k, v) }
        w.addArray("a.empty", elementType: 4, [])
        for (i, t) in sampleTensors.enumerated() {
            let bytes = t.type.rowBytes(t.shape[0])! * t.shape.dropFirst().reduce(1, *)
            w.addTensor(t.name, shape: t.shape, type: t.type, data: pattern(bytes, seed: i))
        }
        return w
    }

    /// A small valid file: one key, two tensors.
    static func smallWriter() -> GGUFWriter {
        var w = GGUFWriter()
        w.add("general.architecture", .string("llama"))
        w.addTensor("a", shape: [4], type: .f32, data: pattern(16, seed: 1))
        w.addTensor("b", shape: [32], type: .q8_0, data: pattern(34, seed: 2))
        return w
    }

    func parse(_ bytes: [UInt8]) throws -> Result<GGUFFile, ModelError> {
        try ScratchDirectory().parse(bytes)
    }

    /// The error parsing `bytes` throws; records an issue when it parses.
    func failure(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws -> ModelError? {
        switch try parse(bytes) {
        case .success:
            Issue.record("parsed a malformed file", sourceLocation: sourceLocation)
            return nil
        case let .failure(error):
            return error
        }
    }

    /// Asserts `error` is `.invalidTensor` for `name` with a reason containing `fragment`.
    func expectInvalidTensor(
        _ error: ModelError?, name: String, reasonContains fragment: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        guard case let .invalidTensor(n, reason) = error else {
            Issue.record("expected invalidTensor, got \(String(describing: error))", sourceLocation: sourceLocation)
            return
        }
        #expect(n == name, sourceLocation: sourceLocation)
        #expect(reason.contains(fragment), "reason: \(reason)", sourceLocation: sourceLocation)
    }

    // MARK: Valid files

    @Test func validFileRoundTripsEveryValueAndTensor() throws {
        let writer = Self.sampleWriter()
        let (bytes, layout) = writer.build()
        let file = try parse(bytes).get()
        #expect(file.version == 3)
        #expect(file.alignment == 32)
        #expect(file.dataOffset == layout.dataOffset)
        #expect(file.dataOffset % 32 == 0 && file.dataOffset >= layout.headerEnd)

        let expected = Self.scalars + Self.arrays + [("a.empty", GGUFValue.array([]))]
        #expect(file.metadataKeys == expected.map(\.0))
        #expect(file.metadata.count == expected.count)
        for (key, value) in expected {
            #expect(file.metadata[key] == value, "\(key)")
        }
        // Bit-exact floats (Equatable on Float would accept -0 for 0).
        #expect(file.metadata["t.f64"] == .float64(-.pi))
        if case let .float64(v) = file.metadata["t.f64"] { #expect(v.bitPattern == (-Double.pi).bitPattern) }

        #expect(file.tensors.count == Self.sampleTensors.count)
        for (i, (t, info)) in zip(Self.sampleTensors, file.tensors).enumerated() {
            #expect(info.name == t.name)
            #expect(info.shape == t.shape)
            #expect(info.type == t.type)
            #expect(info.offset == layout.tensorDataStarts[i])
            #expect(info.offset % 32 == 0)
            #expect(info.byteCount == writer.tensors[i].data.count)
            #expect(Array(file.data(of: info)) == writer.tensors[i].data, "\(t.name)")
            #expect(file.tensorInfo(t.name) == info)
        }
        #expect(file.tensorInfo("missing") == nil)
        #expect(file.tensors.last.map { $0.offset + $0.byteCount } == bytes.count)
    }

    @Test func typedAccessorsReadEveryScalar() throws {
        let file = try parse(Self.sampleWriter().build().bytes).get()
        #expect(try file.integer("t.u8") == 200)
        #expect(try file.integer("t.i8") == -100)
        #expect(try file.integer("t.u16") == 60_000)
        #expect(try file.integer("t.i16") == -30_000)
        #expect(try file.integer("t.u32") == 4_000_000_000)
        #expect(try file.integer("t.i32") == -2_000_000_000)
        #expect(try file.integer("t.i64") == Int(Int64.min))
        #expect(try file.float("t.f32") == -1.5)
        #expect(try file.float("t.f64") == -.pi)
        #expect(try file.float("t.i16") == -30_000)  // integers widen to numbers
        #expect(try file.bool("t.bool.true") == true)
        #expect(try file.bool("t.bool.false") == false)
        #expect(try file.string("t.string") == "héllo, 世界 🙂")
        #expect(try file.string("t.string.empty") == "")
        #expect(try file.array("a.string") == [.string("a"), .string(""), .string("ß∂ƒ")])
        #expect(try file.array("a.empty") == [])
    }

    @Test func typedAccessorsReportMissingAndWrongTypes() throws {
        let file = try parse(Self.sampleWriter().build().bytes).get()
        #expect(throws: ModelError.missingMetadata(key: "nope")) { try file.string("nope") }
        #expect(throws: ModelError.missingMetadata(key: "nope")) { try file.integer("nope") }
        #expect(throws: ModelError.missingMetadata(key: "nope")) { try file.float("nope") }
        #expect(throws: ModelError.missingMetadata(key: "nope")) { try file.bool("nope") }
        #expect(throws: ModelError.missingMetadata(key: "nope")) { try file.array("nope") }
        #expect(throws: ModelError.wrongMetadataType(key: "t.u32", expected: "string", found: "an integer")) {
            try file.string("t.u32")
        }
        #expect(throws: ModelError.wrongMetadataType(key: "t.string", expected: "integer", found: "a string")) {
            try file.integer("t.string")
        }
        #expect(throws: ModelError.wrongMetadataType(key: "t.f32", expected: "integer", found: "a float")) {
            try file.integer("t.f32")
        }
        // A u64 above Int.max is an integer GGUF value that does not fit an Int.
        #expect(throws: ModelError.wrongMetadataType(key: "t.u64", expected: "integer", found: "an integer")) {
            try file.integer("t.u64")
        }
        #expect(throws: ModelError.wrongMetadataType(key: "a.f32", expected: "number", found: "an array of 3")) {
            try file.float("a.f32")
        }
        #expect(throws: ModelError.wrongMetadataType(key: "t.u8", expected: "bool", found: "an integer")) {
            try file.bool("t.u8")
        }
        #expect(throws: ModelError.wrongMetadataType(key: "t.string", expected: "array", found: "a string")) {
            try file.array("t.string")
        }
        #expect(throws: ModelError.wrongMetadataType(key: "t.bool.true", expected: "string", found: "a bool")) {
            try file.string("t.bool.true")
        }
    }

    @Test func versionTwoIsAccepted() throws {
        var w = Self.smallWriter()
        w.version = 2
        let file = try parse(w.build().bytes).get()
        #expect(file.version == 2)
        #expect(file.tensors.map(\.name) == ["a", "b"])
    }

    @Test func generalAlignmentOverridesThePadding() throws {
        var w = Self.sampleWriter()
        w.add("general.alignment", .uint32(256))
        w.alignment = 256
        let (bytes, layout) = w.build()
        let file = try parse(bytes).get()
        #expect(file.alignment == 256)
        #expect(file.dataOffset == layout.dataOffset && file.dataOffset % 256 == 0)
        #expect(file.tensors.map(\.offset) == layout.tensorDataStarts)
        for (t, entry) in zip(file.tensors, w.tensors) {
            #expect(t.offset % 256 == 0)
            #expect(Array(file.data(of: t)) == entry.data)
        }
        // The same file read with the default alignment would put the data elsewhere: the
        // override is what makes it parse correctly.
        #expect(layout.dataOffset != GGUFWriter.roundUp(layout.headerEnd, to: 32))
    }

    /// With `general.alignment = 1` data is packed tightly and F32 rows may start at odd offsets.
    @Test func alignmentOfOnePacksTensorsAndMisalignedF32Dequantizes() throws {
        var w = GGUFWriter()
        w.add("general.alignment", .uint8(1))
        w.alignment = 1
        w.addTensor("h", shape: [1], type: .f16, data: [0x00, 0x3C])
        let values: [Float] = [1.5, -2.25, 1e-8, 3e38]
        var bytes: [UInt8] = []
        for v in values { bytes.appendLE(v.bitPattern) }
        w.addTensor("f", shape: [4], type: .f32, data: bytes)
        let (fileBytes, layout) = w.build()
        let file = try parse(fileBytes).get()
        let f = try #require(file.tensorInfo("f"))
        #expect(f.offset == layout.tensorDataStarts[1])
        #expect(f.offset == file.tensorInfo("h")!.offset + 2)
        var out = [Float](repeating: 0, count: 4)
        let data = file.data(of: f)
        // Also decode from an odd address explicitly, whatever the mapping's layout.
        var shifted = [UInt8](repeating: 0, count: 17)
        shifted.replaceSubrange(1..<17, with: Array(data))
        shifted.withUnsafeBytes { raw in
            Dequantize.row(.f32, from: raw.baseAddress! + 1, count: 4, into: &out)
        }
        #expect(out == values)
        Dequantize.row(.f32, from: data.baseAddress!, count: 4, into: &out)
        #expect(out == values)
    }

    // MARK: Header

    @Test func wrongMagic() throws {
        var w = Self.smallWriter()
        w.magic = Array("GGUG".utf8)
        #expect(try failure(w.build().bytes) == .badMagic(found: [0x47, 0x47, 0x55, 0x47]))
        w.magic = Array("FUGG".utf8)
        #expect(try failure(w.build().bytes) == .badMagic(found: [0x46, 0x55, 0x47, 0x47]))
        let description = ModelError.badMagic(found: [0x46, 0x55, 0x47, 0x47]).description
        #expect(description.contains("46 55 47 47"))
    }

    @Test(arguments: [UInt32(0), 1, 4, 0x0300_0000, .max])
    func unsupportedVersions(version: UInt32) throws {
        var w = Self.smallWriter()
        w.version = version
        #expect(try failure(w.build().bytes) == .unsupportedVersion(version))
    }

    // MARK: Truncation

    /// Every proper prefix of a valid file fails with `.truncated`: inside the header for cuts
    /// before the end of the tensor infos, naming the first tensor whose data is cut otherwise.
    @Test func truncationAtEveryLength() throws {
        let (bytes, layout) = Self.sampleWriter().build()
        let names = Self.sampleTensors.map(\.name)
        let scratch = try ScratchDirectory()
        var headerCuts = 0
        var dataCuts = 0
        for cut in 0..<bytes.count {
            let result = try scratch.parse(Array(bytes[0..<cut]))
            guard case let .failure(error) = result else {
                Issue.record("prefix of \(cut) bytes parsed")
                continue
            }
            guard case let .truncated(field, offset, needed, available) = error else {
                Issue.record("prefix of \(cut) bytes: \(error)")
                continue
            }
            if cut < layout.headerEnd {
                headerCuts += 1
                #expect(!names.map { "tensor \($0)" }.contains(field), "cut \(cut): \(field)")
                #expect(offset <= cut && available == cut - offset && needed > available, "cut \(cut): \(error)")
            } else {
                dataCuts += 1
                // The first tensor (in info order) that does not end inside the prefix.
                let i = try #require(
                    layout.tensorDataStarts.indices.first { layout.tensorDataStarts[$0] + Self.byteCount($0) > cut })
                #expect(field == "tensor \(names[i])", "cut \(cut)")
                #expect(offset == layout.tensorDataStarts[i] && needed == Self.byteCount(i), "cut \(cut): \(error)")
                #expect(available == max(0, cut - offset), "cut \(cut): \(error)")
            }
        }
        #expect(headerCuts == layout.headerEnd)
        #expect(dataCuts == bytes.count - layout.headerEnd)
        // The whole file still parses.
        #expect(throws: Never.self) { try scratch.parse(bytes).get() }
    }

    static func byteCount(_ tensor: Int) -> Int {
        let t = sampleTensors[tensor]
        return t.type.rowBytes(t.shape[0])! * t.shape.dropFirst().reduce(1, *)
    }

    @Test func truncationAtRepresentativeCuts() throws {
        let (bytes, layout) = Self.smallWriter().build()
        func cut(_ n: Int) throws -> ModelError? { try failure(Array(bytes[0..<n])) }
        #expect(try cut(0) == .truncated(field: "magic", offset: 0, needed: 4, available: 0))
        #expect(try cut(6) == .truncated(field: "version", offset: 4, needed: 4, available: 2))
        #expect(try cut(12) == .truncated(field: "tensor count", offset: 8, needed: 8, available: 4))
        // 24 bytes: the tensor count (2) cannot fit in the 8 bytes after it; a plausible count in a
        // short file is truncation, not an absurd count.
        #expect(try cut(24) == .truncated(field: "tensor count", offset: 16, needed: 2 * 32, available: 8))
        // Inside the last key of the sample file ("a.empty", 7 bytes): 3 of its bytes present.
        let (sample, sampleLayout) = Self.sampleWriter().build()
        let last = sampleLayout.metadataStarts.count - 1
        let key = sampleLayout.metadataStarts[last] + 8
        #expect(
            try failure(Array(sample[0..<(key + 3)]))
                == .truncated(field: "metadata key #\(last)", offset: key, needed: 7, available: 3))
        // Inside the last tensor info's offset field.
        let lastOffsetField = layout.headerEnd - 8
        #expect(
            try cut(layout.headerEnd - 3)
                == .truncated(field: "tensor b offset", offset: lastOffsetField, needed: 8, available: 5))
        // In the padding after the header: the first tensor starts past the end.
        #expect(layout.headerEnd < layout.dataOffset)
        #expect(
            try cut(layout.dataOffset - 1)
                == .truncated(field: "tensor a", offset: layout.dataOffset, needed: 16, available: 0))
        // One byte short: the last tensor.
        let b = layout.tensorDataStarts[1]
        #expect(try cut(bytes.count - 1) == .truncated(field: "tensor b", offset: b, needed: 34, available: 33))
        let description = try #require(try cut(bytes.count - 1)).description
        #expect(description.contains("tensor b") && description.contains("34") && description.contains("33"))
    }

    // MARK: Absurd counts and lengths

    @Test func absurdTensorCount() throws {
        var w = Self.smallWriter()
        w.tensorCountOverride = .max
        let bytes = w.build().bytes
        let limit = UInt64((bytes.count - 16) / 32)
        #expect(try failure(bytes) == .absurdCount(field: "tensor count", value: .max, limit: limit))
    }

    @Test func absurdMetadataCount() throws {
        var w = Self.smallWriter()
        w.metadataCountOverride = 1 << 40
        let bytes = w.build().bytes
        let limit = UInt64((bytes.count - 24) / 13)
        #expect(try failure(bytes) == .absurdCount(field: "metadata count", value: 1 << 40, limit: limit))
    }

    @Test func absurdKeyAndNameLengths() throws {
        let (bytes, layout) = Self.smallWriter().build()
        var key = bytes
        key.writeLE(UInt64(1) << 40, at: layout.metadataStarts[0])
        #expect(
            try failure(key)
                == .absurdCount(field: "metadata key #0 length", value: 1 << 40, limit: UInt64(GGUFFile.maxStringBytes))
        )
        var name = bytes
        name.writeLE(UInt64.max, at: layout.tensorInfoStarts[1])
        #expect(
            try failure(name)
                == .absurdCount(field: "tensor #1 name length", value: .max, limit: UInt64(GGUFFile.maxStringBytes)))
        // A plausible length that runs past the end is truncation.
        var short = bytes
        short.writeLE(UInt64(bytes.count), at: layout.tensorInfoStarts[0])
        let nameStart = layout.tensorInfoStarts[0] + 8
        #expect(
            try failure(short)
                == .truncated(
                    field: "tensor #0 name", offset: nameStart, needed: bytes.count, available: bytes.count - nameStart)
        )
    }

    @Test func absurdStringValueLength() throws {
        var w = GGUFWriter()
        var payload: [UInt8] = []
        payload.appendLE(UInt64.max)
        payload += Array("abc".utf8)
        w.addRaw(key: Array("k".utf8), type: 8, payload: payload)
        #expect(
            try failure(w.build().bytes)
                == .absurdCount(field: "metadata k length", value: .max, limit: UInt64(GGUFFile.maxStringBytes)))
    }

    @Test func absurdArrayLength() throws {
        for (elementType, each) in [(UInt32(0), 1), (5, 4), (8, 8), (12, 8)] {
            var w = GGUFWriter()
            var payload: [UInt8] = []
            payload.appendLE(elementType)
            payload.appendLE(UInt64(1) << 62)
            payload += [UInt8](repeating: 0, count: 40)
            w.addRaw(key: Array("k".utf8), type: 9, payload: payload)
            let bytes = w.build().bytes
            let remaining = bytes.count - (24 + 8 + 1 + 4 + 4 + 8)
            #expect(
                try failure(bytes)
                    == .absurdCount(field: "metadata k array length", value: 1 << 62, limit: UInt64(remaining / each)),
                "element type \(elementType)")
        }
    }

    // MARK: Values

    @Test(arguments: [UInt32(13), 100, .max])
    func unknownValueType(type: UInt32) throws {
        var w = Self.smallWriter()
        w.addRaw(key: Array("x.odd".utf8), type: type, payload: [0, 0, 0, 0, 0, 0, 0, 0])
        #expect(try failure(w.build().bytes) == .invalidValueType(key: "x.odd", type: type))
    }

    @Test func unknownOrNestedArrayElementType() throws {
        for elementType in [UInt32(9), 13, 0xFFFF] {
            var w = Self.smallWriter()
            var payload: [UInt8] = []
            payload.appendLE(elementType)
            payload.appendLE(UInt64(1))
            payload += [UInt8](repeating: 0, count: 16)
            w.addRaw(key: Array("x.arr".utf8), type: 9, payload: payload)
            #expect(try failure(w.build().bytes) == .invalidValueType(key: "x.arr", type: elementType))
        }
    }

    @Test func invalidUTF8InKeysValuesAndNames() throws {
        let invalid: [[UInt8]] = [
            [0x61, 0xFF, 0x62],  // a byte that never occurs in UTF-8
            [0xE4, 0xB8],  // a sequence cut short
            [0xC0, 0x80],  // overlong encoding of NUL
            [0xED, 0xA0, 0x80],  // a UTF-16 surrogate
            [0x80],  // a lone continuation byte
        ]
        for bad in invalid {
            var key = Self.smallWriter()
            key.addRaw(key: bad, type: 4, payload: [1, 0, 0, 0])
            #expect(try failure(key.build().bytes) == .invalidString(field: "metadata key #1"), "\(bad)")

            var value = Self.smallWriter()
            value.addRaw(key: Array("s".utf8), type: 8, payload: GGUFWriter.rawString(bad))
            #expect(try failure(value.build().bytes) == .invalidString(field: "metadata s"), "\(bad)")

            var name = Self.smallWriter()
            name.tensors[1].name = bad
            #expect(try failure(name.build().bytes) == .invalidString(field: "tensor #1 name"), "\(bad)")
        }
    }

    @Test func boolByteOtherThanZeroOrOne() throws {
        var w = Self.smallWriter()
        w.addRaw(key: Array("b".utf8), type: 7, payload: [2])
        #expect(
            try failure(w.build().bytes)
                == .wrongMetadataType(key: "b", expected: "bool (0 or 1)", found: "byte 2"))
        var array = Self.smallWriter()
        var payload: [UInt8] = []
        payload.appendLE(UInt32(7))
        payload.appendLE(UInt64(3))
        payload += [1, 0, 0xFF]
        array.addRaw(key: Array("bs".utf8), type: 9, payload: payload)
        #expect(
            try failure(array.build().bytes)
                == .wrongMetadataType(key: "bs", expected: "bool (0 or 1)", found: "byte 255"))
    }

    @Test func duplicateKey() throws {
        var w = Self.smallWriter()
        w.add("dup", .uint8(1))
        w.add("dup", .string("again"))
        #expect(try failure(w.build().bytes) == .duplicateKey("dup"))
    }

    @Test func duplicateTensor() throws {
        var w = Self.smallWriter()
        w.addTensor("a", shape: [8], type: .f32, data: Self.pattern(32, seed: 3))
        #expect(try failure(w.build().bytes) == .duplicateTensor("a"))
    }

    @Test(arguments: [UInt32(0), 3, 48, 1 << 21])
    func nonPowerOfTwoOrOutOfRangeAlignment(alignment: UInt32) throws {
        var w = Self.smallWriter()
        w.add("general.alignment", .uint32(alignment))
        #expect(
            try failure(w.build().bytes)
                == .wrongMetadataType(key: "general.alignment", expected: "a power of two", found: "an integer"))
    }

    @Test func alignmentOfTheWrongType() throws {
        var w = Self.smallWriter()
        w.add("general.alignment", .string("32"))
        #expect(
            try failure(w.build().bytes)
                == .wrongMetadataType(key: "general.alignment", expected: "a power of two", found: "a string"))
        var negative = Self.smallWriter()
        negative.add("general.alignment", .int32(-32))
        #expect(
            try failure(negative.build().bytes)
                == .wrongMetadataType(key: "general.alignment", expected: "a power of two", found: "an integer"))
    }

    // MARK: Tensor infos

    @Test func tensorOffsetPastTheEnd() throws {
        for offset in [UInt64(4096), 1 << 40, UInt64.max - 31] {
            var w = Self.smallWriter()
            w.tensors[1].offset = offset
            expectInvalidTensor(try failure(w.build().bytes), name: "b", reasonContains: "past the end")
        }
    }

    @Test func tensorDataRunningPastTheEnd() throws {
        // An aligned offset inside the file whose data does not fit: the tensor is cut short.
        var w = Self.smallWriter()
        w.tensors[1].offset = 64
        let (bytes, layout) = w.build()
        let start = layout.dataOffset + 64
        #expect(start <= bytes.count)
        #expect(
            try failure(bytes)
                == .truncated(field: "tensor b", offset: start, needed: 34, available: max(0, bytes.count - start)))
    }

    @Test func misalignedTensorOffset() throws {
        var w = Self.smallWriter()
        w.tensors[1].offset = 8
        expectInvalidTensor(try failure(w.build().bytes), name: "b", reasonContains: "not aligned to 32")
        var custom = Self.smallWriter()
        custom.add("general.alignment", .uint32(64))
        custom.alignment = 64
        custom.tensors[1].offset = 32
        expectInvalidTensor(try failure(custom.build().bytes), name: "b", reasonContains: "not aligned to 64")
    }

    @Test func zeroOrTooManyDimensions() throws {
        var zero = Self.smallWriter()
        zero.tensors[0].dimensions = []
        expectInvalidTensor(try failure(zero.build().bytes), name: "a", reasonContains: "0 dimensions")
        var five = Self.smallWriter()
        five.tensors[0].dimensions = [4, 1, 1, 1, 1]
        expectInvalidTensor(try failure(five.build().bytes), name: "a", reasonContains: "5 dimensions")
        var four = Self.smallWriter()
        four.tensors[0].dimensions = [1, 2, 1, 2]
        let file = try parse(four.build().bytes).get()
        #expect(file.tensors[0].shape == [1, 2, 1, 2] && file.tensors[0].elementCount == 4)
    }

    @Test func zeroOrOverflowingExtents() throws {
        var zero = Self.smallWriter()
        zero.tensors[0].dimensions = [4, 0]
        expectInvalidTensor(try failure(zero.build().bytes), name: "a", reasonContains: "dimension 1 is 0")
        var huge = Self.smallWriter()
        huge.tensors[0].dimensions = [1 << 20, 1 << 20, 1 << 20]
        expectInvalidTensor(try failure(huge.build().bytes), name: "a", reasonContains: "element count overflows")
        var negative = Self.smallWriter()
        negative.tensors[0].dimensions = [UInt64(bitPattern: -4)]
        expectInvalidTensor(try failure(negative.build().bytes), name: "a", reasonContains: "dimension 0")
    }

    @Test func rowLengthNotAWholeNumberOfBlocks() throws {
        let cases: [(GGMLType, UInt64, String)] = [
            (.q8_0, 48, "Q8_0's block of 32"), (.q4_0, 16, "Q4_0's block of 32"),
            (.q4_K, 128, "Q4_K's block of 256"), (.q6_K, 300, "Q6_K's block of 256"),
        ]
        for (type, row, fragment) in cases {
            var w = Self.smallWriter()
            w.tensors[1].type = type.rawValue
            w.tensors[1].dimensions = [row, 1]
            w.tensors[1].data = Self.pattern(256, seed: 9)
            expectInvalidTensor(try failure(w.build().bytes), name: "b", reasonContains: fragment)
        }
    }

    @Test(arguments: [UInt32(15), 9, 20, 23, 34, 31, 99, .max])
    func unsupportedTensorType(type: UInt32) throws {
        var w = Self.smallWriter()
        w.tensors[1].type = type
        let error = try failure(w.build().bytes)
        #expect(error == .unsupportedTensorType(name: "b", type: type))
        let description = error?.description ?? ""
        #expect(
            description.contains("F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, BF16"),
            "\(description)")
        #expect(description.contains("tensor b"))
        if type == 20 { #expect(description.contains("has type IQ4_NL")) }
        if type == 34 { #expect(description.contains("has type TQ1_0")) }
        if type == 99 { #expect(description.contains("type 99")) }
    }

    // MARK: Regressions

    /// Regression: the tensor count was bounded assuming 36 bytes per tensor info, but a tensor info
    /// can take 32 (empty name, one dimension), so files of many tiny tensors were refused.
    @Test func manySmallTensorsWithTightAlignment() throws {
        var w = GGUFWriter()
        w.add("general.alignment", .uint32(1))
        w.alignment = 1
        let names = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".map(String.init)
        for (i, name) in names.enumerated() {
            w.addTensor(name, shape: [1], type: .f16, data: [UInt8(i), 0x3C])
        }
        let (bytes, layout) = w.build()
        // Below the old bound of 36 bytes per tensor after the tensor count field.
        #expect((bytes.count - 16) / 36 < names.count)
        let file = try parse(bytes).get()
        #expect(file.tensors.count == names.count)
        #expect(file.tensors.map(\.offset) == layout.tensorDataStarts)
        #expect(file.tensors.map { Array(file.data(of: $0)) } == w.tensors.map(\.data))
    }

    /// Creates a sparse file of `size` bytes that starts with `header`.
    func sparseFile(_ header: [UInt8], size: Int, in scratch: ScratchDirectory) throws -> String {
        let path = try scratch.write(header, name: "sparse.gguf")
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: UInt64(size))
        try handle.close()
        return path
    }

    /// Regression: a corrupted tensor count in a large file (bounded only by the file size) was
    /// reserved up front — billions of tensor infos, far more memory than the machine has — and the
    /// failed allocation crashed the process before the first tensor info was read.
    @Test func hugeTensorCountInALargeFileDoesNotReserveMemory() throws {
        let scratch = try ScratchDirectory()
        let size = 64 << 30
        var header: [UInt8] = Array("GGUF".utf8)
        header.appendLE(UInt32(3))
        header.appendLE(UInt64((size - 16) / 36))  // fits: at least 36 bytes per tensor info remain
        header.appendLE(UInt64(0))
        let path = try sparseFile(header, size: size, in: scratch)
        // The zero bytes read as a tensor with an empty name and no dimensions.
        #expect(throws: ModelError.invalidTensor(name: "", reason: "0 dimensions (supported: 1 to 4)")) {
            try GGUFFile(path: path)
        }
    }

    /// Regression: the same for a metadata array's length.
    @Test func hugeArrayLengthInALargeFileDoesNotReserveMemory() throws {
        let scratch = try ScratchDirectory()
        let size = 64 << 30
        var header: [UInt8] = Array("GGUF".utf8)
        header.appendLE(UInt32(3))
        header.appendLE(UInt64(0))
        header.appendLE(UInt64(1))
        header += GGUFWriter.rawString(Array("k".utf8))
        header.appendLE(UInt32(9))
        header.appendLE(UInt32(8))
        header.appendLE(UInt64((size - header.count - 8) / 8))
        header.appendLE(UInt64.max)  // the first string's length
        let path = try sparseFile(header, size: size, in: scratch)
        #expect(
            throws: ModelError.absurdCount(
                field: "metadata k length", value: .max, limit: UInt64(GGUFFile.maxStringBytes))
        ) {
            try GGUFFile(path: path)
        }
    }
}
