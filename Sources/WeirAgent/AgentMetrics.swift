import WeirCore
import WeirProxy

/// Prometheus samples of the proxy's counters. Names carry their unit or `_total`.
public func proxyMetricSamples(_ c: ProxyCountersSnapshot, config: ProxyConfig) -> [MetricSample] {
    let counters: [(String, Int64)] = [
        ("weir_proxy_connections_accepted_total", c.accepted),
        ("weir_proxy_connections_closed_total", c.closed),
        ("weir_proxy_not_redirected_total", c.notRedirected),
        ("weir_proxy_refused_max_connections_total", c.refusedMaxConnections),
        ("weir_proxy_idle_timeouts_total", c.idleTimeouts),
        ("weir_proxy_resets_total", c.resets),
        ("weir_proxy_descriptor_exhaustion_total", c.fdExhausted),
        ("weir_proxy_buffer_full_total", c.bufferFull),
        ("weir_proxy_copy_fallbacks_total", c.copyFallbacks),
        ("weir_proxy_drain_closed_total", c.drainClosed),
        ("weir_proxy_conntrack_entries_deleted_total", c.conntrackDeleted),
        ("weir_proxy_conntrack_delete_failures_total", c.conntrackDeleteFailures),
        ("weir_proxy_conntrack_deletes_spared_total", c.conntrackSpared),
    ]
    let failures = UpstreamFailure.allCases.map {
        MetricSample(name: "weir_proxy_upstream_failures_total", labels: ["reason": $0.label],
                     value: Double(c.failures($0)))
    }
    let directions = [("inbound", c.inboundTotal, c.inboundActive), ("outbound", c.outboundTotal, c.outboundActive)]
        .flatMap { direction, total, active in [
            MetricSample(name: "weir_proxy_connections_total", labels: ["direction": direction], value: Double(total)),
            MetricSample(name: "weir_proxy_connections_forwarded_active", labels: ["direction": direction],
                         value: Double(active)),
        ] }
    return counters.map { MetricSample(name: $0.0, value: Double($0.1)) } + failures + directions + [
        MetricSample(name: "weir_proxy_bytes_total", labels: ["direction": "client_to_upstream"],
                     value: Double(c.bytesFromClient)),
        MetricSample(name: "weir_proxy_bytes_total", labels: ["direction": "upstream_to_client"],
                     value: Double(c.bytesFromUpstream)),
        MetricSample(name: "weir_proxy_connections_active", value: Double(c.active)),
        MetricSample(name: "weir_proxy_connections_connecting", value: Double(c.connecting)),
        MetricSample(name: "weir_proxy_connections_idle", value: Double(c.idle)),
        MetricSample(name: "weir_proxy_connections_draining", value: Double(c.draining)),
        MetricSample(name: "weir_proxy_connections_max", value: Double(config.maxConnections)),
        MetricSample(name: "weir_proxy_workers", value: Double(config.workers)),
        MetricSample(name: "weir_proxy_idle_timeout_seconds", value: Double(config.idleTimeoutMs) / 1000),
        MetricSample(name: "weir_proxy_drain_timeout_seconds", value: Double(config.drainTimeoutMs) / 1000),
    ]
}

/// The agent's own samples: readiness, build, capture applies, reconcile, reloads and failed rollbacks.
func agentMetricSamples(_ s: Agent.AgentState) -> [MetricSample] {
    var samples = [
        MetricSample(name: "weir_ready", value: s.ready ? 1 : 0),
        MetricSample(name: "weir_build_info", labels: ["version": BuildInfo.version, "commit": BuildInfo.commit],
                     value: 1),
        MetricSample(name: "weir_capture_applies_total", value: Double(s.applies)),
        MetricSample(name: "weir_capture_apply_failures_total", value: Double(s.applyFailures)),
        MetricSample(name: "weir_capture_last_apply_timestamp_seconds", value: Double(s.lastApplyWall)),
    ]
    for object in ["table", "owner", "rule", "route", "address"] {
        samples.append(MetricSample(name: "weir_reconcile_repairs_total", labels: ["object": object],
                                    value: Double(s.repairs[object] ?? 0)))
    }
    samples += [
        MetricSample(name: "weir_reconcile_runs_total", value: Double(s.reconciles)),
        MetricSample(name: "weir_reconcile_last_timestamp_seconds", value: Double(s.lastReconcileWall)),
        MetricSample(name: "weir_config_reloads_total", value: Double(s.reloads)),
        MetricSample(name: "weir_config_reload_failures_total", value: Double(s.reloadFailures)),
        MetricSample(name: "weir_conntrack_stale_deleted_total", value: Double(s.staleConntrackDeleted)),
    ]
    for step in Agent.RollbackStep.allCases {
        samples.append(MetricSample(name: "weir_rollback_failures_total", labels: ["step": step.rawValue],
                                    value: Double(s.rollbackFailures[step] ?? 0)))
    }
    return samples
}

