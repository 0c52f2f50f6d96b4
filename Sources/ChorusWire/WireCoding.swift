/// Little-endian writer for the Chorus protocol.
public struct WireWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }
    public mutating func u16(_ v: UInt16) { integer(v) }
    public mutating func u32(_ v: UInt32) { integer(v) }
    public mutating func u64(_ v: UInt64) { integer(v) }
    public mutating func f32(_ v: Float) { integer(v.bitPattern) }
    public mutating func f64(_ v: Double) { integer(v.bitPattern) }

    mutating func integer<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// UTF-8 with a u32 length.
    public mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        u32(UInt32(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    /// Unsigned LEB128 (7 bits per byte, low group first, high bit = more follows), in its shortest
    /// form: 1 byte below 2^7, 2 below 2^14, 3 below 2^21, 4 below 2^28, else 5.
    public mutating func varint(_ v: UInt32) {
        var x = v
        while x >= 0x80 {
            bytes.append(UInt8(x & 0x7F) | 0x80)
            x >>= 7
        }
        bytes.append(UInt8(x))
    }

    /// Token ids as u32 with a u32 count.
    public mutating func tokens(_ ts: [Int]) {
        u32(UInt32(ts.count))
        for t in ts { u32(UInt32(truncatingIfNeeded: t)) }
    }
}

/// Bounds-checked little-endian reader; every failure is a ``WireError`` naming the field.
public struct WireReader {
    let bytes: [UInt8]
    public private(set) var position = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var remaining: Int { bytes.count - position }

    mutating func need(_ n: Int, _ field: String) throws(WireError) {
        guard n >= 0, n <= remaining else { throw WireError.truncated(field: field, needed: n, available: remaining) }
    }

    mutating func integer<T: FixedWidthInteger>(_: T.Type, _ field: String) throws(WireError) -> T {
        let size = MemoryLayout<T>.size
        try need(size, field)
        var v: T = 0
        for i in 0..<size { v |= T(bytes[position + i]) << (8 * i) }
        position += size
        return v
    }

    public mutating func u8(_ field: String) throws(WireError) -> UInt8 { try integer(UInt8.self, field) }
    public mutating func u16(_ field: String) throws(WireError) -> UInt16 { try integer(UInt16.self, field) }
    public mutating func u32(_ field: String) throws(WireError) -> UInt32 { try integer(UInt32.self, field) }
    public mutating func u64(_ field: String) throws(WireError) -> UInt64 { try integer(UInt64.self, field) }
    public mutating func f32(_ field: String) throws(WireError) -> Float { Float(bitPattern: try u32(field)) }
    public mutating func f64(_ field: String) throws(WireError) -> Double { Double(bitPattern: try u64(field)) }

    /// An unsigned LEB128 value that fits in 32 bits, in its shortest form only: a longer encoding
    /// of the same value (a last byte of 0 after the first) or a value past 2^32 − 1 is refused, so
    /// every value has exactly one encoding and a decoded message re-encodes to the same bytes.
    public mutating func varint(_ field: String) throws(WireError) -> UInt32 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        for index in 0..<5 {
            let byte = try u8(field)
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 {
                guard byte != 0 || index == 0 else {
                    throw WireError.invalidValue(field: field, reason: "varint not in its shortest form")
                }
                guard value <= UInt64(UInt32.max) else {
                    throw WireError.invalidValue(field: field, reason: "varint \(value) above 2^32 − 1")
                }
                return UInt32(value)
            }
            shift += 7
        }
        throw WireError.invalidValue(field: field, reason: "varint longer than 5 bytes")
    }

    public mutating func bool(_ field: String) throws(WireError) -> Bool {
        let b = try u8(field)
        guard b <= 1 else { throw WireError.invalidValue(field: field, reason: "boolean byte \(b)") }
        return b == 1
    }

    /// A count checked against `limit` and against the bytes left (`bytesEach` per item).
    public mutating func count(_ field: String, limit: Int, bytesEach: Int) throws(WireError) -> Int {
        let n = Int(try u32(field))
        guard n <= limit else { throw WireError.tooLarge(field: field, count: n, limit: limit) }
        try need(n * bytesEach, field)
        return n
    }

    /// A vocabulary size: 1 … ``WireLimits/vocabulary``.
    public mutating func vocabularySize(_ field: String = "vocabulary size") throws(WireError) -> Int {
        let n = Int(try u32(field))
        guard n >= 1, n <= WireLimits.vocabulary else { throw WireError.invalidValue(field: field, reason: "\(n)") }
        return n
    }

    public mutating func string(_ field: String, limit: Int = 4096) throws(WireError) -> String {
        let n = try count(field, limit: limit, bytesEach: 1)
        let slice = bytes[position..<(position + n)]
        position += n
        guard let s = String(validating: slice, as: UTF8.self) else {
            throw WireError.invalidValue(field: field, reason: "not valid UTF-8")
        }
        return s
    }

    /// Token ids, each `< vocabularySize`.
    public mutating func tokens(_ field: String, limit: Int, vocabularySize: Int) throws(WireError) -> [Int] {
        let n = try count(field, limit: limit, bytesEach: 4)
        var result: [Int] = []
        result.reserveCapacity(n)
        for i in 0..<n {
            let t = Int(try u32(field))
            guard t < vocabularySize else {
                throw WireError.invalidValue(
                    field: "\(field)[\(i)]", reason: "token \(t) outside vocabulary of \(vocabularySize)")
            }
            result.append(t)
        }
        return result
    }

    /// Throws unless every byte was consumed.
    public func finish() throws(WireError) {
        guard remaining == 0 else { throw WireError.trailingBytes(remaining) }
    }
}
