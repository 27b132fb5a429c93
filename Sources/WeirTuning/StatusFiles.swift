import WeirCore

/// The parts of `weir status` that come from files: conntrack count and max (fallback when ctnetlink cannot be
/// asked), accept-queue counters and the backlog settings.
public struct StatusFiles: Sendable {
    public let files: SysctlFiles

    public init(files: SysctlFiles = SysctlFiles()) {
        self.files = files
    }

    /// nf_conntrack_count and nf_conntrack_max of this network namespace, nil when nf_conntrack is not loaded.
    public func conntrackUsage() -> ConntrackUsage? {
        guard let count = readInt("/proc/sys/net/netfilter/nf_conntrack_count"),
              let max = readInt("/proc/sys/net/netfilter/nf_conntrack_max") else { return nil }
        return ConntrackUsage(entries: count, maximum: max, source: "procfs")
    }

    /// TcpExt ListenOverflows and ListenDrops of this network namespace.
    public func listenCounters() -> (overflows: UInt64?, drops: UInt64?) {
        guard let text = files.read("/proc/net/netstat") else { return (nil, nil) }
        let tcpExt = NetstatCounters.parse(text)["TcpExt"]
        return (tcpExt?["ListenOverflows"], tcpExt?["ListenDrops"])
    }

    public func readInt(_ path: String) -> Int? {
        files.read(path).flatMap { SysctlValue(parsing: $0)?.scalar }
    }
}

/// The netlink parts of the status, passed in by the caller (WeirNetfilter's `NodeStatusNetlink` on a real node),
/// so this module needs no C and tests can fake them.
public struct StatusNetlinkReaders {
    public var conntrackUsage: () throws -> ConntrackUsage
    public var conntrackCPUStats: () throws -> [ConntrackCPUStats]
    public var table: () throws -> TableStatus
    public var generation: () throws -> UInt32

    public init(conntrackUsage: @escaping () throws -> ConntrackUsage,
                conntrackCPUStats: @escaping () throws -> [ConntrackCPUStats],
                table: @escaping () throws -> TableStatus, generation: @escaping () throws -> UInt32) {
        self.conntrackUsage = conntrackUsage
        self.conntrackCPUStats = conntrackCPUStats
        self.table = table
        self.generation = generation
    }
}

extension NodeStatus {
    /// Gathers everything `weir status` shows (and a metrics endpoint exports) for the caller's network namespace.
    /// Netlink failures (EPERM without CAP_NET_ADMIN) become "unknown" with the reason; conntrack count and max
    /// fall back to /proc/sys/net/netfilter.
    public static func collect(probe: NodeProbe = NodeProbe(), netlink: StatusNetlinkReaders,
                               proxyBacklog: Int) -> NodeStatus {
        let files = StatusFiles(files: probe.files)
        var conntrack = files.conntrackUsage()
        var cpuStats: [ConntrackCPUStats]?
        var statsError: String?
        if conntrack != nil {
            if let usage = try? netlink.conntrackUsage() { conntrack = usage }
            do {
                cpuStats = try netlink.conntrackCPUStats()
            } catch {
                statsError = "\(error)"
            }
        } else {
            statsError = "nf_conntrack not loaded"
        }
        let table: TableStatus
        do {
            table = try netlink.table()
        } catch {
            table = .unknown("\(error)")
        }
        let listen = files.listenCounters()
        return NodeStatus(
            initialNetworkNamespace: probe.isInitialNetworkNamespace(), cpu: probe.cpuBudget(),
            conntrack: conntrack, conntrackCPUs: cpuStats, conntrackStatsError: statsError,
            listenOverflows: listen.overflows, listenDrops: listen.drops,
            somaxconn: files.readInt("/proc/sys/net/core/somaxconn"),
            tcpMaxSynBacklog: files.readInt("/proc/sys/net/ipv4/tcp_max_syn_backlog"),
            proxyBacklog: proxyBacklog, table: table, generation: try? netlink.generation())
    }
}
