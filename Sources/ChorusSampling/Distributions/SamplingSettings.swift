import Foundation

/// How a model's logits become the distribution a token is drawn from.
///
/// The order is fixed and documented because the result *is* the distribution that sampling and
/// verification use: (1) temperature, (2) softmax, (3) top-k, (4) top-p, (5) renormalise.
/// Temperature 0 means greedy: all mass on the arg-max (ties: the lowest token id).
/// Top-k keeps the k most probable tokens (ties broken by lower token id); top-p then keeps the
/// smallest prefix of the remaining tokens, most probable first, whose mass reaches `topP`.
public struct SamplingSettings: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    /// ≥ 0; 0 is greedy.
    public var temperature: Double
    /// 0 disables; otherwise keep this many tokens.
    public var topK: Int
    /// In (0, 1]; 1 disables.
    public var topP: Double

    public init(temperature: Double = 1, topK: Int = 0, topP: Double = 1) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
    }

    public static let standard = SamplingSettings()
    public static let greedy = SamplingSettings(temperature: 0)

    /// Throws ``SamplingError/invalidSamplingSettings(_:)`` naming the bad field.
    public func validate() throws {
        guard temperature.isFinite, temperature >= 0 else {
            throw SamplingError.invalidSamplingSettings("temperature must be finite and ≥ 0, got \(temperature)")
        }
        guard topK >= 0 else { throw SamplingError.invalidSamplingSettings("top-k must be ≥ 0, got \(topK)") }
        guard topP > 0, topP <= 1 else {
            throw SamplingError.invalidSamplingSettings("top-p must be in (0, 1], got \(topP)")
        }
    }

    public var description: String {
        "temperature \(temperature), top-k \(topK == 0 ? "off" : String(topK)), top-p \(topP == 1 ? "off" : String(topP))"
    }
}

extension TokenDistribution {
    /// The exact distribution that sampling with `settings` draws from, given `logits: [vocabularySize]`.
    ///
    /// Without top-k/top-p (the common case, and the coordinator's target law per tree node) one fused
    /// pass computes the same float64 values as the general path, operation for operation — widen,
    /// subtract the max, scale by 1/T, exp, sum in token order, divide — in one vector of n entries
    /// instead of five, so the law is bit for bit the same.
    public init(logits: [Float], settings: SamplingSettings) throws {
        let truncates = (settings.topK > 0 && settings.topK < logits.count) || settings.topP < 1
        guard !logits.isEmpty, settings.temperature > 0, settings.topK != 1, !truncates else {
            try self.init(logits: logits.map(Double.init), settings: settings)
            return
        }
        try settings.validate()
        let maxIndex = try largestLogit(logits)
        let maxLogit = Double(logits[maxIndex])
        let invT = 1 / settings.temperature
        let n = logits.count
        var sum = 0.0
        var probabilities = [Double](unsafeUninitializedCapacity: n) { buffer, count in
            logits.withUnsafeBufferPointer { l in
                for i in 0..<n {
                    let w = (Double(l[i]) - maxLogit) * invT
                    let e = w == -.infinity ? 0 : exp(w)
                    buffer[i] = e
                    sum += e
                }
            }
            count = n
        }
        var support: [Int] = []
        support.reserveCapacity(n)
        probabilities.withUnsafeMutableBufferPointer { p in
            for i in 0..<n {
                let v = p[i] / sum
                p[i] = v
                if v > 0 { support.append(i) }
            }
        }
        self.init(unchecked: probabilities, support: support)
    }

    /// The exact distribution that sampling with `settings` draws from, given `logits: [vocabularySize]`.
    public init(logits: [Double], settings: SamplingSettings) throws {
        try settings.validate()
        guard !logits.isEmpty else { throw SamplingError.invalidSupport("empty logits") }
        let maxIndex = try largestLogit(logits)
        if settings.temperature == 0 || settings.topK == 1 {
            self = .oneHot(maxIndex, vocabularySize: logits.count)
            return
        }
        let maxLogit = logits[maxIndex]
        let invT = 1 / settings.temperature
        var weights = logits.map { ($0 - maxLogit) * invT }
        for i in weights.indices { weights[i] = weights[i] == -.infinity ? 0 : exp(weights[i]) }

        let n = weights.count
        let needsTruncation = (settings.topK > 0 && settings.topK < n) || settings.topP < 1
        if needsTruncation {
            // Order tokens by weight descending, ties by token id (a stable, portable order).
            var order = Array(0..<n)
            order.sort { weights[$0] != weights[$1] ? weights[$0] > weights[$1] : $0 < $1 }
            var keep = settings.topK > 0 ? min(settings.topK, n) : n
            if settings.topP < 1 {
                var total = 0.0
                for r in 0..<keep { total += weights[order[r]] }
                var acc = 0.0
                var cut = keep
                for r in 0..<keep {
                    acc += weights[order[r]]
                    if acc >= settings.topP * total {
                        cut = r + 1
                        break
                    }
                }
                keep = cut
            }
            var truncated = [Double](repeating: 0, count: n)
            for r in 0..<keep { truncated[order[r]] = weights[order[r]] }
            weights = truncated
        }
        try self.init(weights: weights)
    }
}

/// The index of the largest of `logits` (non-empty; the first of equal maxima). Throws on a NaN or
/// +infinity logit, and when every logit is -infinity.
func largestLogit<T: BinaryFloatingPoint>(_ logits: [T]) throws -> Int {
    var maxIndex = 0
    for (i, v) in logits.enumerated() {
        guard !v.isNaN, v != .infinity else {
            throw SamplingError.invalidSamplingSettings("logit \(i) is \(Double(v))")
        }
        if v > logits[maxIndex] { maxIndex = i }
    }
    guard logits[maxIndex] > -.infinity else {
        throw SamplingError.invalidSamplingSettings("every logit is -infinity")
    }
    return maxIndex
}
