import ChorusModel
import ChorusSampling

/// A random first-order table model over n tokens (some transitions impossible, every row with at
/// least one possible token).
public func tableModel(n: Int, seed: UInt64, contextLength: Int = 64, name: String) throws -> TableLanguageModel {
    var rng = ChorusRandom(seed: seed)
    let table: [[Float]] = (0..<n).map { _ in
        (0..<n).map { _ in rng.nextUnit() < 0.15 ? -Float.infinity : Float(rng.nextUnit() * 4 - 2) }
    }
    let fixed: [[Float]] = table.enumerated().map { i, row in
        guard row.allSatisfy({ $0 == -.infinity }) else { return row }
        var copy = row
        copy[i] = 0
        return copy
    }
    return try TableLanguageModel(table: fixed, contextLength: contextLength, name: name)
}

/// Plain greedy decoding of `model` after `prompt`: the reference every greedy generation must equal,
/// whatever the drafts were.
public func plainGreedy(_ model: any LanguageModel, prompt: [Int], count: Int) throws -> [Int] {
    let session = try model.makeSession()
    var logits = try session.append(prompt)
    var tokens: [Int] = []
    for _ in 0..<count {
        let next = try TokenDistribution(logits: logits, settings: .greedy).support[0]
        tokens.append(next)
        logits = try session.append([next])
    }
    return tokens
}
