/// Why an authenticated message was refused (``MessageAuthenticator``). Each case says what to check.
public enum AuthenticationFailure: Error, Sendable, Hashable, CustomStringConvertible {
    /// Not an envelope at all: the peer sends plain messages (it runs without a key), or garbage.
    case notAuthenticated
    /// An envelope of another version or kind, or too short to hold its header and tag.
    case malformedEnvelope(String)
    /// The tag does not match: another key, or the message was altered on the way.
    case badTag
    /// The request's timestamp is `skewMilliseconds` away from this host's clock, more than allowed:
    /// an old request replayed, or clocks out of step.
    case stale(skewMilliseconds: Int64, allowedMilliseconds: Int64)
    /// A request nonce seen before within the freshness window: a replay.
    case replayed
    /// Too many requests within one freshness window to remember them all: refused rather than
    /// forgetting nonces that could then be replayed.
    case replayCacheFull(Int)

    public var description: String {
        switch self {
        case .notAuthenticated:
            return "message without an authentication envelope: the peer runs without the cluster key; "
                + "give every coordinator, worker and client the same --key-file"
        case .malformedEnvelope(let detail):
            return "malformed authentication envelope (\(detail)): the peer runs another Chorus version, "
                + "or sent garbage"
        case .badTag:
            return "authentication tag does not match: the peer holds a different cluster key (compare the key "
                + "fingerprints in both logs) or the message was altered"
        case .stale(let skew, let allowed):
            return "request timestamp is \(skew) ms off this host's clock (allowed ±\(allowed) ms): "
                + "a replayed request, or clocks out of step (synchronise them with NTP)"
        case .replayed:
            return "request nonce already seen: a replayed request"
        case .replayCacheFull(let capacity):
            return "more than \(capacity) requests within the freshness window: refused (replay cache full)"
        }
    }
}
