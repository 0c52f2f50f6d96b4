import CChorusEngine

/// Per-session work buffers for a forward pass over up to `capacity` rows (new tokens). Grown, never shrunk,
/// by ``reserve(rows:)``; the single-token decode path therefore never allocates after the first call.
final class ForwardScratch {
    let config: TransformerConfig
    private(set) var capacity = 0
    /// residual stream [capacity][d]
    private(set) var x: UnsafeMutablePointer<Float> = .allocate(capacity: 0)
    /// normed input / projection output [capacity][d]
    private(set) var xb: UnsafeMutablePointer<Float> = .allocate(capacity: 0)
    /// queries [capacity][heads·hd]
    private(set) var q: UnsafeMutablePointer<Float> = .allocate(capacity: 0)
    /// attention output, heads concatenated [capacity][heads·hd]
    private(set) var attention: UnsafeMutablePointer<Float> = .allocate(capacity: 0)
    /// FFN gate, then silu(gate) ⊙ up [capacity][ff]
    private(set) var gate: UnsafeMutablePointer<Float> = .allocate(capacity: 0)
    /// FFN up projection [capacity][ff]
    private(set) var up: UnsafeMutablePointer<Float> = .allocate(capacity: 0)
    /// attention scores of one head [capacity][contextLength]
    private(set) var scores: UnsafeMutablePointer<Float> = .allocate(capacity: 0)
    /// tree mask of the new tokens over the tree nodes [rows][span] (see ``reserveMask(rows:span:)``)
    private(set) var mask: UnsafeMutablePointer<UInt8> = .allocate(capacity: 0)
    private var maskCapacity = 0
    /// RoPE position of each new token [capacity]
    private(set) var positions: UnsafeMutablePointer<Int> = .allocate(capacity: 0)
    /// logits [capacity][vocab]
    private(set) var logits: UnsafeMutablePointer<Float> = .allocate(capacity: 0)
    /// 8-bit blocks of one projection input: [capacity] rows of chorus_q8_row_bytes(max(d, heads·hd, ff)) bytes
    private(set) var q8: UnsafeMutableRawPointer = .allocate(byteCount: 0, alignment: 64)
    /// True when `q8` holds the blocks of the input the current projection reads.
    var q8Valid = false
    /// New keys and values of a batch of sessions, before they are copied to each cache [capacity][kvw]
    private(set) var batchKeys: UnsafeMutablePointer<Float> = .allocate(capacity: 0)
    private(set) var batchValues: UnsafeMutablePointer<Float> = .allocate(capacity: 0)
    /// attention scores and positions, two rows per pool thread [threads][2][contextLength + capacity]
    private(set) var attentionScratch: UnsafeMutablePointer<Float> = .allocate(capacity: 0)
    let threads: Int

    init(config: TransformerConfig, rows: Int, threads: Int) {
        self.config = config
        self.threads = threads
        reserve(rows: max(rows, 1))
    }

    /// Ensures room for `rows` new tokens (at most contextLength), growing geometrically.
    func reserve(rows: Int) {
        guard rows > capacity else { return }
        let c = config
        let n = max(rows, min(2 * capacity, c.contextLength))
        free()
        capacity = n
        x = .allocate(capacity: n * c.embeddingLength)
        xb = .allocate(capacity: n * c.embeddingLength)
        q = .allocate(capacity: n * c.queryWidth)
        attention = .allocate(capacity: n * c.queryWidth)
        gate = .allocate(capacity: n * c.feedForwardLength)
        up = .allocate(capacity: n * c.feedForwardLength)
        scores = .allocate(capacity: n * c.contextLength)
        positions = .allocate(capacity: n)
        logits = .allocate(capacity: n * c.vocabularySize)
        q8 = .allocate(
            byteCount: n * chorus_q8_row_bytes(Int32(max(c.embeddingLength, c.queryWidth, c.feedForwardLength))) + 64,
            alignment: 64)
        attentionScratch = .allocate(capacity: 2 * threads * (c.contextLength + n))
        batchKeys = .allocate(capacity: n * c.kvWidth)
        batchValues = .allocate(capacity: n * c.kvWidth)
    }

    private func free() {
        x.deallocate()
        xb.deallocate()
        q.deallocate()
        attention.deallocate()
        gate.deallocate()
        up.deallocate()
        scores.deallocate()
        positions.deallocate()
        logits.deallocate()
        q8.deallocate()
        attentionScratch.deallocate()
        batchKeys.deallocate()
        batchValues.deallocate()
    }

    /// Ensures room for a mask of `rows` × `span` entries.
    func reserveMask(rows: Int, span: Int) {
        guard rows * span > maskCapacity else { return }
        mask.deallocate()
        maskCapacity = max(rows * span, 2 * maskCapacity)
        mask = .allocate(capacity: maskCapacity)
    }

    deinit {
        free()
        mask.deallocate()
    }
}
