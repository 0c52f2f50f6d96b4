/// Cuts streamed text at the first stop sequence (OpenAI `stop`): text is released as it arrives,
/// except a tail that could still be the start of a stop sequence, which is held back until it is
/// decided. Once a stop sequence appears, everything from its first character on is dropped.
///
/// Invariant: the concatenation of everything ``append(_:)`` and ``finish()`` return equals the whole
/// text cut before the first occurrence of any stop sequence (the whole text when none occurs), so a
/// stream and a non-streamed answer are the same text.
public struct StopSequenceFilter: Sendable {
    public let stops: [String]
    /// Text received but not yet released (a possible start of a stop sequence).
    var pending = ""
    /// Set once a stop sequence was found; later text is ignored.
    public private(set) var stopped = false

    public init(stops: [String]) {
        self.stops = stops.filter { !$0.isEmpty }
    }

    /// Takes the next piece of text; returns what can be released now.
    public mutating func append(_ text: String) -> String {
        guard !stopped else { return "" }
        pending += text
        if stops.isEmpty {
            defer { pending = "" }
            return pending
        }
        // The earliest complete stop sequence wins.
        var cut: String.Index?
        for stop in stops {
            if let r = pending.range(of: stop), cut.map({ r.lowerBound < $0 }) ?? true { cut = r.lowerBound }
        }
        if let cut {
            stopped = true
            defer { pending = "" }
            return String(pending[..<cut])
        }
        // Hold back the longest suffix that is a proper prefix of some stop sequence.
        var keep = 0
        for stop in stops {
            for length in stride(from: min(stop.count - 1, pending.count), to: keep, by: -1)
            where pending.hasSuffix(stop.prefix(length)) {
                keep = length
                break
            }
        }
        let releaseEnd = pending.index(pending.endIndex, offsetBy: -keep)
        defer { pending = String(pending[releaseEnd...]) }
        return String(pending[..<releaseEnd])
    }

    /// The generation ended: the held-back text was not a stop sequence after all.
    public mutating func finish() -> String {
        defer { pending = "" }
        return stopped ? "" : pending
    }
}
