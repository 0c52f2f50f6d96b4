import ChorusTestSupport
import Foundation
import Testing

@testable import ChorusSampling

/// One entry of `shared/vectors/acceptance.json` (SAMPLING.md §4). Fields this suite does not
/// check (the truncated-LP values) are ignored by the decoder.
struct AcceptanceVector: Decodable, Sendable, CustomTestStringConvertible {
    var name: String
    /// K, the number of drafts.
    var draftCount: Int
    var q: [Double]
    var drafts: [[Double]]
    var identical: Bool
    var optimal: Double
    var sd: Double
    var acceptsWithCertainty: Bool
    var specinfer: Double
    var spectr: Double?
    var spectrRho: Double?

    var testDescription: String { name }

    enum CodingKeys: String, CodingKey {
        case name, q, drafts, identical, optimal, sd, acceptsWithCertainty, specinfer, spectr, spectrRho
        case draftCount = "K"
    }
}

struct AcceptanceVectorFile: Decodable {
    var vectors: [AcceptanceVector]
}

func loadAcceptanceVectors() throws -> [AcceptanceVector] {
    let url = sharedDirectory().appendingPathComponent("vectors/acceptance.json")
    return try JSONDecoder().decode(AcceptanceVectorFile.self, from: Data(contentsOf: url)).vectors
}

@Suite struct VectorTests {
    static let tolerance = 1e-9

    @Test func vectorFileIsPresentAndNonTrivial() throws {
        let vectors = try loadAcceptanceVectors()
        #expect(vectors.count >= 7)
        for v in vectors {
            #expect(v.drafts.count == v.draftCount, "\(v.name)")
            #expect(!v.identical || v.spectr != nil, "\(v.name): identical vector without SpecTr values")
        }
    }

    @Test(arguments: try loadAcceptanceVectors())
    func reproducesEveryScheme(_ v: AcceptanceVector) throws {
        let q = try TokenDistribution(probabilities: v.q)
        let drafts = try v.drafts.map { try TokenDistribution(probabilities: $0) }
        let tol = Self.tolerance

        let nonIdentical = try OptimalAcceptance.nonIdentical(target: q, drafts: drafts)
        #expect(abs(nonIdentical - v.optimal) < tol, "brute-force optimum \(nonIdentical) vs \(v.optimal)")
        if v.identical {
            let identical = OptimalAcceptance.identical(target: q, draft: drafts[0], drafts: v.draftCount)
            #expect(abs(identical - v.optimal) < tol, "sorted-prefix optimum \(identical) vs \(v.optimal)")
            let certain = OptimalAcceptance.acceptsWithCertainty(target: q, draft: drafts[0], drafts: v.draftCount)
            #expect(certain == v.acceptsWithCertainty)
        }

        let sd = try SingleDraftScheme().prepare(target: q, drafts: drafts)
        #expect(abs(sd.acceptance - v.sd) < tol, "sd \(sd.acceptance) vs \(v.sd)")

        let specInfer = try SpecInferScheme().prepare(target: q, drafts: drafts)
        #expect(abs(specInfer.acceptance - v.specinfer) < tol, "specinfer \(specInfer.acceptance) vs \(v.specinfer)")

        if v.identical, let expected = v.spectr, let expectedRho = v.spectrRho {
            let prepared = try SpecTrScheme().prepare(target: q, drafts: drafts)
            let specTr = try #require(prepared as? PreparedSpecTr)
            #expect(abs(specTr.acceptance - expected) < tol, "spectr \(specTr.acceptance) vs \(expected)")
            #expect(abs(specTr.rho - expectedRho) < tol, "ρ* \(specTr.rho) vs \(expectedRho)")
        } else {
            #expect(throws: SamplingError.self) { try SpecTrScheme().prepare(target: q, drafts: drafts) }
        }
    }
}
