/// Why a message could not be decoded. The decoder is strict: every length, count and value is
/// checked, and anything unexpected is one of these, never a crash.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    case badMagic(found: [UInt8])
    case unsupportedVersion(found: UInt16, supported: UInt16)
    case unknownKind(UInt8)
    /// The message ends inside `field`: `needed` bytes, `available` left.
    case truncated(field: String, needed: Int, available: Int)
    /// Bytes left over after a complete message.
    case trailingBytes(Int)
    /// A count above the protocol's limit.
    case tooLarge(field: String, count: Int, limit: Int)
    /// A value outside its domain (negative probability, token outside the vocabulary, bad UTF-8…).
    case invalidValue(field: String, reason: String)

    public var description: String {
        switch self {
        case let .badMagic(found): return "not a Chorus message (magic \(found))"
        case let .unsupportedVersion(found, supported):
            return "protocol version \(found) is not supported (this build speaks \(supported)); upgrade the older side"
        case let .unknownKind(kind): return "unknown message kind \(kind)"
        case let .truncated(field, needed, available):
            return "message truncated in \(field): needs \(needed) bytes, \(available) left"
        case let .trailingBytes(n): return "\(n) unexpected bytes after the message"
        case let .tooLarge(field, count, limit): return "\(field) is \(count), above the limit \(limit)"
        case let .invalidValue(field, reason): return "invalid \(field): \(reason)"
        }
    }
}
