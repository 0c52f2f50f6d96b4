/// A parsed GGUF file (versions 2 and 3), memory-mapped.
///
/// Layout (GGUF specification, ggml's `docs/gguf.md`): magic `GGUF`, version (u32), tensor count
/// (u64), metadata count (u64), metadata key/value pairs, tensor infos (name, dims, type, offset),
/// padding to `general.alignment` (default 32), then tensor data. Every length, count and offset is
/// checked against the file size before use; anything inconsistent is a typed ``ModelError``.
public struct GGUFFile: Sendable {
    public struct TensorInfo: Sendable, Equatable {
        public let name: String
        /// shape: ggml order, innermost first (`shape[0]` is the row length).
        public let shape: [Int]
        public let type: GGMLType
        /// Absolute byte offset of the data in the file.
        public let offset: Int
        public let byteCount: Int
        public var elementCount: Int { shape.reduce(1, *) }
    }

    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    public let tensors: [TensorInfo]
    public let alignment: Int
    public let dataOffset: Int
    public let file: MappedFile
    private let tensorIndex: [String: Int]

    /// Upper bounds that no real model reaches; they turn corrupted counts into errors early.
    static let maxTensorDimensions = 4
    static let maxStringBytes = 1 << 28
    /// A count that does not fit in the rest of the file but is at most this is reported as
    /// truncation (the file may have been cut short); a larger one as an absurd count.
    static let maxPlausibleCount: UInt64 = 1 << 32
    /// Reservations are capped: a count is only bounded by the file size, and a corrupted one in a
    /// multi-gigabyte file must not turn into an allocation larger than memory before parsing fails.
    static let maxReservedItems = 1 << 16

    public init(path: String) throws(ModelError) {
        try self.init(file: MappedFile(path: path))
    }

    public init(file: MappedFile) throws(ModelError) {
        self.file = file
        var reader = GGUFReader(bytes: file.bytes)
        let magic = try reader.bytes(4, field: "magic")
        guard magic == [0x47, 0x47, 0x55, 0x46] else { throw ModelError.badMagic(found: magic) }
        version = try reader.u32("version")
        guard version == 2 || version == 3 else { throw ModelError.unsupportedVersion(version) }
        // Smallest tensor info: name length (u64) + empty name + dimension count (u32) + one extent
        // (u64) + type (u32) + offset (u64). Smallest metadata pair: key length + type + 1-byte value.
        let tensorCount = try reader.count("tensor count", minimumBytesEach: 8 + 4 + 8 + 4 + 8)
        let metadataCount = try reader.count("metadata count", minimumBytesEach: 8 + 4 + 1)

        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        for i in 0..<metadataCount {
            let key = try reader.string("metadata key #\(i)")
            let type = try reader.u32("type of metadata \(key)")
            let value = try reader.value(type: type, key: key, depth: 0)
            guard metadata.updateValue(value, forKey: key) == nil else { throw ModelError.duplicateKey(key) }
            keys.append(key)
        }
        self.metadata = metadata
        metadataKeys = keys

        var alignment = 32
        if let value = metadata["general.alignment"] {
            guard let a = value.integer, a > 0, a <= 1 << 20, a & (a - 1) == 0 else {
                throw ModelError.wrongMetadataType(
                    key: "general.alignment", expected: "a power of two", found: value.summary)
            }
            alignment = a
        }
        self.alignment = alignment

        struct RawTensor {
            var name: String
            var shape: [Int]
            var type: GGMLType
            var relativeOffset: UInt64
        }
        var raw: [RawTensor] = []
        raw.reserveCapacity(min(tensorCount, Self.maxReservedItems))
        var seen = Set<String>()
        for i in 0..<tensorCount {
            let name = try reader.string("tensor #\(i) name")
            guard seen.insert(name).inserted else { throw ModelError.duplicateTensor(name) }
            let dims = Int(try reader.u32("tensor \(name) dimension count"))
            guard dims >= 1, dims <= Self.maxTensorDimensions else {
                throw ModelError.invalidTensor(name: name, reason: "\(dims) dimensions (supported: 1 to 4)")
            }
            var shape: [Int] = []
            var elements: UInt64 = 1
            for d in 0..<dims {
                let extent = try reader.u64("tensor \(name) dimension \(d)")
                guard extent >= 1, extent <= 1 << 40 else {
                    throw ModelError.invalidTensor(name: name, reason: "dimension \(d) is \(extent)")
                }
                let (product, overflow) = elements.multipliedReportingOverflow(by: extent)
                guard !overflow, product <= 1 << 40 else {
                    throw ModelError.invalidTensor(name: name, reason: "element count overflows")
                }
                elements = product
                shape.append(Int(extent))
            }
            let typeID = try reader.u32("tensor \(name) type")
            guard let type = GGMLType(rawValue: typeID) else {
                throw ModelError.unsupportedTensorType(name: name, type: typeID)
            }
            let offset = try reader.u64("tensor \(name) offset")
            raw.append(RawTensor(name: name, shape: shape, type: type, relativeOffset: offset))
        }

        let headerEnd = reader.position
        let dataOffset = (headerEnd + alignment - 1) / alignment * alignment
        self.dataOffset = dataOffset
        let size = file.size
        var tensors: [TensorInfo] = []
        tensors.reserveCapacity(raw.count)
        for t in raw {
            guard let rowBytes = t.type.rowBytes(t.shape[0]) else {
                throw ModelError.invalidTensor(
                    name: t.name,
                    reason:
                        "row length \(t.shape[0]) is not a multiple of \(t.type.name)'s block of \(t.type.blockSize)")
            }
            let byteCount = rowBytes * t.shape.dropFirst().reduce(1, *)
            guard t.relativeOffset % UInt64(alignment) == 0 else {
                throw ModelError.invalidTensor(
                    name: t.name, reason: "offset \(t.relativeOffset) is not aligned to \(alignment)")
            }
            guard t.relativeOffset <= UInt64(size) else {
                throw ModelError.invalidTensor(
                    name: t.name, reason: "offset \(t.relativeOffset) is past the end of the file (\(size) bytes)")
            }
            let start = dataOffset + Int(t.relativeOffset)
            guard start <= size, byteCount <= size - start else {
                throw ModelError.truncated(
                    field: "tensor \(t.name)", offset: start, needed: byteCount, available: max(0, size - start))
            }
            tensors.append(TensorInfo(name: t.name, shape: t.shape, type: t.type, offset: start, byteCount: byteCount))
        }
        self.tensors = tensors
        var index: [String: Int] = [:]
        for (i, t) in tensors.enumerated() { index[t.name] = i }
        tensorIndex = index
    }

