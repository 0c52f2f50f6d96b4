import Foundation
import Yams

/// Certificate files for mutual TLS (`tls+tcp://` addresses).
public struct TLSConfiguration: Sendable, Equatable {
    public var certificate: String
    public var key: String
    public var ca: String

    public init(certificate: String, key: String, ca: String) {
        self.certificate = certificate
        self.key = key
        self.ca = ca
    }
}

/// The coordinator's settings (config file section `coordinator:`; every field also a CLI flag).
public struct CoordinatorConfiguration: Sendable, Equatable {
    public var model: String?
    /// Loopback by default: other hosts can reach the coordinator only once it has a key or TLS
    /// (``ClusterSecurity``).
    public var listen = "tcp://127.0.0.1:7100"
    public var workers: [String] = []
    public var scheme = "optimal"
    /// `truncated-lp`'s s.
    public var truncation = 5
    public var draftLength = 4
    /// Verify the depth that maximises expected tokens per second instead of `draftLength` every round (seeded
    /// runs then depend on measured times).
    public var adaptiveDepth = false
    /// Every round asks for drafts, however many sessions run (default: while several run, only when rounds
    /// with drafts are measured to give more tokens per second; ``Coordinator/Options/gateDrafting``).
    public var alwaysDraft = false
    /// Round deadline for worker replies in milliseconds; nil: learned from recent reply times.
    public var deadlineMilliseconds: Int?
    public var threads = 1
    /// `fast` (the engine) or `reference` (Float32 copies through OpenBLAS).
    public var precision = "fast"
    public var tls: TLSConfiguration?
    /// The cluster key file (``ClusterKeyFile``): every message to and from workers and clients is
    /// authenticated with it.
    public var keyFile: String?
    /// Listen and dial without authentication on addresses others can reach (``ClusterSecurity``).
    public var insecure = false
    /// `HOST:PORT` of the OpenAI-compatible HTTP server (nil: no HTTP).
    public var http: String?
    /// HTTP admission: generations at once, and requests waiting for a slot (beyond: 429).
    public var maxSessions = 4
    public var maxQueue = 16
    /// Largest HTTP request body, bytes (beyond: 413).
    public var maxBodyBytes = 1 << 20
    /// A file whose first line is the bearer key `/v1/*` needs (nil: no key).
    public var apiKeyFile: String?

    public init() {}
}

/// A worker's settings (config file section `worker:`).
public struct WorkerConfiguration: Sendable, Equatable {
    public var model: String?
    /// Loopback by default, as the coordinator's.
    public var listen = "tcp://127.0.0.1:7101"
    /// The address the coordinator should dial (default: `listen`, which must then be reachable).
    public var advertise: String?
    /// The coordinator's endpoint to register with.
    public var register: String?
    public var id: String?
    public var temperature = 1.0
    public var topK = 0
    public var topP = 1.0
    public var sequences = 1
    /// Likely next contexts drafted ahead per session while the coordinator verifies; 0: off. One by default: on a
    /// draft whose every extra row costs nearly a decode (the 0.5B on AVX2), more branches are not drafted before
    /// the next request comes, which then waits for the step in progress (docs/benchmarks.md §6).
    public var aheadBranches = 1
    public var threads = 1
    /// `fast` (the engine) or `reference` (Float32 copies through OpenBLAS).
    public var precision = "fast"
    public var tls: TLSConfiguration?
    /// The cluster key file (``ClusterKeyFile``), the same as the coordinator's.
    public var keyFile: String?
    /// Listen and register without authentication on addresses others can reach (``ClusterSecurity``).
    public var insecure = false

    public init() {}
}

/// What the worker's and the coordinator's settings share: their model, where they listen, the model's threads and
/// precision, and how their links are secured.
public protocol NodeConfiguration: Sendable {
    /// The config file's section for these settings (`worker`, `coordinator`).
    static var sectionName: String { get }
    /// This section of a whole file, nil when the file has none.
    static func section(of file: ClusterConfiguration) -> Self?
    init()
    var model: String? { get set }
    var listen: String { get set }
    var threads: Int { get set }
    var precision: String { get set }
    var tls: TLSConfiguration? { get set }
    var keyFile: String? { get set }
    var insecure: Bool { get set }
}

