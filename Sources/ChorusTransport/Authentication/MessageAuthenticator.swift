import ChorusCrypto

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Seals and opens the cluster's messages with a pre-shared key: an envelope around the bytes the
/// layers above exchange, with an HMAC-SHA256 tag (RFC 2104; ``HMACSHA256``) that binds
///
/// * a request to its own fresh random nonce and send time, which the server checks for freshness
///   (±``clockSkew``) and remembers for as long as the time check would pass (``ReplayGuard``), so an
///   old request replayed is refused;
/// * a reply to the nonce of the request it answers, so a reply recorded earlier (another round,
///   another session) never answers a new request;
/// * the whole message body, in which the Chorus messages carry their session and round.
///
/// Layout (integers big-endian):
///
///     request: "CHMA" | version u8 = 1 | kind u8 = 1 | nonce [16] | sent u64 (ms since 1970) | body | tag [32]
///     reply:   "CHMA" | version u8 = 1 | kind u8 = 2 | body | tag [32]
///     request tag = HMAC(K, every request byte before the tag)
///     reply tag   = HMAC(K, request nonce ‖ every reply byte before the tag)
///
/// The kind byte is under the tag, so a request cannot be passed off as a reply or the reverse. Tags
/// are compared in constant time. Wrap a connector with ``connector(wrapping:)`` and a handler with
/// ``guarding(_:onReject:)``: the same code serves NNG and the in-process network.
public struct MessageAuthenticator: Sendable {
    public static let magic: [UInt8] = Array("CHMA".utf8)
    public static let version: UInt8 = 1
    public static let nonceLength = 16
    static let requestKind: UInt8 = 1
    static let replyKind: UInt8 = 2
    /// magic, version, kind.
    static let prefixLength = 6
    static let requestHeaderLength = prefixLength + nonceLength + 8

    /// How far a request's send time may be from this host's clock.
    public let clockSkew: Duration
    let mac: HMACSHA256
    let fingerprint: String
    let wallClock: @Sendable () -> Int64
    let replays: ReplayGuard
    private let counters = Locked(Counters())

    /// Requests refused and replies dropped so far, by this authenticator.
    public struct Counters: Sendable, Equatable {
        public var rejectedRequests = 0
        public var rejectedReplies = 0
    }

    /// - Parameters:
    ///   - clockSkew: how far a request's send time may be from this host's wall clock (and how long its
    ///     nonce is remembered after that). Hosts' clocks must agree within it (NTP).
    ///   - replayCapacity: nonces remembered at most; beyond it requests are refused, not forgotten.
    ///   - wallClock: milliseconds since 1970 (tests pass their own).
    public init(
        key: PresharedKey, clockSkew: Duration = .seconds(60), replayCapacity: Int = 1 << 20,
        wallClock: @escaping @Sendable () -> Int64 = MessageAuthenticator.unixMilliseconds
    ) {
        mac = HMACSHA256(key: key.bytes)
        fingerprint = key.fingerprint
        self.clockSkew = clockSkew
        self.wallClock = wallClock
        replays = ReplayGuard(capacity: replayCapacity)
    }

    public var counts: Counters { counters.withLock { $0 } }

    /// Request nonces remembered now (bounded by the request rate times the freshness window).
    public var rememberedNonces: Int { replays.count }

    /// The key's public fingerprint (``PresharedKey/fingerprint``).
    public var keyFingerprint: String { fingerprint }

