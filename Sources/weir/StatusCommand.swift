import ArgumentParser
import WeirAgent
import WeirCore
import WeirNetfilter
import WeirProxy
import WeirTuning

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show how close the node is to a full conntrack table or overflowing accept queues.",
        usage: "weir status [--proxy-backlog N]",
        discussion: """
            Shows conntrack entries, maximum and usage, per-CPU conntrack statistics (insert_failed, drop, \
            early_drop; read over ctnetlink), TcpExt ListenOverflows and ListenDrops, somaxconn against the \
            proxy's listen backlog, and whether the nftables table inet weir is installed and owned, with the \
            ruleset generation. Counts are for the network namespace weir runs in; the conntrack maximum is global.
            """
    )

    @Option(name: .long, help: """
        The backlog the proxy passes to listen() (default: what weir proxy uses, net.core.somaxconn of this \
        namespace); the kernel caps it at somaxconn.
        """)
    var proxyBacklog: [String] = []

    @OptionGroup var namespace: NamespaceOption

    func run() throws {
        var requested: Int?
        if let text = try oneValue(proxyBacklog, "--proxy-backlog") {
            guard let n = Int(text), n >= 1, n <= Int(Int32.max) else {
                throw ConfigError("--proxy-backlog \(quotedValue(text)) is not a backlog: expected 1 to 2147483647")
            }
            requested = n
        }
        // Everything is checked before weir moves into another namespace, whose somaxconn then counts.
        try namespace.enter()
        let backlog = requested ?? Int(listenBacklog())
        print(NodeStatus.collect(netlink: nodeStatusReaders, proxyBacklog: backlog).report(), terminator: "")
    }
}
