extension NodeStatus {
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
