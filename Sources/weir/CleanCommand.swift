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

    func run() throws {
        do {
            let removed = try CaptureInstaller().removeAll()
            removed.forEach { print($0) }
            if removed.isEmpty { print("nothing to remove") }
        } catch let error as AgentError {
            throw RuntimeFailure(message: error.description)
        }
    }
}
