/// Per-CPU conntrack counters from ctnetlink (`IPCTNL_MSG_CT_GET_STATS_CPU`).
public struct ConntrackCPUStats: Equatable, Sendable {
    public var cpu: Int
    public var found: UInt64 = 0
    public var invalid: UInt64 = 0
    public var insert: UInt64 = 0
    public var insertFailed: UInt64 = 0
    public var drop: UInt64 = 0
    public var earlyDrop: UInt64 = 0
    public var error: UInt64 = 0
    public var searchRestart: UInt64 = 0
    public var clashResolve: UInt64 = 0
    public var chainTooLong: UInt64 = 0

    public init(cpu: Int) { self.cpu = cpu }
}

/// Conntrack table fill.
public struct ConntrackUsage: Equatable, Sendable {
    public var entries: Int
    public var maximum: Int
    /// Where the numbers came from: "ctnetlink" or "procfs".
    public var source: String

    public init(entries: Int, maximum: Int, source: String) {
        self.entries = entries
        self.maximum = maximum
        self.source = source
    }

    /// Entries as a percentage of the maximum (0 when the maximum is unknown).
    public var usagePercent: Double { maximum > 0 ? Double(entries) * 100 / Double(maximum) : 0 }
}

/// weir's nftables table (`inet weir`) as the kernel reports it.
public enum TableStatus: Equatable, Sendable {
    case absent
    /// Flags are NFT_TABLE_F_*; owner is the netlink port id of the owning socket when owned.
    case present(flags: UInt32, ownerPort: UInt32?)
    /// Could not ask the kernel (the reason says why).
    case unknown(String)

    public var installed: Bool? {
        switch self {
        case .absent: return false
        case .present: return true
        case .unknown: return nil
        }
    }
}

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

    /// The readable report of `weir status`.
    public func report() -> String {
        var rows = [["ITEM", "VALUE", "NOTE"]]
        rows.append(["network namespace", initialNetworkNamespace ? "initial" : "non-initial",
                     initialNetworkNamespace ? "" : "global keys and conntrack max belong to the host"])
        rows.append(["cpu budget", "\(cpu.usable)",
                     "host \(cpu.host), quota \(cpu.quota.map(tuningDecimal) ?? "none"), "
                        + "cpuset \(cpu.cpuset.map(String.init) ?? "none"); limited by \(cpu.limitedBy)"])
        if let ct = conntrack {
            rows.append(["conntrack entries", "\(ct.entries)", "from \(ct.source)"])
            rows.append(["conntrack max", "\(ct.maximum)", ""])
            rows.append(["conntrack usage", tuningPercent(ct.usagePercent) + "%",
                         "warn at \(tuningDecimal(NodeStatus.conntrackWarnPercent))%"])
        } else {
            rows.append(["conntrack", "unknown", "nf_conntrack not loaded"])
        }
        if let t = conntrackTotals {
            rows.append(["conntrack insert_failed", "\(t.insertFailed)", "sum over CPUs"])
            rows.append(["conntrack drop", "\(t.drop)", "sum over CPUs"])
            rows.append(["conntrack early_drop", "\(t.earlyDrop)", "sum over CPUs"])
        } else {
            rows.append(["conntrack per-cpu stats", "unknown", conntrackStatsError ?? ""])
        }
        rows.append(["ListenOverflows", listenOverflows.map(String.init) ?? "unknown", "/proc/net/netstat TcpExt"])
        rows.append(["ListenDrops", listenDrops.map(String.init) ?? "unknown", "/proc/net/netstat TcpExt"])
        rows.append(["net.core.somaxconn", somaxconn.map(String.init) ?? "unknown", "caps every listen() backlog"])
        rows.append(["net.ipv4.tcp_max_syn_backlog", tcpMaxSynBacklog.map(String.init) ?? "unknown", ""])
        var backlogNote = ""
        if let effective = effectiveBacklog {
            backlogNote = "effective \(effective)" + (effective < proxyBacklog ? ", capped by somaxconn" : "")
        }
        rows.append(["proxy listen backlog", "\(proxyBacklog)", backlogNote])
        switch table {
        case .absent:
            rows.append(["table inet weir", "not installed", ""])
        case .present(let flags, let owner):
            let owned = flags & TableFlag.owner != 0
            let persist = flags & TableFlag.persist != 0
            rows.append(["table inet weir", "installed", "flags 0x" + String(flags, radix: 16)])
            rows.append(["table owned", owned ? "yes" : "no", owner.map { owned ? "netlink port \($0)" : "" } ?? ""])
            rows.append(["table persist", persist ? "yes" : "no", ""])
        case .unknown(let reason):
            rows.append(["table inet weir", "unknown", reason])
        }
        rows.append(["nftables generation", generation.map(String.init) ?? "unknown", ""])
        var out = TextTable.render(rows)
        if let cpus = conntrackCPUs, !cpus.isEmpty {
            var perCPU = [["CPU", "FOUND", "INVALID", "INSERT", "INSERT_FAILED", "DROP", "EARLY_DROP", "ERROR",
                           "SEARCH_RESTART", "CLASH_RESOLVE", "CHAIN_TOOLONG"]]
            for s in cpus.sorted(by: { $0.cpu < $1.cpu }) {
                perCPU.append(["\(s.cpu)", "\(s.found)", "\(s.invalid)", "\(s.insert)", "\(s.insertFailed)",
                               "\(s.drop)", "\(s.earlyDrop)", "\(s.error)", "\(s.searchRestart)",
                               "\(s.clashResolve)", "\(s.chainTooLong)"])
            }
            out += "\n" + TextTable.render(perCPU)
        }
        let w = warnings
        out += "\n" + (w.isEmpty ? "no warnings\n" : w.map { "warning: \($0)\n" }.joined())
        return out
    }

    /// The same numbers as Prometheus samples, sorted by name and labels.
    public var metricSamples: [MetricSample] {
        var out: [MetricSample] = [MetricSample(name: "weir_cpu_budget_cpus", value: Double(cpu.usable))]
        if let ct = conntrack {
            out.append(MetricSample(name: "weir_conntrack_entries", value: Double(ct.entries)))
            out.append(MetricSample(name: "weir_conntrack_entries_max", value: Double(ct.maximum)))
            out.append(MetricSample(name: "weir_conntrack_usage_ratio", value: ct.usagePercent / 100))
        }
        for s in conntrackCPUs ?? [] {
            let labels = ["cpu": "\(s.cpu)"]
            out.append(MetricSample(name: "weir_conntrack_insert_failed_total", labels: labels,
                                    value: Double(s.insertFailed)))
            out.append(MetricSample(name: "weir_conntrack_drop_total", labels: labels, value: Double(s.drop)))
            out.append(MetricSample(name: "weir_conntrack_early_drop_total", labels: labels,
                                    value: Double(s.earlyDrop)))
        }
        if let v = listenOverflows {
            out.append(MetricSample(name: "weir_tcp_listen_overflows_total", value: Double(v)))
        }
        if let v = listenDrops { out.append(MetricSample(name: "weir_tcp_listen_drops_total", value: Double(v))) }
        if let v = somaxconn { out.append(MetricSample(name: "weir_net_core_somaxconn", value: Double(v))) }
        out.append(MetricSample(name: "weir_proxy_listen_backlog", value: Double(proxyBacklog)))
        if let installed = table.installed {
            out.append(MetricSample(name: "weir_nftables_table_installed", value: installed ? 1 : 0))
        }
        if case .present(let flags, _) = table {
            out.append(MetricSample(name: "weir_nftables_table_owned", value: flags & TableFlag.owner != 0 ? 1 : 0))
        }
        if let g = generation { out.append(MetricSample(name: "weir_nftables_generation", value: Double(g))) }
        return out.sorted { ($0.name, $0.labelText) < ($1.name, $1.labelText) }
    }
}

