import Foundation

@testable import ChorusModel

/// A test-only GGUF writer: builds a file byte by byte in memory so tests can produce a valid file,
/// know where every part of it lies (``Layout``), and then corrupt it at a chosen place.
///
/// It writes what the GGUF specification describes (little-endian): magic, version (u32), tensor
/// count (u64), metadata count (u64), key/value pairs, tensor infos, zero padding to `alignment`,
/// then each tensor's data at the next multiple of `alignment`. The file ends right after the last
/// tensor's data (no trailing padding), so cutting off any byte damages something.
struct GGUFWriter {
    /// A key/value pair as it will be written: raw key bytes, value type id and encoded value.
    struct MetadataEntry {
        var key: [UInt8]
        var type: UInt32
        var payload: [UInt8]
    }

    /// A tensor info plus its data. `offset` overrides the offset recorded in the info (relative to
    /// the data section); the data itself is always placed at the natural aligned position.
    struct TensorEntry {
        var name: [UInt8]
        var dimensions: [UInt64]
        var type: UInt32
        var data: [UInt8]
        var offset: UInt64?
    }

    /// Where the parts of a built file lie, in absolute byte offsets.
    struct Layout {
        /// Start of each key/value pair.
        var metadataStarts: [Int] = []
        /// Start of each tensor info.
        var tensorInfoStarts: [Int] = []
        /// End of the last tensor info: everything before it is header.
        var headerEnd = 0
        /// Start of the data section (headerEnd rounded up to the alignment).
        var dataOffset = 0
        /// Absolute start of each tensor's data.
        var tensorDataStarts: [Int] = []
        var size = 0
    }

    var magic: [UInt8] = Array("GGUF".utf8)
    var version: UInt32 = 3
    var tensorCountOverride: UInt64?
    var metadataCountOverride: UInt64?
    /// Alignment used to place the data; tell readers with `general.alignment` when it is not 32.
    var alignment = 32
    var metadata: [MetadataEntry] = []
    var tensors: [TensorEntry] = []

    // MARK: Adding content

    mutating func add(_ key: String, _ value: GGUFValue) {
        var payload: [UInt8] = []
        Self.encode(value, into: &payload)
        metadata.append(MetadataEntry(key: Array(key.utf8), type: Self.typeID(of: value), payload: payload))
    }

    /// An array with an explicit element type (needed for empty arrays).
    mutating func addArray(_ key: String, elementType: UInt32, _ items: [GGUFValue]) {
        var payload: [UInt8] = []
        payload.appendLE(elementType)
        payload.appendLE(UInt64(items.count))
        for item in items { Self.encode(item, into: &payload) }
        metadata.append(MetadataEntry(key: Array(key.utf8), type: 9, payload: payload))
    }

    /// Any bytes as a key/value pair, for malformed files.
    mutating func addRaw(key: [UInt8], type: UInt32, payload: [UInt8]) {
        metadata.append(MetadataEntry(key: key, type: type, payload: payload))
    }

    mutating func addTensor(_ name: String, shape: [Int], type: GGMLType, data: [UInt8], offset: UInt64? = nil) {
        tensors.append(
            TensorEntry(
                name: Array(name.utf8), dimensions: shape.map { UInt64($0) }, type: type.rawValue, data: data,
                offset: offset))
    }

    mutating func addRawTensor(name: String, dimensions: [UInt64], type: UInt32, data: [UInt8], offset: UInt64? = nil) {
        tensors.append(
            TensorEntry(name: Array(name.utf8), dimensions: dimensions, type: type, data: data, offset: offset))
    }

    // MARK: Building

