import ArgumentParser

struct CleanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "clean", abstract: "Remove everything weir installed.")
    func run() throws {}
}
