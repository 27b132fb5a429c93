extension NodeStatus {
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
}

/// A percentage with two decimals: `0.00`, `12.50`.
func tuningPercent(_ value: Double) -> String {
    let hundredths = Int((value * 100).rounded())
    let frac = hundredths % 100
    return "\(hundredths / 100).\(frac < 10 ? "0" : "")\(frac)"
}
