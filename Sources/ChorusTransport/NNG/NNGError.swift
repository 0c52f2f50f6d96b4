import CNNG

/// NNG result codes the transport distinguishes (values of `enum nng_errno_enum`, nng_errno(3)).
enum NNGCode {
    static let timedOut = code(NNG_ETIMEDOUT)
    static let cancelled = code(NNG_ECANCELED)
    static let closed = code(NNG_ECLOSED)
    static let messageSize = code(NNG_EMSGSIZE)
    static let addressInUse = code(NNG_EADDRINUSE)
    static let addressInvalid = code(NNG_EADDRINVAL)
    static let notSupported = code(NNG_ENOTSUP)
    static let connectionReset = code(NNG_ECONNRESET)
    static let connectionRefused = code(NNG_ECONNREFUSED)
    static let connectionShut = code(NNG_ECONNSHUT)
    static let crypto = code(NNG_ECRYPTO)
    static let peerAuth = code(NNG_EPEERAUTH)
    static let noFile = code(NNG_ENOENT)

    private static func code(_ value: nng_errno_enum) -> Int32 { Int32(bitPattern: value.rawValue) }

    /// `nng_strerror(code)` as a Swift string.
    static func message(_ code: Int32) -> String {
        guard let text = nng_strerror(code) else { return "unknown error" }
        return String(cString: text)
    }
}

extension TransportError {
    /// Maps an NNG result code to the typed error. `address` and `timeout` give context.
    static func fromNNG(_ code: Int32, address: String = "", timeout: Duration = .zero) -> TransportError {
        switch code {
        case NNGCode.timedOut: return .timedOut(after: timeout)
        case NNGCode.cancelled: return .cancelled
        case NNGCode.closed: return .closed
        case NNGCode.addressInUse: return .addressInUse(address)
        case NNGCode.addressInvalid, NNGCode.notSupported:
            return .invalidAddress(address, reason: NNGCode.message(code))
        case NNGCode.connectionReset, NNGCode.connectionRefused, NNGCode.connectionShut:
            return .connectionLost(NNGCode.message(code))
        case NNGCode.crypto, NNGCode.peerAuth: return .tls(NNGCode.message(code))
        default: return .nng(code: code, message: NNGCode.message(code))
        }
    }
}

/// Bytes added to a receive limit for the SP protocol header that travels with every message
/// and that NNG counts against NNG_OPT_RECVMAXSZ (observed with 1.5.2: a 1024-byte REQ body is
/// 1028 bytes on the wire — the 4-byte request id; REP backtraces grow by 4 bytes per hop).
/// With it, `receiveLimit` means body bytes.
let spHeaderHeadroom = 64

/// Throws the mapped error unless `code` is 0.
@inline(__always)
func check(_ code: Int32, address: String = "") throws(TransportError) {
    if code != 0 { throw TransportError.fromNNG(code, address: address) }
}

extension Duration {
    /// This duration as NNG milliseconds, rounded up so a short positive timeout never becomes 0
    /// (which NNG treats as "poll, fail at once"), and clamped to `Int32`.
    var nngMilliseconds: nng_duration {
        if self <= .zero { return 0 }
        let (seconds, attoseconds) = components
        let millis = seconds.multipliedReportingOverflow(by: 1000)
        if millis.overflow { return nng_duration(Int32.max) }
        let total = millis.partialValue + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return nng_duration(min(total, Int64(Int32.max)))
    }
}
