/// What identifies a model to its peers: a worker's draft model must share the target's vocabulary, since every
/// drafted law and the target's law are over the same token ids. One type from the model (`LanguageModel.identity`)
/// through the wire (a worker's registration) to the coordinator's check.
public struct ModelIdentity: Sendable, Equatable, Hashable, Codable {
    /// Human-readable name (file name or `general.name`).
    public var name: String
    /// SHA-256 (hex) of the model file, or of the in-memory model's parameters.
    public var fileHash: String
    /// SHA-256 (hex) of the vocabulary (token strings and types, in id order).
    public var vocabularyHash: String
    public var vocabularySize: Int

    public init(name: String, fileHash: String, vocabularyHash: String, vocabularySize: Int) {
        self.name = name
        self.fileHash = fileHash
        self.vocabularyHash = vocabularyHash
        self.vocabularySize = vocabularySize
    }
}
