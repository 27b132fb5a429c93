import ArgumentParser
import WeirAgent
import WeirCore
import WeirNetfilter

struct CleanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clean",
        abstract: "Remove everything weir installed, whatever flags installed it, and nothing else.",
        discussion: """
            Deletes the tables inet weir and ip weir, and the ip rules, routes and the ::6/128 address on lo that \
            carry weir's protocol number (\(RouteClient.weirProtocol)). Foreign tables, rules and routes stay.
            """
    )

    @OptionGroup var namespace: NamespaceOption

    func run() throws {
        try namespace.enter()
        try removeCapture(OutputLog())
    }
}
