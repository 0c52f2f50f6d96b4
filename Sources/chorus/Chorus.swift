import ArgumentParser

#if os(Linux)
    /// glibc's `mallopt(3)` (not exported by the Glibc module).
    @_silgen_name("mallopt")
    func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif

@main
enum ChorusMain {
    static func main() async {
        tuneAllocator()
        await Chorus.main()
    }

    /// Keeps large per-token buffers (vocabulary-sized laws and tables, 256 KB – 1 MB) in the heap
    /// instead of fresh `mmap`s: glibc maps allocations above 128 KiB and unmaps them on free, and
    /// the page faults of re-mapping cost as much as the sampling work itself (measured with
    /// `chorus bench selection`).
    static func tuneAllocator() {
        #if os(Linux)
            _ = glibcMallopt(-3, 64 << 20)  // M_MMAP_THRESHOLD
            _ = glibcMallopt(-1, 256 << 20)  // M_TRIM_THRESHOLD
        #endif
    }
}

struct Chorus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chorus",
        abstract: "Distributed multi-draft speculative sampling.",
        subcommands: [
            AcceptanceCommand.self, GenerateCommand.self, LogitsCommand.self, WorkerCommand.self,
            CoordinatorCommand.self,
            DemoCommand.self, BenchCommand.self, DelayProxyCommand.self, KeygenCommand.self,
        ]
    )
}

/// Writes `message` to standard error and exits with `code` (2: bad input, as documented).
func fail(_ message: String, code: Int32 = 2) -> ExitCode {
    FileHandleOutput.standardError.write("error: \(message)\n")
    return ExitCode(code)
}
