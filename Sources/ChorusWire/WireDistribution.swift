import ChorusSampling

/// A token distribution as it travels: float32 probabilities (dense or sparse), or integer masses
/// with a power-of-two total (``QuantizedDistribution``, the compact form for large vocabularies).
///
/// Exactness contract (DESIGN.md "A draft carries the distribution it was actually sampled from"):
/// the float32 encoding is lossy, so a worker encodes its law first, samples from what the bytes
/// decode to (``canonical(_:)``), and sends those bytes. The coordinator decodes the same bytes with
/// the same code and gets the bit-identical distribution.
public struct WireDistribution: Sendable, Equatable {
    public enum Storage: Sendable, Equatable {
        /// probabilities: [vocabularySize]
        case dense([Float])
        /// tokens ascending, one probability each
        case sparse(tokens: [UInt32], probabilities: [Float])
        /// Integer masses summing exactly to `2^totalBits`; the worker draws from exactly this law, so
        /// nothing is lost in transit. Wire form 2 (protocol version 2):
        /// `u8 totalBits, varint m, m × varint (token − previous token) with previous = −1 at first,
        /// m × varint mass` — every varint unsigned LEB128 in its shortest form.
        case quantized(QuantizedDistribution)
    }

    public var vocabularySize: Int
    public var storage: Storage

    public init(vocabularySize: Int, storage: Storage) {
        self.vocabularySize = vocabularySize
        self.storage = storage
    }

    /// Encodes `law` in whichever form is smaller (sparse costs 8 bytes per token, dense 4 per entry).
    public init(_ law: TokenDistribution) {
        vocabularySize = law.vocabularySize
        if law.support.count * 8 < law.vocabularySize * 4 {
            storage = .sparse(
                tokens: law.support.map { UInt32($0) }, probabilities: law.support.map { Float(law.probabilities[$0]) })
        } else {
            storage = .dense(law.probabilities.map { Float($0) })
        }
    }

    /// The compact form of `law` (``Storage/quantized(_:)``).
    public init(_ law: QuantizedDistribution) {
        vocabularySize = law.vocabularySize
        storage = .quantized(law)
    }

    /// The integer law when this is the quantized form.
    public var quantized: QuantizedDistribution? {
        if case let .quantized(law) = storage { return law }
        return nil
    }

    /// The distribution these bytes stand for: for the quantized form exactly `mass / 2^totalBits`;
    /// for the float forms float32 values widened to float64 and normalised by
    /// their sum in token order. Entries must be finite and ≥ 0, and sum to 1 within 1e-3.
    public func decoded() throws(WireError) -> TokenDistribution {
        var dense = [Double](repeating: 0, count: vocabularySize)
        switch storage {
        case let .quantized(law):
            guard law.vocabularySize == vocabularySize else {
                throw WireError.invalidValue(
                    field: "distribution",
                    reason: "quantized law over \(law.vocabularySize) tokens for \(vocabularySize)")
            }
            return law.distribution
        case let .dense(values):
            guard values.count == vocabularySize else {
                throw WireError.invalidValue(
                    field: "distribution", reason: "\(values.count) entries for \(vocabularySize) tokens")
            }
            for (i, v) in values.enumerated() { dense[i] = Double(v) }
        case let .sparse(tokens, values):
            guard tokens.count == values.count else {
                throw WireError.invalidValue(
                    field: "distribution", reason: "\(tokens.count) tokens but \(values.count) probabilities")
            }
            var previous = -1
            for (t, v) in zip(tokens, values) {
                let token = Int(t)
                guard token > previous, token < vocabularySize else {
                    throw WireError.invalidValue(
                        field: "distribution",
                        reason: "sparse tokens must ascend inside the vocabulary (token \(token))")
                }
                previous = token
                dense[token] = Double(v)
            }
        }
        var sum = 0.0
        for (i, v) in dense.enumerated() {
            guard v.isFinite, v >= 0 else {
                throw WireError.invalidValue(field: "distribution", reason: "probability \(v) at token \(i)")
            }
            sum += v
        }
        guard abs(sum - 1) <= 1e-3 else {
            throw WireError.invalidValue(field: "distribution", reason: "probabilities sum to \(sum)")
        }
        do {
            return try TokenDistribution(weights: dense)
        } catch {
            throw WireError.invalidValue(field: "distribution", reason: "\(error)")
        }
    }

    /// The decoder's check, without building the law (the coordinator decodes it once, later):
    /// finite, non-negative entries whose sum, in float64 and in order, is 1 within 1e-3 — the same
    /// conditions ``decoded()`` enforces.
    static func validate(_ values: [Float], field: String) throws(WireError) {
        var sum = 0.0
        for (i, v) in values.enumerated() {
            guard v.isFinite, v >= 0 else {
                throw WireError.invalidValue(field: field, reason: "probability \(v) at entry \(i)")
            }
            sum += Double(v)
        }
        guard abs(sum - 1) <= 1e-3 else {
            throw WireError.invalidValue(field: field, reason: "probabilities sum to \(sum)")
        }
    }

    /// Bytes this law takes inside a message (vocabulary size, form and body).
    public var encodedByteCount: Int {
        var w = WireWriter(capacity: 64)
        encode(into: &w)
        return w.bytes.count
    }

    func encode(into w: inout WireWriter) {
        w.u32(UInt32(vocabularySize))
        switch storage {
        case let .dense(values):
            w.u8(0)
            w.u32(UInt32(values.count))
            for v in values { w.f32(v) }
        case let .sparse(tokens, values):
            w.u8(1)
            w.u32(UInt32(tokens.count))
            for (t, v) in zip(tokens, values) {
                w.u32(t)
                w.f32(v)
            }
        case let .quantized(law):
            w.u8(2)
            w.u8(UInt8(law.totalBits))
            w.varint(UInt32(law.tokens.count))
            var previous: Int32 = -1
            for t in law.tokens {
                w.varint(UInt32(t - previous))
                previous = t
            }
            for mass in law.masses { w.varint(mass) }
        }
    }

