import ChorusCrypto
import Testing

/// HMAC-SHA256 against the test vectors of RFC 4231 §4.2–4.8 (published with the RFC; also what Python's
/// `hmac` module gives), and the constant-time comparison.
@Suite struct HMACSHA256Tests {
    struct Vector: Sendable, CustomTestStringConvertible {
        var name: String
        var key: [UInt8]
        var data: [UInt8]
        /// Expected tag in hex; test case 5 publishes only the first 128 bits.
        var tag: String
        var testDescription: String { name }
    }

    static let vectors: [Vector] = [
        Vector(
            name: "RFC 4231 test case 1", key: [UInt8](repeating: 0x0b, count: 20), data: Array("Hi There".utf8),
            tag: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        Vector(
            name: "RFC 4231 test case 2 (key shorter than the tag)", key: Array("Jefe".utf8),
            data: Array("what do ya want for nothing?".utf8),
            tag: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        Vector(
            name: "RFC 4231 test case 3", key: [UInt8](repeating: 0xaa, count: 20),
            data: [UInt8](repeating: 0xdd, count: 50),
            tag: "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        Vector(
            name: "RFC 4231 test case 4", key: Array(1...25), data: [UInt8](repeating: 0xcd, count: 50),
            tag: "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        Vector(
            name: "RFC 4231 test case 5 (truncated to 128 bits)", key: [UInt8](repeating: 0x0c, count: 20),
            data: Array("Test With Truncation".utf8), tag: "a3b6167473100ee06e0c796c2955552b"),
        Vector(
            name: "RFC 4231 test case 6 (key longer than a block)", key: [UInt8](repeating: 0xaa, count: 131),
            data: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
            tag: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        Vector(
            name: "RFC 4231 test case 7 (key and data longer than a block)",
            key: [UInt8](repeating: 0xaa, count: 131),
            data: Array(
                ("This is a test using a larger than block-size key and a larger than block-size data. The key needs "
                    + "to be hashed before being used by the HMAC algorithm.").utf8),
            tag: "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
    ]

    @Test(arguments: vectors)
    func rfc4231(_ vector: Vector) {
        let tag = HMACSHA256(key: vector.key).authenticationCode(for: vector.data)
        #expect(tag.count == HMACSHA256.tagLength)
        #expect(SHA256.hex(tag).hasPrefix(vector.tag))
        #expect(vector.tag.count == 64 || vector.tag.count == 32)
    }

    /// Feeding the message in parts (any split, including empty parts) gives the one-shot tag.
    @Test(arguments: vectors)
    func streamingEqualsOneShot(_ vector: Vector) {
        let mac = HMACSHA256(key: vector.key)
        let whole = mac.authenticationCode(for: vector.data)
        for split in [0, 1, vector.data.count / 2, vector.data.count] {
            var tagger = mac.tagger()
            tagger.update(Array(vector.data[..<split]))
            tagger.update([])
            tagger.update(Array(vector.data[split...]))
            #expect(tagger.finalize() == whole)
        }
        // The same HMAC value tags again (its precomputed key blocks are not consumed).
        #expect(mac.authenticationCode(for: vector.data) == whole)
    }

    /// A key of exactly one block is used as it is; one byte more is hashed first: different tags.
    @Test func blockLengthBoundary() {
        let data = Array("chorus".utf8)
        let block = [UInt8](repeating: 0x5a, count: 64)
        let tag64 = HMACSHA256(key: block).authenticationCode(for: data)
        let tag65 = HMACSHA256(key: block + [0x5a]).authenticationCode(for: data)
        let hashed = HMACSHA256(key: SHA256.hash(block + [0x5a])).authenticationCode(for: data)
        #expect(tag64 != tag65)
        #expect(tag65 == hashed)
    }

    @Test func constantTimeEquals() {
        let a: [UInt8] = Array(0..<32)
        #expect(ConstantTime.equals(a, a))
        for i in a.indices {
            var b = a
            b[i] ^= 0x01
            #expect(!ConstantTime.equals(a, b), "byte \(i) differs")
        }
        #expect(!ConstantTime.equals(a, Array(a.dropLast())))
        #expect(ConstantTime.equals([], []))
    }
}