extension NodeConfiguration {
    /// The section of the config file at `path` (an error when the file has none); the defaults without a file.
    public init(file path: String?) throws {
        self.init()
        guard let path else { return }
        guard let section = Self.section(of: try ClusterConfiguration(file: path)) else {
            throw ConfigurationError("\(path): no `\(Self.sectionName):` section")
        }
        self = section
    }

    /// Reads the keys every section has: `model`, `listen`, `threads`, `precision`, `tls`, `key_file`, `insecure`.
    mutating func readShared(_ r: MappingReader) throws {
        model = try r.string("model")
        listen = try r.string("listen") ?? listen
        threads = try r.int("threads", in: 1...256) ?? threads
        precision = try r.choice("precision", of: ["fast", "reference"]) ?? precision
        tls = try r.tls("tls")
        keyFile = try r.string("key_file")
        insecure = try r.bool("insecure") ?? insecure
    }
}

extension CoordinatorConfiguration: NodeConfiguration {
    public static let sectionName = "coordinator"
    public static func section(of file: ClusterConfiguration) -> Self? { file.hasCoordinator ? file.coordinator : nil }
}

extension WorkerConfiguration: NodeConfiguration {
    public static let sectionName = "worker"
    public static func section(of file: ClusterConfiguration) -> Self? { file.hasWorker ? file.worker : nil }
}

/// A whole config file: either or both sections.
public struct ClusterConfiguration: Sendable, Equatable {
    public var coordinator = CoordinatorConfiguration()
    public var worker = WorkerConfiguration()
    public var hasCoordinator = false
    public var hasWorker = false

    public init() {}
}

/// A configuration problem, with the file and key to fix.
public struct ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension ClusterConfiguration {
    /// Parses YAML; unknown keys, wrong types and out-of-range values are errors naming the key.
    public init(yaml text: String, source: String = "config") throws {
        self.init()
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            throw ConfigurationError("\(source): not valid YAML: \(error)")
        }
        guard let root = node?.mapping else {
            throw ConfigurationError("\(source): expected a mapping with `coordinator:` and/or `worker:`")
        }
        for (keyNode, value) in root {
            let key = keyNode.string ?? ""
            switch key {
            case "coordinator":
                hasCoordinator = true
                coordinator = try CoordinatorConfiguration(node: value, path: "\(source): coordinator")
            case "worker":
                hasWorker = true
                worker = try WorkerConfiguration(node: value, path: "\(source): worker")
            default:
                throw ConfigurationError("\(source): unknown section `\(key)` (known: coordinator, worker)")
            }
        }
    }

    public init(file: String) throws {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw ConfigurationError("cannot read config file \(file): \(error.localizedDescription)")
        }
        try self.init(yaml: text, source: file)
    }
}

/// Reads typed values from a YAML mapping, refusing unknown keys.
struct MappingReader {
    let mapping: Node.Mapping
    let path: String

    init(_ node: Node, path: String, known: [String]) throws {
        guard let mapping = node.mapping else { throw ConfigurationError("\(path): expected a mapping") }
        self.mapping = mapping
        self.path = path
        for key in mapping.keys.compactMap(\.string) where !known.contains(key) {
            let hint =
                known.min { editDistance($0, key) < editDistance($1, key) }.map { " (did you mean `\($0)`?)" } ?? ""
            throw ConfigurationError(
                "\(path): unknown key `\(key)`\(hint); known keys: \(known.joined(separator: ", "))")
        }
    }

    func string(_ key: String) throws -> String? {
        guard let node = mapping[key] else { return nil }
        guard let s = node.string else { throw ConfigurationError("\(path).\(key): expected a string") }
        return s
    }

    func int(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let node = mapping[key] else { return nil }
        guard let s = node.scalar?.string, let v = Int(s) else {
            throw ConfigurationError("\(path).\(key): expected an integer")
        }
        guard range.contains(v) else {
            throw ConfigurationError("\(path).\(key): \(v) is outside \(range.lowerBound)…\(range.upperBound)")
        }
        return v
    }

    /// `true` or `false` (YAML's other spellings are refused: one way to write a setting).
    func bool(_ key: String) throws -> Bool? {
        guard let node = mapping[key] else { return nil }
        switch node.scalar?.string {
        case "true": return true
        case "false": return false
        default: throw ConfigurationError("\(path).\(key): expected true or false")
        }
    }

