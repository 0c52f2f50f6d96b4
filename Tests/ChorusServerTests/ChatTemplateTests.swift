import ChorusModel
import Testing

@testable import ChorusServer

/// Recognition of each family from template text, and each renderer's exact output.
@Suite struct ChatTemplateTests {
    /// Abbreviated templates carrying each family's markers (as stored in GGUF `tokenizer.chat_template`,
    /// where `\n` inside a Jinja string literal is a backslash and an n).
    static let qwen = #"""
        {%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
        {%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
        {%- endif %}{%- for message in messages %}{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
        {%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}
        """#
    static let plainChatML = #"""
        {% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}
        """#
    static let llama3 = #"""
        {{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}
        """#
    static let llama2 = #"""
        {% if messages[0]['role'] == 'system' %}{% set system_message = '<<SYS>>\n' + messages[0]['content'] | trim + '\n<</SYS>>\n\n' %}{% endif %}
        {{ bos_token + '[INST] ' + content | trim + ' [/INST]' }}
        """#
    static let zephyr = #"""
        {% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + eos_token }}
        {% elif message['role'] == 'assistant' %}{{ '<|assistant|>\n' + message['content'] + eos_token }}{% endif %}{% endfor %}
        """#
    static let gemma = #"""
        {{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}
        """#
    static let phi3 = #"""
        {% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>\n'}}{% endfor %}<|assistant|>{{ eos_token }}
        """#

    let conversation = [
        ChatMessage(role: "system", content: "Be brief."),
        ChatMessage(role: "user", content: "Hi"),
        ChatMessage(role: "assistant", content: "Hello."),
        ChatMessage(role: "user", content: "Who made the light? "),
    ]

    @Test func familiesAreRecognised() throws {
        #expect(try ChatTemplate(recognizing: Self.qwen).family == .chatML)
        #expect(
            try ChatTemplate(recognizing: Self.qwen).defaultSystem
                == "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
        #expect(try ChatTemplate(recognizing: Self.plainChatML) == ChatTemplate(family: .chatML))
        #expect(try ChatTemplate(recognizing: Self.llama3).family == .llama3)
        #expect(try ChatTemplate(recognizing: Self.llama2).family == .llama2)
        #expect(try ChatTemplate(recognizing: Self.zephyr).family == .zephyr)
        #expect(try ChatTemplate(recognizing: Self.gemma).family == .gemma)
    }

    @Test func unknownAndMissingTemplatesAreErrorsThatSaySo() {
        #expect(throws: ChatTemplateError.noTemplate) { try ChatTemplate(recognizing: nil) }
        #expect(throws: ChatTemplateError.noTemplate) { try ChatTemplate(recognizing: "  \n") }
        #expect {
            try ChatTemplate(recognizing: Self.phi3)
        } throws: { error in
            guard case let .unknownTemplate(start) = error as? ChatTemplateError else { return false }
            return start.hasPrefix("{% for message") && "\(error)".contains("chatml, llama3, llama2, zephyr, gemma")
        }
    }

    @Test func chatMLRendering() throws {
        let pieces = try ChatTemplate(family: .chatML).render(conversation)
        #expect(
            pieces.joinedText()
                == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                + "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nWho made the light? <|im_end|>\n"
                + "<|im_start|>assistant\n")
        #expect(pieces.first == .special("<|im_start|>"))
        // Qwen's default system prompt when the messages have none.
        let qwen = try ChatTemplate(recognizing: Self.qwen)
        #expect(
            try qwen.render([ChatMessage(role: "user", content: "Hi")]).joinedText()
                == "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
                + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        #expect(qwen.endOfTurn == "<|im_end|>")
    }

    @Test func llama3Rendering() throws {
        let text = try ChatTemplate(family: .llama3).render(conversation).joinedText(bos: "<|begin_of_text|>")
        #expect(
            text
                == "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                + "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                + "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
                + "<|start_header_id|>user<|end_header_id|>\n\nWho made the light?<|eot_id|>"
                + "<|start_header_id|>assistant<|end_header_id|>\n\n")
    }

    @Test func llama2Rendering() throws {
        let text = try ChatTemplate(family: .llama2).render(conversation).joinedText()
        #expect(
            text
                == "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] Who made the light? [/INST]"
        )
        #expect(throws: ChatTemplateError.self) {
            try ChatTemplate(family: .llama2).render([
                ChatMessage(role: "user", content: "a"), ChatMessage(role: "user", content: "b"),
            ])
        }
    }

    @Test func zephyrAndGemmaRendering() throws {
        #expect(
            try ChatTemplate(family: .zephyr).render(conversation).joinedText()
                == "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello.</s>\n"
                + "<|user|>\nWho made the light? </s>\n<|assistant|>\n")
        #expect(
            try ChatTemplate(family: .gemma).render(conversation).joinedText(bos: "<bos>")
                == "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n"
                + "<start_of_turn>user\nWho made the light?<end_of_turn>\n<start_of_turn>model\n")
    }

    @Test func badMessagesAreRefused() {
        #expect(throws: ChatTemplateError.self) { try ChatTemplate(family: .chatML).render([]) }
        #expect {
            try ChatTemplate(family: .chatML).render([ChatMessage(role: "tool", content: "x")])
        } throws: { "\($0)".contains("messages[0].role is `tool`") }
        #expect {
            try ChatTemplate(family: .chatML).render([
                ChatMessage(role: "user", content: "x"), ChatMessage(role: "system", content: "y"),
            ])
        } throws: { "\($0)".contains("only the first message") }
    }

    /// Special pieces become control tokens when the vocabulary has them, text otherwise; BOS once.
    @Test func promptPiecesBecomeTokens() throws {
        let tokenizer = try Tokenizer(
            bytePairTokens: ["<|im_start|>", "<|im_end|>", "a", "b", "Ċ"],
            types: [.control, .control, .normal, .normal, .normal], merges: [], bos: nil, eos: 1)
        let ids = try tokenizer.encode(pieces: [.special("<|im_start|>"), .text("a\nb"), .special("<|im_end|>")])
        #expect(ids == [0, 2, 4, 3, 1])
        #expect(throws: ServerError.self) { try tokenizer.encode(pieces: [.bos, .text("a")]) }
        let withBOS = try Tokenizer(
            sentencePieceTokens: ["<unk>", "<s>", "</s>", "▁a", "a"], scores: nil, bos: 1, eos: 2)
        #expect(try withBOS.encode(pieces: [.bos, .text("a")]).filter { $0 == 1 }.count == 1)
        #expect(
            try withBOS.encode(pieces: [.text("a")]).first == 1, "add_bos_token adds BOS when the template does not")
    }
}
