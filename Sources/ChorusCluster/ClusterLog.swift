import Foundation

/// Line-oriented logging to standard error, with a wall-clock timestamp and a component name.
/// (Kept dependency-free; a swift-log backend can replace it at this seam.)
public struct ClusterLog: Sendable {
    public enum Level: Int, Sendable, Comparable {
        case debug, info, warning, error
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
    }

    public let component: String
    public let minimum: Level
    let sink: @Sendable (String) -> Void

    public init(component: String, minimum: Level = .info, sink: (@Sendable (String) -> Void)? = nil) {
        self.component = component
        self.minimum = minimum
        self.sink = sink ?? { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }

    public func log(_ level: Level, _ message: @autoclosure () -> String) {
        guard level >= minimum else { return }
        let now = Date()
        let seconds = now.timeIntervalSince1970
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withTime, .withColonSeparatorInTime]
        let millis = Int((seconds - seconds.rounded(.down)) * 1000)
        let stamp = formatter.string(from: now) + String(format: ".%03d", millis)
        sink("\(stamp) \(component) \(level): \(message())")
    }

    public func info(_ message: @autoclosure () -> String) { log(.info, message()) }
    public func warning(_ message: @autoclosure () -> String) { log(.warning, message()) }
    public func error(_ message: @autoclosure () -> String) { log(.error, message()) }
    public func debug(_ message: @autoclosure () -> String) { log(.debug, message()) }
}
