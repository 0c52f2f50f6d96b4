import ArgumentParser

@main
struct Chorus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chorus",
        abstract: "Distributed multi-draft speculative sampling.",
        subcommands: []
    )
}
