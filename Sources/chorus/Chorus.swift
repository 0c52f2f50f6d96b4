import ArgumentParser

@main
struct Chorus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chorus",
        abstract: "Distributed multi-draft speculative sampling.",
        subcommands: [
            AcceptanceCommand.self, GenerateCommand.self, LogitsCommand.self, WorkerCommand.self, CoordinatorCommand.self,
            DemoCommand.self, BenchCommand.self, DelayProxyCommand.self,
        ]
    )
}

/// Writes `message` to standard error and exits with `code` (2: bad input, as documented).
func fail(_ message: String, code: Int32 = 2) -> ExitCode {
    FileHandleOutput.standardError.write("error: \(message)\n")
    return ExitCode(code)
}
