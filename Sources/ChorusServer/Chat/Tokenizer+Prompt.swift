import ChorusModel

extension Tokenizer {
    /// Token ids of a rendered chat prompt, as llama.cpp tokenizes a template's output with
    /// `parse_special`: a `.special` piece becomes its token when the vocabulary has that text as a
    /// control or user-defined token (text otherwise); runs of text between special tokens are
    /// encoded as one fragment each (so a SentencePiece space prefix starts each fragment). BOS comes
    /// first when the template writes it, or when the vocabulary asks for it (`add_bos_token`); never twice.
    ///
    /// - Throws: ``ServerError`` 400 when the template writes `bos_token`/`eos_token` and the
    ///   vocabulary has none.
    func encode(pieces: [PromptPiece]) throws(ServerError) -> [Int] {
        var output: [Int] = []
        var fragment = ""
        func flush() {
            if !fragment.isEmpty { output += encode(fragment, addSpecial: false) }
            fragment = ""
        }
        for piece in pieces {
            switch piece {
            case let .text(t):
                fragment += t
            case let .special(name):
                if let id = token(forText: name), [.control, .userDefined].contains(tokenType(id)) {
                    flush()
                    output.append(id)
                } else {
                    fragment += name
                }
            case .bos, .eos:
                guard let id = piece == .bos ? bos : eos else {
                    throw ServerError.badRequest(
                        "the chat template writes the \(piece == .bos ? "BOS" : "EOS") token, which this vocabulary "
                            + "does not have", code: "template_error")
                }
                flush()
                output.append(id)
            }
        }
        flush()
        if addBOS, let bos, output.first != bos { output.insert(bos, at: 0) }
        return output
    }
}