/// One Prometheus sample.
public struct MetricSample: Equatable, Sendable {
    public let name: String
    public let labels: [String: String]
    public let value: Double

    public init(name: String, labels: [String: String] = [:], value: Double) {
        self.name = name
        self.labels = labels
        self.value = value
    }

    /// `{a="1",b="2"}` with sorted label names, or empty.
    public var labelText: String {
        guard !labels.isEmpty else { return "" }
        return "{" + labels.keys.sorted().map { "\($0)=\"\(Self.escapeLabel(labels[$0]!))\"" }
            .joined(separator: ",") + "}"
    }

    /// A label value as the exposition format wants it: `\`, `"` and newline escaped.
    public static func escapeLabel(_ value: String) -> String {
        var out = ""
        for c in value {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }
}

/// Parser for /proc/net/netstat and /proc/net/snmp: pairs of `Prefix: names...` / `Prefix: values...` lines.
public enum NetstatCounters {
    /// Counters by prefix (`TcpExt`) and name (`ListenOverflows`).
    public static func parse(_ text: String) -> [String: [String: UInt64]] {
        var result: [String: [String: UInt64]] = [:]
        let lines = text.split(separator: "\n").map(String.init)
        var i = 0
        while i + 1 < lines.count {
            let header = lines[i].split(separator: " "), values = lines[i + 1].split(separator: " ")
            guard let prefix = header.first, prefix.hasSuffix(":"), values.first == prefix,
                  header.count == values.count else {
                i += 1
                continue
            }
            var counters: [String: UInt64] = [:]
            for (name, value) in zip(header.dropFirst(), values.dropFirst()) {
                if let v = UInt64(value) { counters[String(name)] = v }
            }
            result[String(prefix.dropLast())] = counters
            i += 2
        }
        return result
    }
}

/// A percentage with two decimals: `0.00`, `12.50`.
func tuningPercent(_ value: Double) -> String {
    let hundredths = Int((value * 100).rounded())
    let frac = hundredths % 100
    return "\(hundredths / 100).\(frac < 10 ? "0" : "")\(frac)"
}
