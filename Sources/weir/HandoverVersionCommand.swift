import ArgumentParser
import WeirAgent

/// `weir handover-version`: the handover state version this binary reads and writes. A running agent asks the
/// binary that will replace it (after a package upgrade, the new one at the same path) before it hands its
/// connections to systemd's store: a different version means a drain instead.
struct HandoverVersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "handover-version",
        abstract: "Print the handover state version this weir reads and writes.",
        shouldDisplay: false
    )

    func run() throws {
        print(spokenHandoverVersion)
    }
}
