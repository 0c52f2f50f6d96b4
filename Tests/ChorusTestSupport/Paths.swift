import Foundation

/// The package root (this file is `Tests/ChorusTestSupport/Paths.swift`).
public func repositoryRoot() -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}

/// Where `../shared` is: `CHORUS_SHARED` if set, else beside the package root.
public func sharedDirectory() -> URL {
    if let env = ProcessInfo.processInfo.environment["CHORUS_SHARED"] { return URL(fileURLWithPath: env) }
    return repositoryRoot().deletingLastPathComponent().appendingPathComponent("shared")
}

/// The `chorus` binary built beside the test bundle (`swift test` builds it for targets that depend on it).
public func chorusBinary() -> URL {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    if directory.lastPathComponent == "MacOS" {
        directory = directory.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }
    return directory.appendingPathComponent("chorus")
}

/// The shipped models (`models/`).
public enum Models {
    public static func path(_ name: String) -> String { repositoryRoot().appendingPathComponent("models/\(name)").path }
    public static let target = path("chorus-kjv-target-f32.gguf")
    public static let small = path("chorus-kjv-draft-small-f32.gguf")
    public static let medium = path("chorus-kjv-draft-medium-f32.gguf")
}
