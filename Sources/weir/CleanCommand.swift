import ArgumentParser
import WeirAgent
import WeirCore
import WeirNetfilter
import WeirSystem

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

    @Flag(help: ArgumentHelp("After cleaning, wait for SIGTERM or SIGINT and exit 0: the container of a clean-up "
        + "DaemonSet, whose pod on each node is ready once that node is clean (docs/kubernetes.md)."))
    var wait = false

    func run() throws {
        if wait { Signals.block() }
        try namespace.enter()
        try removeCapture(OutputLog())
        if wait {
            OutputLog().info("clean; waiting for SIGTERM")
            _ = Signals.waitForTermination()
        }
    }
}
