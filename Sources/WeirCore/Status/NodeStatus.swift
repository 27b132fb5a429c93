/// The numbers `weir status` shows, and a metrics endpoint can export: how close the node is to the failures that
/// hurt ingress and mesh nodes (full conntrack table, overflowing accept queues).
public struct NodeStatus: Equatable, Sendable {
    public var initialNetworkNamespace: Bool
    public var cpu: CPUBudget
    public var conntrack: ConntrackUsage?
    /// Per-CPU statistics; nil when ctnetlink could not be asked (see `conntrackStatsError`).
    public var conntrackCPUs: [ConntrackCPUStats]?
    public var conntrackStatsError: String?
    /// TcpExt ListenOverflows and ListenDrops from /proc/net/netstat.
    public var listenOverflows: UInt64?
    public var listenDrops: UInt64?
    public var somaxconn: Int?
    public var tcpMaxSynBacklog: Int?
    /// The backlog the proxy passes to listen(); the kernel caps it at somaxconn.
    public var proxyBacklog: Int
    public var table: TableStatus
    public var generation: UInt32?

    public init(initialNetworkNamespace: Bool, cpu: CPUBudget, conntrack: ConntrackUsage?,
                conntrackCPUs: [ConntrackCPUStats]?, conntrackStatsError: String?,
                listenOverflows: UInt64?, listenDrops: UInt64?, somaxconn: Int?, tcpMaxSynBacklog: Int?,
                proxyBacklog: Int, table: TableStatus, generation: UInt32?) {
        self.initialNetworkNamespace = initialNetworkNamespace
        self.cpu = cpu
        self.conntrack = conntrack
        self.conntrackCPUs = conntrackCPUs
        self.conntrackStatsError = conntrackStatsError
        self.listenOverflows = listenOverflows
        self.listenDrops = listenDrops
        self.somaxconn = somaxconn
        self.tcpMaxSynBacklog = tcpMaxSynBacklog
        self.proxyBacklog = proxyBacklog
        self.table = table
        self.generation = generation
    }

    /// Sum of the per-CPU counters.
    public var conntrackTotals: ConntrackCPUStats? {
        guard let cpus = conntrackCPUs else { return nil }
        var total = ConntrackCPUStats(cpu: -1)
        for s in cpus {
            total.found += s.found; total.invalid += s.invalid; total.insert += s.insert
            total.insertFailed += s.insertFailed; total.drop += s.drop; total.earlyDrop += s.earlyDrop
            total.error += s.error; total.searchRestart += s.searchRestart; total.clashResolve += s.clashResolve
            total.chainTooLong += s.chainTooLong
        }
        return total
    }

    /// The accept-queue length the proxy really gets: what it asks for, capped by somaxconn.
    public var effectiveBacklog: Int? { somaxconn.map { min($0, proxyBacklog) } }

    /// Conntrack usage at or above this percentage is a warning.
    public static let conntrackWarnPercent = 80.0

    /// Things an operator should look at, one line each.
    public var warnings: [String] {
        var out: [String] = []
        if let ct = conntrack, ct.usagePercent >= NodeStatus.conntrackWarnPercent {
            out.append("conntrack table \(tuningPercent(ct.usagePercent))% full: new flows will be dropped at 100%")
        }
        if let t = conntrackTotals {
            if t.insertFailed > 0 || t.drop > 0 || t.earlyDrop > 0 {
                out.append("conntrack dropped flows (insert_failed \(t.insertFailed), drop \(t.drop), "
                    + "early_drop \(t.earlyDrop))")
            }
        }
        if let o = listenOverflows, o > 0 {
            out.append("accept queues overflowed \(o) times (ListenOverflows): raise somaxconn and the proxy backlog")
        }
        return out
    }
}
