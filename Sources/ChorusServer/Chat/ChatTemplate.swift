/// One chat message as a client sends it (`messages[i]` of a chat completion request).
public struct ChatMessage: Sendable, Equatable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A piece of a rendered prompt: text to tokenize as text, or the name of a special token (such as
/// `<|im_start|>`) that becomes that token when the vocabulary has it as a control or user-defined
/// token, and text otherwise (llama.cpp's `parse_special`).
public enum PromptPiece: Sendable, Equatable {
    case text(String)
    case special(String)
    /// The vocabulary's BOS token (`bos_token` in the template).
    case bos
    /// The vocabulary's EOS token (`eos_token` in the template).
    case eos
}

/// Why a chat request cannot be rendered; the server answers 400 with ``description``.
public enum ChatTemplateError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The model file has no `tokenizer.chat_template`.
    case noTemplate
    /// A template none of our renderers recognises; carries its first characters.
    case unknownTemplate(String)
    case badMessages(String)

    public var description: String {
        switch self {
        case .noTemplate:
            return "the target model has no chat template (GGUF key tokenizer.chat_template), so chat messages "
                + "cannot be rendered; use /v1/completions with a plain prompt"
        case let .unknownTemplate(start):
            return "the target model's chat template is not one Chorus renders (known families: "
                + ChatTemplate.Family.allCases.map(\.rawValue).joined(separator: ", ")
                + "); it starts \(start.debugDescription); use /v1/completions with a prompt you render"
        case let .badMessages(why): return why
        }
    }
}

/// A chat template recognised by family from the GGUF's `tokenizer.chat_template` text, rendered by
/// our own code per family (no Jinja engine). Each renderer writes what that family's reference
/// template writes for `add_generation_prompt = true`.
public struct ChatTemplate: Sendable, Equatable {
    public enum Family: String, Sendable, CaseIterable {
        /// `<|im_start|>role\ncontent<|im_end|>\n` (Qwen and other ChatML models).
        case chatML = "chatml"
        /// `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>` after BOS.
        case llama3 = "llama3"
        /// `<s>[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] answer </s>`.
        case llama2 = "llama2"
        /// `<|user|>\ncontent</s>\n` (HuggingFaceH4 Zephyr).
        case zephyr = "zephyr"
        /// `<start_of_turn>user\ncontent<end_of_turn>\n` after BOS; the assistant is `model`.
        case gemma = "gemma"
    }

    public let family: Family
    /// The system prompt the template writes when the messages have none (Qwen's
    /// "You are Qwen, created by Alibaba Cloud…"); nil when it writes none.
    public let defaultSystem: String?

    public init(family: Family, defaultSystem: String? = nil) {
        self.family = family
        self.defaultSystem = defaultSystem
    }

    /// Recognises the family from the template text.
    /// - Throws: ``ChatTemplateError/noTemplate`` for nil or blank text, ``ChatTemplateError/unknownTemplate(_:)``
    ///   when no family's markers are all present.
    public init(recognizing text: String?) throws(ChatTemplateError) {
        guard let text, !text.allSatisfy(\.isWhitespace) else { throw .noTemplate }
        if text.contains("<|im_start|>"), text.contains("<|im_end|>") {
            self.init(family: .chatML, defaultSystem: Self.literalDefaultSystem(in: text))
        } else if text.contains("<|start_header_id|>"), text.contains("<|eot_id|>") {
            self.init(family: .llama3)
        } else if text.contains("<start_of_turn>"), text.contains("<end_of_turn>") {
            self.init(family: .gemma)
        } else if text.contains("[INST]"), text.contains("<<SYS>>") {
            self.init(family: .llama2)
        } else if text.contains("<|user|>"), text.contains("<|assistant|>"), text.contains("eos_token"),
            !text.contains("<|end|>")
        {
            // `<|end|>` marks Phi-3, which shares the role markers but ends turns differently.
            self.init(family: .zephyr)
        } else {
            throw .unknownTemplate(String(text.prefix(60)))
        }
    }

    /// The end-of-turn token the family writes after the assistant's answer, when it is not EOS: the
    /// server stops a chat generation there.
    public var endOfTurn: String? {
        switch family {
        case .chatML: return "<|im_end|>"
        case .llama3: return "<|eot_id|>"
        case .gemma: return "<end_of_turn>"
        case .llama2, .zephyr: return nil
        }
    }

    /// A ChatML template's literal default system prompt: the text between `<|im_start|>system\n`
    /// and `<|im_end|>` inside one string literal (no template expression in it).
    static func literalDefaultSystem(in text: String) -> String? {
        let opening = "<|im_start|>system\\n"
        var rest = text[...]
        while let start = rest.range(of: opening) {
            rest = rest[start.upperBound...]
            guard let end = rest.range(of: "<|im_end|>") else { return nil }
            let literal = rest[..<end.lowerBound]
            if !literal.isEmpty, !literal.contains(where: { "{}'\"+".contains($0) }) { return String(literal) }
        }
        return nil
    }

