/// Errors of the model runtime. Each names the file part (field, key, tensor) and what was expected.
public enum ModelError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file could not be opened or mapped.
    case io(path: String, message: String)
    /// The first four bytes are not `GGUF`.
    case badMagic(found: [UInt8])
    /// A GGUF version other than 2 or 3.
    case unsupportedVersion(UInt32)
    /// The file ends inside `field` (starting at byte `offset`): `needed` bytes, `available` left.
    case truncated(field: String, offset: Int, needed: Int, available: Int)
    /// A count or length no valid file can have.
    case absurdCount(field: String, value: UInt64, limit: UInt64)
    /// A metadata value type id outside the GGUF specification.
    case invalidValueType(key: String, type: UInt32)
    /// A string that is not valid UTF-8.
    case invalidString(field: String)
    case duplicateKey(String)
    case duplicateTensor(String)
    /// A tensor whose shape, offset or size is inconsistent.
    case invalidTensor(name: String, reason: String)
    /// A tensor type Chorus cannot compute with.
    case unsupportedTensorType(name: String, type: UInt32)
    case missingMetadata(key: String)
    case wrongMetadataType(key: String, expected: String, found: String)
    /// `general.architecture` is not one Chorus implements.
    case unsupportedArchitecture(String)
    case missingTensor(String)
    case shapeMismatch(tensor: String, expected: [Int], found: [Int])
    /// Tokenizer metadata that cannot be used, or text that cannot be encoded.
    case tokenizer(String)
    /// A request the model cannot serve (token out of vocabulary, context full, bad rollback).
    case invalidRequest(String)

    public var description: String {
        switch self {
        case let .io(path, message): return "cannot read \(path): \(message)"
        case let .badMagic(found):
            return
                "not a GGUF file: magic bytes \(found.map { String(format2: $0) }.joined(separator: " ")), expected 47 47 55 46 ('GGUF')"
        case let .unsupportedVersion(v): return "GGUF version \(v) is not supported (supported: 2, 3)"
        case let .truncated(field, offset, needed, available):
            return "model file truncated at \(field) (byte \(offset)): expected \(needed) bytes, found \(available)"
        case let .absurdCount(field, value, limit):
            return "\(field) is \(value), more than the file can hold (limit \(limit))"
        case let .invalidValueType(key, type): return "metadata \(key) has unknown value type \(type)"
        case let .invalidString(field): return "\(field) is not valid UTF-8"
        case let .duplicateKey(key): return "metadata key \(key) appears twice"
        case let .duplicateTensor(name): return "tensor \(name) appears twice"
        case let .invalidTensor(name, reason): return "tensor \(name): \(reason)"
        case let .unsupportedTensorType(name, type):
            return
                "tensor \(name) has type \(GGMLType.name(of: type)); supported: \(GGMLType.allCases.map(\.name).joined(separator: ", "))"
        case let .missingMetadata(key): return "metadata \(key) is missing"
        case let .wrongMetadataType(key, expected, found): return "metadata \(key) is \(found), expected \(expected)"
        case let .unsupportedArchitecture(a): return "architecture '\(a)' is not supported (supported: llama, qwen2)"
        case let .missingTensor(name): return "tensor \(name) is missing"
        case let .shapeMismatch(tensor, expected, found):
            return "tensor \(tensor) has shape \(found), expected \(expected)"
        case let .tokenizer(message): return "tokenizer: \(message)"
        case let .invalidRequest(message): return message
        }
    }
}

extension String {
    init(format2 byte: UInt8) {
        let digits = Array("0123456789abcdef")
        self = String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }
}