/// Pod mode: `weir_pods{state}`, and per pod (label `pod="namespace/name"`, one series set per attached pod)
/// connections accepted, active and failed by direction, bytes by direction, connections refused at the pod's
/// ceiling, reconcile repairs, and the pod namespace's listen-queue overflows.
func podMetricSamples(_ views: [PodManager.PodView], overflows: [String: UInt64]) -> [MetricSample] {
    var byState: [String: Int] = [:]
    for v in views { byState[v.state.name, default: 0] += 1 }
    var samples = PodState.names.map {
        MetricSample(name: "weir_pods", labels: ["state": $0], value: Double(byState[$0] ?? 0))
    }
    for v in views.sorted(by: { $0.record.label < $1.record.label }) {
        let pod = v.record.label
        let c = v.context?.snapshot
        func sample(_ name: String, _ extra: [String: String] = [:], _ value: Int64?) {
            var labels = extra
            labels["pod"] = pod
            samples.append(MetricSample(name: name, labels: labels, value: Double(value ?? 0)))
        }
        sample("weir_pod_connections_accepted_total", ["direction": "outbound"], c?.acceptedOutbound)
        sample("weir_pod_connections_accepted_total", ["direction": "inbound"], c?.acceptedInbound)
        sample("weir_pod_connections_active", ["direction": "outbound"], c?.activeOutbound)
        sample("weir_pod_connections_active", ["direction": "inbound"], c?.activeInbound)
        sample("weir_pod_connections_failed_total", ["direction": "outbound"], c?.failedOutbound)
        sample("weir_pod_connections_failed_total", ["direction": "inbound"], c?.failedInbound)
        sample("weir_pod_bytes_total", ["direction": "client_to_upstream"], c?.bytesToUpstream)
        sample("weir_pod_bytes_total", ["direction": "upstream_to_client"], c?.bytesToClient)
        sample("weir_pod_ceiling_pauses_total", [:], c?.ceilingPauses)
        sample("weir_pod_rate_pauses_total", [:], c?.ratePauses)
        sample("weir_pod_repairs_total", [:], v.repairs)
        if let o = overflows[pod] { sample("weir_pod_listen_overflows_total", [:], Int64(clamping: o)) }
    }
    return samples
}

/// The accept queue and drops of each listening socket, labelled by listener (outbound -p, inbound -z), address
/// family and worker.
public func listenerMetricSamples(_ stats: [ListenerStats]) -> [MetricSample] {
    stats.flatMap { s -> [MetricSample] in
        let labels = ["listener": s.listener, "family": s.family, "worker": "\(s.worker)"]
        return [
            MetricSample(name: "weir_proxy_listen_queue_length", labels: labels, value: Double(s.queueLength)),
            MetricSample(name: "weir_proxy_listen_queue_limit", labels: labels, value: Double(s.queueLimit)),
            MetricSample(name: "weir_proxy_listen_drops_total", labels: labels, value: Double(s.drops)),
        ]
    }
}

/// The drain in progress: 1 and its deadline (Unix seconds) while the data plane drains after SIGTERM, 0 otherwise.
public func drainMetricSamples(startedWall: Int64, deadlineWall: Int64) -> [MetricSample] {
    [
        MetricSample(name: "weir_proxy_draining", value: startedWall > 0 ? 1 : 0),
        MetricSample(name: "weir_proxy_drain_started_timestamp_seconds", value: Double(startedWall)),
        MetricSample(name: "weir_proxy_drain_deadline_timestamp_seconds", value: Double(deadlineWall)),
    ]
}