    /// The prompt for `messages`, ending with the opened assistant turn.
    /// - Throws: ``ChatTemplateError/badMessages(_:)`` for no messages, an unknown role, a system message
    ///   after the first, or (Llama 2) turns that do not alternate user/assistant.
    public func render(_ messages: [ChatMessage]) throws(ChatTemplateError) -> [PromptPiece] {
        guard !messages.isEmpty else { throw .badMessages("`messages` is empty") }
        for (i, m) in messages.enumerated() {
            guard ["system", "user", "assistant"].contains(m.role) else {
                throw .badMessages("messages[\(i)].role is `\(m.role)`; known roles: system, user, assistant")
            }
            if m.role == "system", i != 0 {
                throw .badMessages("messages[\(i)] is a system message; only the first message may be one")
            }
        }
        var system = messages[0].role == "system" ? messages[0].content : nil
        let turns = system == nil ? messages : Array(messages.dropFirst())
        switch family {
        case .chatML:
            system = system ?? defaultSystem
            var out: [PromptPiece] = []
            if let system { out += [.special("<|im_start|>"), .text("system\n\(system)"), .special("<|im_end|>")] }
            for m in turns {
                if !out.isEmpty { out.append(.text("\n")) }
                out += [.special("<|im_start|>"), .text("\(m.role)\n\(m.content)"), .special("<|im_end|>")]
            }
            return out + [.text("\n"), .special("<|im_start|>"), .text("assistant\n")]
        case .llama3:
            var out: [PromptPiece] = [.bos]
            for m in (system.map { [ChatMessage(role: "system", content: $0)] } ?? []) + turns {
                out += [
                    .special("<|start_header_id|>"), .text(m.role), .special("<|end_header_id|>"),
                    .text("\n\n" + trimmed(m.content)), .special("<|eot_id|>"),
                ]
            }
            return out + [
                .special("<|start_header_id|>"), .text("assistant"), .special("<|end_header_id|>"), .text("\n\n"),
            ]
        case .llama2:
            return try renderLlama2(system: system, turns: turns)
        case .zephyr:
            var out: [PromptPiece] = []
            for m in (system.map { [ChatMessage(role: "system", content: $0)] } ?? []) + turns {
                out += [.special("<|\(m.role)|>"), .text("\n\(m.content)"), .eos, .text("\n")]
            }
            return out + [.special("<|assistant|>"), .text("\n")]
        case .gemma:
            // Gemma's templates have no system turn; as Gemma 3's, the system text opens the first user turn.
            var out: [PromptPiece] = [.bos]
            for (i, m) in turns.enumerated() {
                var content = trimmed(m.content)
                if i == 0, let system { content = trimmed(system) + "\n\n" + content }
                out += [
                    .special("<start_of_turn>"), .text((m.role == "assistant" ? "model" : m.role) + "\n" + content),
                    .special("<end_of_turn>"), .text("\n"),
                ]
            }
            return out + [.special("<start_of_turn>"), .text("model\n")]
        }
    }

    /// Llama 2: `<s>[INST] ` user ` [/INST]` then ` ` answer ` </s>`; the system block opens the first
    /// user turn; roles must alternate user/assistant starting with user.
    func renderLlama2(system: String?, turns: [ChatMessage]) throws(ChatTemplateError) -> [PromptPiece] {
        var out: [PromptPiece] = []
        for (i, m) in turns.enumerated() {
            let expected = i % 2 == 0 ? "user" : "assistant"
            guard m.role == expected else {
                throw .badMessages(
                    "the Llama 2 template needs turns alternating user/assistant; turn \(i) is \(m.role)")
            }
            if m.role == "user" {
                var content = trimmed(m.content)
                if i == 0, let system { content = "<<SYS>>\n\(system)\n<</SYS>>\n\n" + content }
                out += [.bos, .text("[INST] \(content) [/INST]")]
            } else {
                out += [.text(" \(trimmed(m.content)) "), .eos]
            }
        }
        guard turns.last?.role == "user" else {
            throw .badMessages("the Llama 2 template needs the last message to be the user's")
        }
        return out
    }

    func trimmed(_ s: String) -> String {
        String(s.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}

extension [PromptPiece] {
    /// The prompt as one string, special tokens written as their text (for logs and tests).
    public func joinedText(bos: String = "<s>", eos: String = "</s>") -> String {
        map {
            switch $0 {
            case let .text(t), let .special(t): return t
            case .bos: return bos
            case .eos: return eos
            }
        }.joined()
    }
}
