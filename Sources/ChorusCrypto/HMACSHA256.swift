/// HMAC-SHA256 (RFC 2104, with SHA-256 as in RFC 4231): a 32-byte tag that only holders of the key
/// can compute, over any message.
///
///     HMAC(K, m) = H((K' ⊕ opad) ‖ H((K' ⊕ ipad) ‖ m))
///
/// where K' is the key hashed first if it is longer than the 64-byte block, then zero-padded to 64
/// bytes, ipad = 0x36 repeated and opad = 0x5c repeated (RFC 2104 §2). The two padded key blocks are
/// absorbed once at `init`, so each tag costs the message's blocks plus two more.
///
/// ```swift
/// let mac = HMACSHA256(key: key)               // key: [UInt8], any length (≥ 32 bytes to be useful)
/// let tag = mac.authenticationCode(for: message)
/// ConstantTime.equals(tag, received)           // compare tags in constant time
/// ```
public struct HMACSHA256: Sendable {
    /// Tag length in bytes (SHA-256's output).
    public static let tagLength = 32
    /// SHA-256's block length B in bytes (RFC 2104 §2).
    static let blockLength = 64

    /// SHA-256 after absorbing K' ⊕ ipad, and after K' ⊕ opad.
    private let inner: SHA256
    private let outer: SHA256

    public init(key: [UInt8]) {
        var block = key.count > Self.blockLength ? SHA256.hash(key) : key
        block += [UInt8](repeating: 0, count: Self.blockLength - block.count)
        var inner = SHA256()
        inner.update(block.map { $0 ^ 0x36 })
        var outer = SHA256()
        outer.update(block.map { $0 ^ 0x5c })
        self.inner = inner
        self.outer = outer
    }

    /// A running tag over a message fed in parts (`update` any number of times, then `finalize`).
    public struct Tagger: Sendable {
        var inner: SHA256
        let outer: SHA256

        public mutating func update(_ bytes: [UInt8]) { inner.update(bytes) }
        public mutating func update(_ buffer: UnsafeRawBufferPointer) { inner.update(buffer) }

        /// The 32-byte tag of everything fed so far.
        public mutating func finalize() -> [UInt8] {
            var outer = self.outer
            outer.update(inner.finalize())
            return outer.finalize()
        }
    }

    /// Starts a tag over a message fed in parts.
    public func tagger() -> Tagger { Tagger(inner: inner, outer: outer) }

    /// The 32-byte tag of `message`.
    public func authenticationCode(for message: [UInt8]) -> [UInt8] {
        var tagger = tagger()
        tagger.update(message)
        return tagger.finalize()
    }
}

/// Comparisons whose time does not depend on where two secrets first differ.
public enum ConstantTime {
    /// True when `a` and `b` hold the same bytes. The time depends on the lengths only (tags have a
    /// public, fixed length), never on the contents: every byte is compared, differences are OR-ed.
    public static func equals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}
