import ChorusSampling
import ChorusWire

extension QuantizedDistribution {
    /// Bytes this law takes inside a draft reply (its ``WireDistribution`` encoding): the wire cost
    /// `chorus bench quantization` reports beside the acceptance.
    public var wireByteCount: Int { WireDistribution(self).encodedByteCount }
}