/// One-line help for every family weir exports; a family missing here renders with its name as help, which the
/// kernel test `metricsPassPromtoolAndConfigAndVersionAreServed` refuses.
public let metricHelp: [String: String] = [
    // The agent.
    "weir_ready": "1 when the capture rules are installed and the proxy listens.",
    "weir_build_info": "Version and git commit of this weir build (always 1).",
    "weir_capture_applies_total": "Capture installs that changed the kernel: start, reload and reconcile repairs.",
    "weir_capture_apply_failures_total": "Capture installs the kernel refused (start, reload, reconcile).",
    "weir_capture_last_apply_timestamp_seconds": "Unix time of the last capture install that changed the kernel.",
    "weir_reconcile_repairs_total": "Objects reconcile found drifted and repaired, by object.",
    "weir_reconcile_runs_total": "Reconcile passes (interval, netlink events, /readyz finding something missing).",
    "weir_reconcile_last_timestamp_seconds": "Unix time of the last reconcile pass.",
    "weir_config_reloads_total": "SIGHUP reloads applied.",
    "weir_config_reload_failures_total": "SIGHUP reloads refused (bad file, or a change that needs a restart).",
    "weir_pods": "Pods the agent knows (pod mode), by state: up (served), pending, failed.",
    "weir_pod_connections_accepted_total": "Connections accepted on a pod's capture listeners, by direction.",
    "weir_pod_connections_active": "Open proxied connections of a pod, by direction.",
    "weir_pod_connections_failed_total": "A pod's accepted connections that could not be forwarded (upstream "
        + "connect failed or timed out, no socket), by direction.",
    "weir_pod_bytes_total": "Bytes forwarded for a pod: client_to_upstream and upstream_to_client.",
    "weir_pod_ceiling_pauses_total": "Times a worker stopped accepting for a pod at --max-connections-per-pod (its "
        + "new connections wait in its own accept queue until it is below).",
    "weir_pod_rate_pauses_total": "Times a worker stopped accepting for a pod at --max-connection-rate-per-pod "
        + "(its new connections wait in its own accept queue until the rate allows more).",
    "weir_pod_repairs_total": "Drift in a pod's capture (table, routing) that reconcile repaired.",
    "weir_pod_listen_overflows_total": "TCP accept-queue overflows in the pod's network namespace "
        + "(TcpExtListenOverflows: weir's listeners there and the application's).",
    "weir_conntrack_stale_deleted_total": "Conntrack entries of a killed predecessor's upstream connects (weir's "
        + "ct mark, SYN_SENT) deleted at start and at pod re-attaches; see the conntrack_stale_deleted lines.",
    "weir_rollback_failures_total": "Undo steps that failed after another failure, by step: capture_remove and "
        + "tuning_revert (a failed start), capture_restore (a failed reload); see the rollback_failed lines.",
    // The proxy's connections.
    "weir_proxy_connections_accepted_total": "Connections accepted on the capture ports (before any check).",
    "weir_proxy_connections_closed_total": "Accepted connections closed, for any reason.",
    "weir_proxy_connections_active": "Proxied connections open now.",
    "weir_proxy_connections_max": "Ceiling of proxied connections (--max-connections).",
    "weir_proxy_connections_total":
        "Connections forwarded (original destination known, upstream dialled), by direction.",
    "weir_proxy_connections_forwarded_active": "Forwarded connections open now, by direction.",
    "weir_proxy_connections_connecting": "Connections whose upstream connect is in progress (sampled each second).",
    "weir_proxy_connections_idle":
        "Established connections that moved no bytes for 10 seconds or more (sampled each second).",
    "weir_proxy_connections_draining":
        "Connections still open on a data plane that drains (SIGTERM) or retires (reload): those left to drain.",
    "weir_proxy_refused_max_connections_total": "Connections refused because --max-connections was reached.",
    "weir_proxy_not_redirected_total":
        "Connections to a capture port that were not redirected; closed, never forwarded.",
    "weir_proxy_idle_timeouts_total": "Connections closed by --idle-timeout.",
    "weir_proxy_resets_total": "Resets propagated from one side of a connection to the other.",
    "weir_proxy_descriptor_exhaustion_total": "EMFILE or ENFILE seen while accepting or connecting.",
    "weir_proxy_buffer_full_total":
        "Times a direction stopped reading because its --buffer-limit was full and the receiver was slow.",
    "weir_proxy_copy_fallbacks_total":
        "Directions that copied through a buffer because splice or a pipe was unavailable.",
    "weir_proxy_drain_closed_total": "Connections closed at the --drain-timeout deadline, not by their peers.",
    "weir_proxy_conntrack_entries_deleted_total":
        "Conntrack entries of upstream flows that failed or never connected, deleted so new connections are captured.",
    "weir_proxy_conntrack_delete_failures_total":
        "Conntrack deletions the kernel refused (EPERM without CAP_NET_ADMIN); see the conntrack_delete_failed lines.",
    "weir_proxy_conntrack_deletes_spared_total": "Conntrack deletes of failed upstream flows not made: an "
        + "application's connection, redirected to weir, had taken the same 4-tuple by then.",
    "weir_proxy_bytes_total": "Bytes the proxy forwarded (written to the other side), by direction.",
    "weir_proxy_upstream_failures_total": "Upstream connects that failed, by reason: refused, timeout (the kernel's), "
        + "connect_timeout (--connect-timeout), unreachable, reset, other.",
    "weir_proxy_upstream_connect_seconds": "Time from connect() to an established upstream connection.",
    "weir_proxy_connection_duration_seconds": "Lifetime of forwarded connections, from accept to close.",
    // The proxy's settings.
    "weir_proxy_workers": "Worker threads requested with --workers (0: one per usable CPU).",
    "weir_proxy_idle_timeout_seconds": "--idle-timeout in seconds (0: none).",
    "weir_proxy_drain_timeout_seconds": "--drain-timeout in seconds: how long a drain may take.",
    "weir_proxy_listen_backlog": "Backlog the proxy's listeners use (net.core.somaxconn).",
    // Listeners and drain.
    "weir_proxy_listen_queue_length":
        "Connections waiting in a listener's accept queue (TCP_INFO), by listener, family and worker.",
    "weir_proxy_listen_queue_limit": "Limit of a listener's accept queue (its backlog), by listener, family, worker.",
    "weir_proxy_listen_drops_total":
        "Connections a listener dropped, mostly because its accept queue was full (SO_MEMINFO drops).",
    "weir_proxy_draining": "1 while the data plane drains after SIGTERM, else 0.",
    "weir_proxy_drain_started_timestamp_seconds": "Unix time the drain began (0: no drain).",
    "weir_proxy_drain_deadline_timestamp_seconds":
        "Unix time the drain ends at the latest (--drain-timeout); 0: no drain.",
    // The node.
    "weir_cpu_budget_cpus": "CPUs this process may really use (cgroup quota and cpuset): the worker count.",
    "weir_conntrack_entries": "Conntrack entries in this network namespace.",
    "weir_conntrack_entries_max": "net.netfilter.nf_conntrack_max: new flows are dropped past it.",
    "weir_conntrack_usage_ratio": "Conntrack entries over the conntrack maximum.",
    "weir_conntrack_insert_failed_total": "Conntrack inserts that failed (a clash, or the table full), by CPU.",
    "weir_conntrack_drop_total": "Packets dropped because a conntrack entry could not be made, by CPU.",
    "weir_conntrack_early_drop_total": "Conntrack entries evicted early to make room in a full table, by CPU.",
    "weir_tcp_listen_overflows_total": "TcpExt ListenOverflows: connections dropped because an accept queue was full.",
    "weir_tcp_listen_drops_total": "TcpExt ListenDrops: SYNs and connections any listener dropped (node-wide).",
    "weir_net_core_somaxconn": "net.core.somaxconn: the largest accept queue a listener can get.",
    "weir_nftables_table_installed": "1 when weir's capture table is in the kernel.",
    "weir_nftables_table_owned": "1 when weir's table carries the nftables owner flag (nobody else can change it).",
    "weir_nftables_generation": "nftables ruleset generation: it moves on every commit by anyone.",
    // The process.
    "process_cpu_seconds_total": "User and system CPU time spent, in seconds.",
    "process_resident_memory_bytes": "Resident memory size, in bytes.",
    "process_virtual_memory_bytes": "Virtual memory size, in bytes.",
    "process_start_time_seconds": "Start time of the process since the Unix epoch, in seconds.",
    "process_open_fds": "Open file descriptors.",
    "process_max_fds": "Maximum number of open file descriptors (soft RLIMIT_NOFILE).",
]
