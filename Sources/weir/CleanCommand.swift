import ArgumentParser
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
            let removedTables = try NftClient().removeTables(named: CaptureRuleset.tableName)
            removedTables.forEach { print("removed table \($0.rawValue) \(CaptureRuleset.tableName)") }
            let removed = try RouteClient().removeWeirRouting()
            removed.forEach { print("removed \($0)") }
            if removedTables.isEmpty && removed.isEmpty { print("nothing to remove") }
        } catch let error as NetlinkError {
            throw RuntimeFailure(message: error.description)
        }
    }
}
