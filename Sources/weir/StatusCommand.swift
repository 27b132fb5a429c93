import ArgumentParser
import WeirCore
import WeirNetfilter
import WeirTuning

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show how close the node is to a full conntrack table or overflowing accept queues.",
        discussion: """
            Shows conntrack entries, maximum and usage, per-CPU conntrack statistics (insert_failed, drop, \
            early_drop; read over ctnetlink), TcpExt ListenOverflows and ListenDrops, somaxconn against the \
            proxy's listen backlog, and whether the nftables table inet weir is installed and owned, with the \
            ruleset generation. Counts are for the network namespace weir runs in; the conntrack maximum is global.
            """
    )

    @Option(name: .long, help: "The backlog the proxy passes to listen(); the kernel caps it at somaxconn.")
    var proxyBacklog = 65535

    func validate() throws {
        if proxyBacklog < 1 {
            throw ValidationError("--proxy-backlog \(proxyBacklog): expected a positive integer")
        }
    }

    func run() throws {
        let probe = NodeProbe()
        let files = StatusFiles(files: probe.files)
        var conntrack = files.conntrackUsage()
        var cpuStats: [ConntrackCPUStats]?
        var statsError: String?
        if conntrack != nil {
            if let usage = try? NodeStatusNetlink.conntrackUsage() { conntrack = usage }
            do {
                cpuStats = try NodeStatusNetlink.conntrackCPUStats()
            } catch {
                statsError = "\(error)"
            }
        } else {
            statsError = "nf_conntrack not loaded"
        }
        let table: TableStatus
        do {
            table = try NodeStatusNetlink.table(named: "weir")
        } catch {
            table = .unknown("\(error)")
        }
        let listen = files.listenCounters()
        let status = NodeStatus(
            initialNetworkNamespace: probe.isInitialNetworkNamespace(), cpu: probe.cpuBudget(),
            conntrack: conntrack, conntrackCPUs: cpuStats, conntrackStatsError: statsError,
            listenOverflows: listen.overflows, listenDrops: listen.drops,
            somaxconn: files.readInt("/proc/sys/net/core/somaxconn"),
            tcpMaxSynBacklog: files.readInt("/proc/sys/net/ipv4/tcp_max_syn_backlog"),
            proxyBacklog: proxyBacklog, table: table, generation: try? NodeStatusNetlink.generation())
        print(status.report(), terminator: "")
    }
}
