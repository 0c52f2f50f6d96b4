import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Child processes, in one place: the `chorus` binary this process runs from, worker processes
/// (the demo, the local benchmark pool) and scripts run to completion (`--hosts`).
public enum ChildProcesses {
    /// A failure to start or wait for a child, with the program and the system's reason.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// The `chorus` binary of this process (symlinks resolved), to start workers with.
    public static var chorusBinary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
    }

    /// Starts `chorus ARGUMENTS` in the background: standard output discarded, standard error to the
    /// file `log` (created) or discarded.
    public static func startChorus(_ arguments: [String], log: String? = nil) throws -> Process {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: chorusBinary)
        child.arguments = arguments
        child.standardInput = FileHandle.nullDevice
        child.standardOutput = FileHandle.nullDevice
        if let log {
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            child.standardError = FileHandle(forWritingAtPath: log)
        } else {
            child.standardError = FileHandle.nullDevice
        }
        try child.run()
        return child
    }

    /// Runs `executable ARGUMENTS` to completion with standard error discarded; returns its exit status and
    /// standard output (for tools that print results there, such as llama.cpp's `llama-bench -o json`).
    public static func capture(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: Data) {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: executable)
        child.arguments = arguments
        child.standardInput = FileHandle.nullDevice
        child.standardError = FileHandle.nullDevice
        let pipe = Pipe()
        child.standardOutput = pipe
        do { try child.run() } catch { throw Failure("cannot start \(executable): \(error)") }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        child.waitUntilExit()
        return (child.terminationStatus, output)
    }

    /// Terminates `children` (SIGTERM) and waits for each.
    public static func stop(_ children: [Process]) {
        for child in children where child.isRunning { child.terminate() }
        for child in children { child.waitUntilExit() }
    }

    /// posix_spawn + waitpid (`Process.waitUntilExit` hung for the netns script): runs `argv` with
    /// stdin from /dev/null and stdout and stderr to the file `output`; returns the exit status
    /// (128 + signal when killed).
    public static func runToCompletion(_ argv: [String], environment: [String: String], output: String) throws
        -> Int32
    {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in cArgs { free(p) }
            for p in cEnv { free(p) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, nil, cArgs, cEnv)
        guard rc == 0 else { throw Failure("cannot start \(argv[0]): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw Failure("waitpid failed for \(argv[0])") }
        }
        let low = status & 0x7f
        return low == 0 ? (status >> 8) & 0xff : 128 + low
    }
}