    /// The system's wall clock in milliseconds since 1970 (CLOCK_REALTIME).
    public static func unixMilliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    var skewMilliseconds: Int64 {
        let (seconds, attoseconds) = clockSkew.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    // MARK: Requests

    /// Seals `body` as a request with a fresh nonce (from the system's cryptographic generator) and the
    /// current time; returns the message and the nonce its reply must be bound to.
    public func sealRequest(_ body: [UInt8]) -> (message: [UInt8], nonce: [UInt8]) {
        var generator = SystemRandomNumberGenerator()
        var nonce: [UInt8] = []
        nonce.reserveCapacity(Self.nonceLength)
        for _ in 0..<(Self.nonceLength / 8) {
            let word = generator.next()
            for shift in stride(from: 56, through: 0, by: -8) { nonce.append(UInt8(truncatingIfNeeded: word >> shift)) }
        }
        return (sealRequest(body, nonce: nonce, sentAt: wallClock()), nonce)
    }

    /// Seals with a given nonce and time (tests; production uses ``sealRequest(_:)``).
    func sealRequest(_ body: [UInt8], nonce: [UInt8], sentAt: Int64) -> [UInt8] {
        var message = Self.magic + [Self.version, Self.requestKind] + nonce
        message.reserveCapacity(Self.requestHeaderLength + body.count + HMACSHA256.tagLength)
        let sent = UInt64(bitPattern: sentAt)
        for shift in stride(from: 56, through: 0, by: -8) { message.append(UInt8(truncatingIfNeeded: sent >> shift)) }
        message += body
        message += mac.authenticationCode(for: message)
        return message
    }

    /// Checks a request: envelope, tag, freshness, then that its nonce is new. Returns the body and the
    /// nonce to bind the reply to.
    public func openRequest(_ message: [UInt8]) -> Result<(body: [UInt8], nonce: [UInt8]), AuthenticationFailure> {
        if let problem = envelopeProblem(message, kind: Self.requestKind, headerLength: Self.requestHeaderLength) {
            return .failure(problem)
        }
        let signed = message.count - HMACSHA256.tagLength
        var tagger = mac.tagger()
        message.withUnsafeBytes { tagger.update(UnsafeRawBufferPointer(rebasing: $0[..<signed])) }
        guard ConstantTime.equals(tagger.finalize(), Array(message[signed...])) else { return .failure(.badTag) }
        let nonce = Array(message[Self.prefixLength..<(Self.prefixLength + Self.nonceLength)])
        var sent: UInt64 = 0
        for byte in message[(Self.prefixLength + Self.nonceLength)..<Self.requestHeaderLength] {
            sent = sent << 8 | UInt64(byte)
        }
        let sentAt = Int64(bitPattern: sent)
        let now = wallClock()
        let allowed = skewMilliseconds
        let (skew, overflow) = now.subtractingReportingOverflow(sentAt)
        guard !overflow, skew.magnitude <= allowed.magnitude else {
            return .failure(.stale(skewMilliseconds: overflow ? .max : skew, allowedMilliseconds: allowed))
        }
        // Remembered until the time check alone refuses it.
        if let problem = replays.admit(nonce, until: sentAt + allowed, now: now) { return .failure(problem) }
        return .success((Array(message[Self.requestHeaderLength..<signed]), nonce))
    }

    // MARK: Replies

    /// Seals `body` as the reply to the request whose nonce is `nonce`.
    public func sealReply(_ body: [UInt8], to nonce: [UInt8]) -> [UInt8] {
        var message = Self.magic + [Self.version, Self.replyKind]
        message.reserveCapacity(Self.prefixLength + body.count + HMACSHA256.tagLength)
        message += body
        var tagger = mac.tagger()
        tagger.update(nonce)
        tagger.update(message)
        message += tagger.finalize()
        return message
    }

    /// Checks a reply against the nonce of the request it should answer; returns its body.
    public func openReply(_ message: [UInt8], to nonce: [UInt8]) -> Result<[UInt8], AuthenticationFailure> {
        if let problem = envelopeProblem(message, kind: Self.replyKind, headerLength: Self.prefixLength) {
            return .failure(problem)
        }
        let signed = message.count - HMACSHA256.tagLength
        var tagger = mac.tagger()
        tagger.update(nonce)
        message.withUnsafeBytes { tagger.update(UnsafeRawBufferPointer(rebasing: $0[..<signed])) }
        guard ConstantTime.equals(tagger.finalize(), Array(message[signed...])) else { return .failure(.badTag) }
        return .success(Array(message[Self.prefixLength..<signed]))
    }

    func envelopeProblem(_ message: [UInt8], kind: UInt8, headerLength: Int) -> AuthenticationFailure? {
        guard message.count >= Self.prefixLength, Array(message[0..<4]) == Self.magic else { return .notAuthenticated }
        guard message[4] == Self.version else {
            return .malformedEnvelope("version \(message[4]), this build speaks \(Self.version)")
        }
        guard message[5] == kind else {
            return .malformedEnvelope(
                "a \(message[5] == Self.requestKind ? "request" : "reply") where a "
                    + "\(kind == Self.requestKind ? "request" : "reply") belongs")
        }
        guard message.count >= headerLength + HMACSHA256.tagLength else {
            return .malformedEnvelope("\(message.count) bytes, shorter than its header and tag")
        }
        return nil
    }

    func countRejected(request: Bool) {
        counters.withLock { request ? ($0.rejectedRequests += 1) : ($0.rejectedReplies += 1) }
    }
}

/// The request nonces a server has accepted, each kept until its request's time check would refuse it
/// anyway, so memory is bounded by the request rate times the freshness window.
final class ReplayGuard: Sendable {
    private struct State {
        var seen: Set<[UInt8]> = []
        /// (forget after, nonce) in arrival order; `head` is the first live entry.
        var queue: [(expiry: Int64, nonce: [UInt8])] = []
        var head = 0
    }

    let capacity: Int
    private let state = Locked(State())

    init(capacity: Int) { self.capacity = capacity }

    /// Records `nonce` (forgotten after `expiry`); nil when new, the failure otherwise.
    func admit(_ nonce: [UInt8], until expiry: Int64, now: Int64) -> AuthenticationFailure? {
        state.withLock { state in
            // Forget what the time check now refuses on its own (in arrival order: an entry that
            // lives longer only delays forgetting the ones behind it).
            while state.head < state.queue.count, state.queue[state.head].expiry < now {
                state.seen.remove(state.queue[state.head].nonce)
                state.head += 1
            }
            if state.head > 1024, state.head * 2 > state.queue.count {
                state.queue.removeFirst(state.head)
                state.head = 0
            }
            if state.seen.contains(nonce) { return .replayed }
            guard state.seen.count < capacity else { return .replayCacheFull(capacity) }
            state.seen.insert(nonce)
            state.queue.append((expiry, nonce))
            return nil
        }
    }

    var count: Int { state.withLock { $0.seen.count } }
}