    public func tensorInfo(_ name: String) -> TensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The raw bytes of a tensor (valid while this file is alive).
    public func data(of tensor: TensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[tensor.offset..<(tensor.offset + tensor.byteCount)])
    }

    // MARK: Typed metadata access

    public func string(_ key: String) throws(ModelError) -> String {
        guard let value = metadata[key] else { throw ModelError.missingMetadata(key: key) }
        guard case let .string(s) = value else {
            throw ModelError.wrongMetadataType(key: key, expected: "string", found: value.summary)
        }
        return s
    }

    public func integer(_ key: String) throws(ModelError) -> Int {
        guard let value = metadata[key] else { throw ModelError.missingMetadata(key: key) }
        guard let i = value.integer else {
            throw ModelError.wrongMetadataType(key: key, expected: "integer", found: value.summary)
        }
        return i
    }

    public func float(_ key: String) throws(ModelError) -> Double {
        guard let value = metadata[key] else { throw ModelError.missingMetadata(key: key) }
        guard let f = value.double else {
            throw ModelError.wrongMetadataType(key: key, expected: "number", found: value.summary)
        }
        return f
    }

    public func bool(_ key: String) throws(ModelError) -> Bool {
        guard let value = metadata[key] else { throw ModelError.missingMetadata(key: key) }
        guard case let .bool(b) = value else {
            throw ModelError.wrongMetadataType(key: key, expected: "bool", found: value.summary)
        }
        return b
    }

    public func array(_ key: String) throws(ModelError) -> [GGUFValue] {
        guard let value = metadata[key] else { throw ModelError.missingMetadata(key: key) }
        guard case let .array(items) = value else {
            throw ModelError.wrongMetadataType(key: key, expected: "array", found: value.summary)
        }
        return items
    }
}

/// A metadata value (GGUF `gguf_metadata_value_type`).
public enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    case array([GGUFValue])

    /// The value as an Int when it is an integer that fits.
    public var integer: Int? {
        switch self {
        case let .uint8(v): return Int(v)
        case let .int8(v): return Int(v)
        case let .uint16(v): return Int(v)
        case let .int16(v): return Int(v)
        case let .uint32(v): return Int(v)
        case let .int32(v): return Int(v)
        case let .uint64(v): return v <= UInt64(Int.max) ? Int(v) : nil
        case let .int64(v): return Int(v)
        default: return nil
        }
    }

    public var double: Double? {
        switch self {
        case let .float32(v): return Double(v)
        case let .float64(v): return v
        default: return integer.map(Double.init)
        }
    }

    public var stringValue: String? {
        if case let .string(s) = self { return s }
        return nil
    }

    /// A short description for error messages.
    public var summary: String {
        switch self {
        case .string: return "a string"
        case let .array(items): return "an array of \(items.count)"
        case .bool: return "a bool"
        case .float32, .float64: return "a float"
        default: return "an integer"
        }
    }
}