    func build() -> (bytes: [UInt8], layout: Layout) {
        var out: [UInt8] = []
        var layout = Layout()
        out += magic
        out.appendLE(version)
        out.appendLE(tensorCountOverride ?? UInt64(tensors.count))
        out.appendLE(metadataCountOverride ?? UInt64(metadata.count))
        for entry in metadata {
            layout.metadataStarts.append(out.count)
            out.appendLE(UInt64(entry.key.count))
            out += entry.key
            out.appendLE(entry.type)
            out += entry.payload
        }
        // Natural data placement: each tensor at the next aligned offset after the previous one.
        var relative: [Int] = []
        var next = 0
        for t in tensors {
            relative.append(next)
            next = Self.roundUp(next + t.data.count, to: alignment)
        }
        for (t, offset) in zip(tensors, relative) {
            layout.tensorInfoStarts.append(out.count)
            out.appendLE(UInt64(t.name.count))
            out += t.name
            out.appendLE(UInt32(t.dimensions.count))
            for d in t.dimensions { out.appendLE(d) }
            out.appendLE(t.type)
            out.appendLE(t.offset ?? UInt64(offset))
        }
        layout.headerEnd = out.count
        layout.dataOffset = Self.roundUp(out.count, to: alignment)
        for (t, offset) in zip(tensors, relative) {
            let start = layout.dataOffset + offset
            out += [UInt8](repeating: 0, count: start - out.count)
            layout.tensorDataStarts.append(start)
            out += t.data
        }
        layout.size = out.count
        return (out, layout)
    }

    static func roundUp(_ n: Int, to alignment: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    // MARK: Value encoding (GGUF `gguf_metadata_value_type`)

    static func typeID(of value: GGUFValue) -> UInt32 {
        switch value {
        case .uint8: return 0
        case .int8: return 1
        case .uint16: return 2
        case .int16: return 3
        case .uint32: return 4
        case .int32: return 5
        case .float32: return 6
        case .bool: return 7
        case .string: return 8
        case .array: return 9
        case .uint64: return 10
        case .int64: return 11
        case .float64: return 12
        }
    }

    /// The value's bytes without its type id. An array takes its element type from its first item.
    static func encode(_ value: GGUFValue, into out: inout [UInt8]) {
        switch value {
        case let .uint8(v): out.appendLE(v)
        case let .int8(v): out.appendLE(v)
        case let .uint16(v): out.appendLE(v)
        case let .int16(v): out.appendLE(v)
        case let .uint32(v): out.appendLE(v)
        case let .int32(v): out.appendLE(v)
        case let .float32(v): out.appendLE(v.bitPattern)
        case let .bool(v): out.append(v ? 1 : 0)
        case let .string(s):
            out.appendLE(UInt64(s.utf8.count))
            out += Array(s.utf8)
        case let .array(items):
            out.appendLE(items.first.map(typeID(of:)) ?? 0)
            out.appendLE(UInt64(items.count))
            for item in items { encode(item, into: &out) }
        case let .uint64(v): out.appendLE(v)
        case let .int64(v): out.appendLE(v)
        case let .float64(v): out.appendLE(v.bitPattern)
        }
    }

    /// A GGUF string (u64 length + bytes) from raw bytes, valid UTF-8 or not.
    static func rawString(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.appendLE(UInt64(bytes.count))
        return out + bytes
    }
}

extension Array where Element == UInt8 {
    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    /// Overwrites `MemoryLayout<T>.size` bytes at `offset` with `value`, little-endian.
    mutating func writeLE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        Swift.withUnsafeBytes(of: value.littleEndian) { raw in
            for (i, b) in raw.enumerated() { self[offset + i] = b }
        }
    }

    func readLE<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        var v: T = 0
        for i in 0..<MemoryLayout<T>.size { v |= T(truncatingIfNeeded: self[offset + i]) << (8 * i) }
        return v
    }
}

/// A unique directory under the system temporary directory, removed when released.
final class ScratchDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("chorus-gguf-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// Writes `bytes` to `name` in this directory and returns the path.
    func write(_ bytes: [UInt8], name: String = "file.gguf") throws -> String {
        let path = url.appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Parses `bytes` as a GGUF file on disk: the file, or the typed error.
    func parse(_ bytes: [UInt8], name: String = "file.gguf") throws -> Result<GGUFFile, ModelError> {
        let path = try write(bytes, name: name)
        do {
            return .success(try GGUFFile(path: path))
        } catch {
            return .failure(error)
        }
    }

    deinit { try? FileManager.default.removeItem(at: url) }
}
