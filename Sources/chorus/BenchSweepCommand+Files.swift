import ArgumentParser
import ChorusBench
import ChorusCluster
import ChorusModel
import ChorusSampling
import Foundation

/// Models, prompts, scripts and result paths of a sweep.
extension BenchSweepCommand {
    // MARK: Files

    func draftPath(_ name: String, _ directory: String) throws -> String {
        switch name {
        case "small": return directory + "/chorus-kjv-draft-small-f32.gguf"
        case "medium": return directory + "/chorus-kjv-draft-medium-f32.gguf"
        default:
            guard FileManager.default.fileExists(atPath: name) else {
                throw fail("draft model \(name) not found (small, medium or a path)")
            }
            return name
        }
    }

    func loadPrompts(_ explicit: String?, limit: Int?) throws -> [String] {
        let path = try explicit ?? scriptPath("kjv.txt", folder: "prompts")
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw fail("cannot read prompts file \(path)")
        }
        var lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        if let limit { lines = Array(lines.prefix(limit)) }
        guard !lines.isEmpty else { throw fail("\(path) has no prompts (one per line; # starts a comment)") }
        return lines
    }

    /// A file of the repository (scripts/…, prompts/…): ./FOLDER/NAME or FOLDER/NAME above the binary.
    func scriptPath(_ name: String, folder: String = "scripts") throws -> String {
        var candidates = [FileManager.default.currentDirectoryPath + "/\(folder)/\(name)"]
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent()
        for _ in 0..<6 {
            candidates.append(directory.appendingPathComponent("\(folder)/\(name)").path)
            directory = directory.deletingLastPathComponent()
        }
        guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw fail("cannot find \(folder)/\(name); run from the repository root")
        }
        return found
    }

    func defaultOutPath() -> String {
        FileManager.default.currentDirectoryPath + "/results/bench-\(Self.timestamp())\(quick ? "-quick" : "").jsonl"
    }

    static func timestamp() -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        return formatter.string(from: Date())
    }

    static var buildKind: String {
        #if DEBUG
            return "debug"
        #else
            return "release"
        #endif
    }

    /// CPU count, OS and the load average when the run started (a shared machine shows here).
    static func machine() -> String {
        let info = ProcessInfo.processInfo
        var s = "\(info.activeProcessorCount) CPUs, \(info.operatingSystemVersionString)"
        if let load = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) {
            s += ", load average \(load.split(separator: " ").prefix(3).joined(separator: " ")) at start"
        }
        return s
    }
}
