/// `x^k` for a small non-negative integer k by repeated squaring.
@inline(__always)
func power(_ x: Double, _ k: Int) -> Double {
    var result = 1.0, base = x, e = k
    while e > 0 {
        if e & 1 == 1 { result *= base }
        base *= base
        e >>= 1
    }
    return result
}

/// `ā = E_{U[L,U]}[K s^{K−1}] = Σ_{t=0}^{K−1} U^t L^{K−1−t}` and `U^K` with a short dependency chain:
/// with K = r·2^a (r odd), `U^K − L^K = (U^r − L^r) Π_{i<a} (U^{r2^i} + L^{r2^i})`, so
/// `ā = [Σ_{t<r} U^t L^{r−1−t}] · Π_{i<a} (U^{r2^i} + L^{r2^i})` — a product of sums of positive
/// terms: no cancellation (never `(U^K − L^K)/(U − L)`), and no K-long Horner chain.
struct CellWeightFactors {
    let oddPart: Int
    let doublings: Int

    init(k: Int) {
        var r = max(k, 1), a = 0
        while r % 2 == 0 {
            r /= 2
            a += 1
        }
        oddPart = r
        doublings = a
    }

    @inline(__always)
    func meanWeightAndPower(lower l: Double, upper u: Double) -> (mean: Double, upperPower: Double) {
        // K = 1, 2, 4, 8 (r = 1) written out: the loops below with their trip counts known, the same
        // operations in the same order (h = 1, and 1 · (U + L) is U + L exactly).
        if oddPart == 1 {
            switch doublings {
            case 0: return (1, u)
            case 1: return (u + l, u * u)
            case 2:
                let u2 = u * u, l2 = l * l
                return ((u + l) * (u2 + l2), u2 * u2)
            case 3:
                let u2 = u * u, l2 = l * l, u4 = u2 * u2, l4 = l2 * l2
                return ((u + l) * (u2 + l2) * (u4 + l4), u4 * u4)
            default: break
            }
        }
        var h = 1.0, lPower = 1.0, uPower = u, lOdd = l
        var i = 1
        while i < oddPart {
            lPower *= l
            h = u * h + lPower
            uPower *= u
            lOdd *= l
            i += 1
        }
        var mean = h
        var d = 0
        while d < doublings {
            mean *= uPower + lOdd
            uPower *= uPower
            lOdd *= lOdd
            d += 1
        }
        return (mean, uPower)
    }
}

/// `E_{U[a,b]}[K s^{K−1}] = Σ_{t=0}^{K−1} b^t a^{K−1−t}` — never `(b^K − a^K)/(b − a)`, which cancels.
@inline(__always)
func cellMeanWeight(lower a: Double, upper b: Double, k: Int) -> Double {
    // h_i = b h_{i−1} + a^i gives Σ_{t=0}^{i} b^t a^{i−t}; multiplications only.
    var h = 1.0
    var aPower = 1.0
    var i = 1
    while i < k {
        aPower *= a
        h = b * h + aPower
        i += 1
    }
    return h
}
