import Foundation
import Testing

@testable import ChorusModel

func sharedDirectory() -> URL {
    if let env = ProcessInfo.processInfo.environment["CHORUS_SHARED"] { return URL(fileURLWithPath: env) }
    return URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared")
}

func modelPath(_ name: String) -> String {
    sharedDirectory().appendingPathComponent("models").appendingPathComponent(name).path
}

@Suite struct GGUFTests {
    @Test func readsShippedTarget() throws {
        let file = try GGUFFile(path: modelPath("chorus-kjv-target-f32.gguf"))
        #expect(file.version == 3)
        #expect(try file.string("general.architecture") == "llama")
        #expect(try file.integer("llama.context_length") == 256)
        #expect(try file.array("tokenizer.ggml.tokens").count == 2048)
        let embd = try #require(file.tensorInfo("token_embd.weight"))
        #expect(embd.shape == [288, 2048])
        #expect(embd.type == .f32)
    }
}