/// A bounds-checked little-endian cursor over the mapped file.
struct GGUFReader {
    let bytes: UnsafeRawBufferPointer
    var position = 0

    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var remaining: Int { bytes.count - position }

    mutating func need(_ n: Int, _ field: String) throws(ModelError) {
        guard n <= remaining else {
            throw ModelError.truncated(field: field, offset: position, needed: n, available: remaining)
        }
    }

    mutating func load<T: FixedWidthInteger>(_: T.Type, _ field: String) throws(ModelError) -> T {
        try need(MemoryLayout<T>.size, field)
        let v = bytes.loadUnaligned(fromByteOffset: position, as: T.self)
        position += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    mutating func u32(_ field: String) throws(ModelError) -> UInt32 { try load(UInt32.self, field) }
    mutating func u64(_ field: String) throws(ModelError) -> UInt64 { try load(UInt64.self, field) }

    mutating func bytes(_ n: Int, field: String) throws(ModelError) -> [UInt8] {
        try need(n, field)
        defer { position += n }
        return Array(UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)]))
    }

    /// A count of items that each take at least `minimumBytesEach` bytes: more than the rest of the
    /// file could hold is an error, not an allocation. It is `.truncated` when the count itself is
    /// plausible (the file was cut short) and `.absurdCount` when it is not.
    mutating func count(_ field: String, minimumBytesEach: Int) throws(ModelError) -> Int {
        let value = try u64(field)
        let each = max(minimumBytesEach, 1)
        let limit = UInt64(remaining / each)
        guard value <= limit else {
            guard value <= GGUFFile.maxPlausibleCount else {
                throw ModelError.absurdCount(field: field, value: value, limit: limit)
            }
            throw ModelError.truncated(field: field, offset: position, needed: Int(value) * each, available: remaining)
        }
        return Int(value)
    }

    mutating func string(_ field: String) throws(ModelError) -> String {
        let length = try u64("\(field) length")
        guard length <= UInt64(min(remaining, GGUFFile.maxStringBytes)) else {
            if length > UInt64(GGUFFile.maxStringBytes) {
                throw ModelError.absurdCount(
                    field: "\(field) length", value: length, limit: UInt64(GGUFFile.maxStringBytes))
            }
            throw ModelError.truncated(field: field, offset: position, needed: Int(length), available: remaining)
        }
        let n = Int(length)
        let raw = UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)])
        position += n
        guard let s = String(validating: raw, as: UTF8.self) else { throw ModelError.invalidString(field: field) }
        return s
    }

    mutating func value(type: UInt32, key: String, depth: Int) throws(ModelError) -> GGUFValue {
        let field = "metadata \(key)"
        switch type {
        case 0: return .uint8(try load(UInt8.self, field))
        case 1: return .int8(try load(Int8.self, field))
        case 2: return .uint16(try load(UInt16.self, field))
        case 3: return .int16(try load(Int16.self, field))
        case 4: return .uint32(try load(UInt32.self, field))
        case 5: return .int32(try load(Int32.self, field))
        case 6: return .float32(Float(bitPattern: try load(UInt32.self, field)))
        case 7:
            let b = try load(UInt8.self, field)
            guard b <= 1 else {
                throw ModelError.wrongMetadataType(key: key, expected: "bool (0 or 1)", found: "byte \(b)")
            }
            return .bool(b == 1)
        case 8: return .string(try string(field))
        case 9:
            guard depth == 0 else { throw ModelError.invalidValueType(key: key, type: type) }
            let elementType = try u32("\(field) array element type")
            let size = Self.minimumSize(of: elementType)
            guard size > 0 else { throw ModelError.invalidValueType(key: key, type: elementType) }
            let n = try count("\(field) array length", minimumBytesEach: size)
            var items: [GGUFValue] = []
            items.reserveCapacity(min(n, GGUFFile.maxReservedItems))
            for _ in 0..<n { items.append(try value(type: elementType, key: key, depth: depth + 1)) }
            return .array(items)
        case 10: return .uint64(try load(UInt64.self, field))
        case 11: return .int64(try load(Int64.self, field))
        case 12: return .float64(Double(bitPattern: try load(UInt64.self, field)))
        default: throw ModelError.invalidValueType(key: key, type: type)
        }
    }

    /// Bytes an element of a GGUF value type takes at least (0: unknown or not allowed in arrays).
    static func minimumSize(of type: UInt32) -> Int {
        switch type {
        case 0, 1, 7: return 1
        case 2, 3: return 2
        case 4, 5, 6: return 4
        case 8, 10, 11, 12: return 8
        default: return 0
        }
    }
}