    func double(_ key: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let node = mapping[key] else { return nil }
        guard let s = node.scalar?.string, let v = Double(s), v.isFinite else {
            throw ConfigurationError("\(path).\(key): expected a number")
        }
        guard range.contains(v) else {
            throw ConfigurationError("\(path).\(key): \(v) is outside \(range.lowerBound)…\(range.upperBound)")
        }
        return v
    }

    /// A string that must be one of `choices`.
    func choice(_ key: String, of choices: [String]) throws -> String? {
        guard let value = try string(key) else { return nil }
        guard choices.contains(value) else {
            throw ConfigurationError("\(path).\(key): `\(value)` is not one of \(choices.joined(separator: ", "))")
        }
        return value
    }

    func strings(_ key: String) throws -> [String]? {
        guard let node = mapping[key] else { return nil }
        guard let items = node.sequence else { throw ConfigurationError("\(path).\(key): expected a list") }
        return try items.map {
            guard let s = $0.string else { throw ConfigurationError("\(path).\(key): every entry must be a string") }
            return s
        }
    }

    func tls(_ key: String) throws -> TLSConfiguration? {
        guard let node = mapping[key] else { return nil }
        let r = try MappingReader(node, path: "\(path).\(key)", known: ["certificate", "key", "ca"])
        guard let certificate = try r.string("certificate"), let keyFile = try r.string("key"),
            let ca = try r.string("ca")
        else {
            throw ConfigurationError("\(path).\(key): needs certificate, key and ca")
        }
        return TLSConfiguration(certificate: certificate, key: keyFile, ca: ca)
    }
}

extension CoordinatorConfiguration {
    static let keys = [
        "model", "listen", "workers", "scheme", "truncation", "draft_length", "adaptive_depth", "always_draft",
        "deadline_ms", "threads",
        "precision", "tls", "key_file", "insecure", "http", "max_sessions", "max_queue", "max_body_bytes",
        "api_key_file",
    ]

    init(node: Node, path: String) throws {
        self.init()
        let r = try MappingReader(node, path: path, known: Self.keys)
        try readShared(r)
        workers = try r.strings("workers") ?? workers
        scheme = try r.string("scheme") ?? scheme
        truncation = try r.int("truncation", in: 1...1024) ?? truncation
        draftLength = try r.int("draft_length", in: 1...64) ?? draftLength
        adaptiveDepth = try r.bool("adaptive_depth") ?? adaptiveDepth
        alwaysDraft = try r.bool("always_draft") ?? alwaysDraft
        deadlineMilliseconds = try r.int("deadline_ms", in: 1...600_000) ?? deadlineMilliseconds
        http = try r.string("http")
        maxSessions = try r.int("max_sessions", in: 1...4096) ?? maxSessions
        maxQueue = try r.int("max_queue", in: 0...65536) ?? maxQueue
        maxBodyBytes = try r.int("max_body_bytes", in: 1024...(1 << 30)) ?? maxBodyBytes
        apiKeyFile = try r.string("api_key_file")
    }
}

extension WorkerConfiguration {
    static let keys = [
        "model", "listen", "advertise", "register", "id", "temperature", "top_k", "top_p", "sequences",
        "ahead_branches",
        "threads", "precision", "tls", "key_file", "insecure",
    ]

    init(node: Node, path: String) throws {
        self.init()
        let r = try MappingReader(node, path: path, known: Self.keys)
        try readShared(r)
        advertise = try r.string("advertise")
        register = try r.string("register")
        id = try r.string("id")
        temperature = try r.double("temperature", in: 0...100) ?? temperature
        topK = try r.int("top_k", in: 0...10_000_000) ?? topK
        topP = try r.double("top_p", in: 0.000001...1) ?? topP
        sequences = try r.int("sequences", in: 1...64) ?? sequences
        aheadBranches = try r.int("ahead_branches", in: 0...64) ?? aheadBranches
    }
}

/// Levenshtein distance, for "did you mean" hints.
func editDistance(_ a: String, _ b: String) -> Int {
    let x = Array(a), y = Array(b)
    var previous = Array(0...y.count)
    for i in 1...max(x.count, 1) where !x.isEmpty {
        var current = [i] + Array(repeating: 0, count: y.count)
        for j in 1...max(y.count, 1) where !y.isEmpty {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[y.count]
}