    static func decode(from r: inout WireReader, vocabularySize expected: Int) throws(WireError) -> WireDistribution {
        let n = Int(try r.u32("distribution vocabulary size"))
        guard n == expected else {
            throw WireError.invalidValue(field: "distribution", reason: "vocabulary \(n), expected \(expected)")
        }
        let form = try r.u8("distribution form")
        switch form {
        case 0:
            let count = try r.count("dense distribution length", limit: WireLimits.vocabulary, bytesEach: 4)
            var values = [Float](repeating: 0, count: count)
            for i in 0..<count { values[i] = try r.f32("dense distribution") }
            try validate(values, field: "dense distribution")
            return WireDistribution(vocabularySize: n, storage: .dense(values))
        case 1:
            let count = try r.count("sparse distribution length", limit: min(n, WireLimits.vocabulary), bytesEach: 8)
            var tokens = [UInt32](repeating: 0, count: count)
            var values = [Float](repeating: 0, count: count)
            for i in 0..<count {
                tokens[i] = try r.u32("sparse distribution token")
                values[i] = try r.f32("sparse distribution probability")
            }
            var previous = -1
            for t in tokens {
                guard Int(t) > previous, Int(t) < n else {
                    throw WireError.invalidValue(
                        field: "distribution", reason: "sparse tokens must ascend inside the vocabulary (token \(t))")
                }
                previous = Int(t)
            }
            try validate(values, field: "sparse distribution")
            return WireDistribution(vocabularySize: n, storage: .sparse(tokens: tokens, probabilities: values))
        case 2:
            return WireDistribution(try decodeQuantized(from: &r, vocabularySize: n))
        default:
            throw WireError.invalidValue(field: "distribution form", reason: "\(form) (0 dense, 1 sparse, 2 quantized)")
        }
    }
}

extension WireDistribution {
    /// The strict decoder of form 2: total bits in 1…31; 1 ≤ m ≤ min(vocabulary, total); token ids
    /// strictly ascending (every gap ≥ 1) and inside the vocabulary; every mass ≥ 1 and ≤ the total;
    /// masses summing to exactly `2^totalBits`; varints in their shortest form.
    static func decodeQuantized(from r: inout WireReader, vocabularySize n: Int) throws(WireError)
        -> QuantizedDistribution
    {
        let bits = Int(try r.u8("quantized total bits"))
        guard QuantizedDistribution.totalBitsRange.contains(bits) else {
            throw WireError.invalidValue(field: "quantized total bits", reason: "\(bits) (1…31)")
        }
        let total = UInt64(1) << UInt64(bits)
        let count = Int(try r.varint("quantized support size"))
        guard count >= 1 else { throw WireError.invalidValue(field: "quantized support size", reason: "0 tokens") }
        let limit = Int(min(UInt64(min(n, WireLimits.vocabulary)), total))
        guard count <= limit else {
            throw WireError.tooLarge(field: "quantized support size", count: count, limit: limit)
        }
        // Every token costs at least two bytes (one gap, one mass): refuse before allocating.
        try r.need(2 * count, "quantized distribution")
        var tokens = [Int32](repeating: 0, count: count)
        var previous = -1
        for i in 0..<count {
            let gap = Int(try r.varint("quantized token gap"))
            guard gap >= 1 else {
                throw WireError.invalidValue(
                    field: "quantized token \(i)", reason: "token ids must ascend strictly (token \(previous) repeated)"
                )
            }
            let token = previous + gap
            guard token < n else {
                throw WireError.invalidValue(
                    field: "quantized token \(i)", reason: "token \(token) outside vocabulary of \(n)")
            }
            tokens[i] = Int32(token)
            previous = token
        }
        var masses = [UInt32](repeating: 0, count: count)
        var sum: UInt64 = 0
        for i in 0..<count {
            let mass = try r.varint("quantized mass")
            guard mass >= 1, UInt64(mass) <= total else {
                throw WireError.invalidValue(field: "quantized mass \(i)", reason: "\(mass) outside 1…2^\(bits)")
            }
            masses[i] = mass
            sum += UInt64(mass)
        }
        guard sum == total else {
            throw WireError.invalidValue(field: "quantized masses", reason: "sum to \(sum), not 2^\(bits) = \(total)")
        }
        do {
            return try QuantizedDistribution(vocabularySize: n, totalBits: bits, tokens: tokens, masses: masses)
        } catch {
            throw WireError.invalidValue(field: "quantized distribution", reason: "\(error)")
        }
    }

    /// The compact contract: quantize `law` to `2^totalBits`, send `.wire`, sample from `.law` (or from
    /// the integer law itself with ``QuantizedDistribution/sample(using:)``); the coordinator decodes
    /// `.wire` to exactly `.law`.
    public static func canonical(
        quantizing law: TokenDistribution, totalBits: Int = QuantizedDistribution.defaultTotalBits
    ) -> (wire: WireDistribution, law: TokenDistribution) {
        let quantized = QuantizedDistribution(quantizing: law, totalBits: totalBits)
        return (WireDistribution(quantized), quantized.distribution)
    }

    /// What a worker sends and samples from: the encoding of `law` and the distribution those bytes
    /// decode to. Sample from `.law` and send `.wire`; the coordinator decodes `.wire` to the same law.
    public static func canonical(_ law: TokenDistribution) throws(WireError) -> (
        wire: WireDistribution, law: TokenDistribution
    ) {
        let wire = WireDistribution(law)
        return (wire, try wire.decoded())
    }
}
