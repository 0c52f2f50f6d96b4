import CNNG

/// Conversions between Swift byte arrays and `nng_msg` (nng_msg(5)).
enum NNGMessage {
    /// Allocates an `nng_msg` holding `bytes`. The caller owns it until NNG accepts it.
    static func make(_ bytes: [UInt8]) throws(TransportError) -> OpaquePointer {
        var message: OpaquePointer?
        try check(nng_msg_alloc(&message, 0))
        guard let message else { throw .nng(code: -1, message: "nng_msg_alloc returned no message") }
        let appended = bytes.withUnsafeBytes { buffer in
            buffer.isEmpty ? 0 : nng_msg_append(message, buffer.baseAddress, buffer.count)
        }
        if appended != 0 {
            nng_msg_free(message)
            throw TransportError.fromNNG(appended)
        }
        return message
    }

    /// Copies the body of `message` out and frees it (it is consumed).
    static func consume(_ message: OpaquePointer) -> [UInt8] {
        let length = nng_msg_len(message)
        var bytes = [UInt8](repeating: 0, count: length)
        if length > 0, let body = nng_msg_body(message) {
            bytes.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: body, count: length)) }
        }
        nng_msg_free(message)
        return bytes
    }
}
