import WeirCore
import WeirProxy

/// Prometheus samples of the proxy's counters. Names carry their unit or `_total`.
public func proxyMetricSamples(_ c: ProxyCountersSnapshot, config: ProxyConfig) -> [MetricSample] {
    let counters: [(String, Int64)] = [
        ("weir_proxy_connections_accepted_total", c.accepted),
        ("weir_proxy_connections_closed_total", c.closed),
        ("weir_proxy_not_redirected_total", c.notRedirected),
        ("weir_proxy_refused_max_connections_total", c.refusedMaxConnections),
        ("weir_proxy_upstream_connect_failures_total", c.connectFailures),
        ("weir_proxy_upstream_connect_timeouts_total", c.connectTimeouts),
        ("weir_proxy_idle_timeouts_total", c.idleTimeouts),
        ("weir_proxy_resets_total", c.resets),
        ("weir_proxy_descriptor_exhaustion_total", c.fdExhausted),
        ("weir_proxy_buffer_full_total", c.bufferFull),
        ("weir_proxy_copy_fallbacks_total", c.copyFallbacks),
        ("weir_proxy_drain_closed_total", c.drainClosed),
        ("weir_proxy_conntrack_entries_deleted_total", c.conntrackDeleted),
        ("weir_proxy_conntrack_delete_failures_total", c.conntrackDeleteFailures),
    ]
    let failures = UpstreamFailure.allCases.map {
        MetricSample(name: "weir_proxy_upstream_failures_total", labels: ["reason": $0.label],
                     value: Double(c.failures[$0.rawValue]))
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
        MetricSample(name: "weir_proxy_connections_max", value: Double(config.maxConnections)),
        MetricSample(name: "weir_proxy_workers", value: Double(config.workers)),
        MetricSample(name: "weir_proxy_idle_timeout_seconds", value: Double(config.idleTimeoutMs) / 1000),
        MetricSample(name: "weir_proxy_drain_timeout_seconds", value: Double(config.drainTimeoutMs) / 1000),
    ]
}

/// One-line help for the families weir exports.
public let metricHelp: [String: String] = [
    "weir_ready": "1 when the capture rules are installed and the proxy listens.",
    "weir_proxy_bytes_total": "Bytes the proxy forwarded (written to the other side), by direction.",
    "weir_proxy_connections_active": "Proxied connections open now.",
    "weir_proxy_connections_max": "Ceiling of proxied connections (--max-connections).",
    "weir_proxy_refused_max_connections_total": "Connections refused because --max-connections was reached.",
    "weir_proxy_not_redirected_total":
        "Connections to a capture port that were not redirected; closed, never forwarded.",
    "weir_proxy_idle_timeouts_total": "Connections closed by --idle-timeout.",
    "weir_proxy_upstream_connect_timeouts_total": "Upstream connects that exceeded --connect-timeout.",
    "weir_proxy_descriptor_exhaustion_total": "EMFILE or ENFILE seen while accepting or connecting.",
    "weir_proxy_conntrack_entries_deleted_total":
        "Conntrack entries of upstream flows that failed or never connected, deleted so new connections are captured.",
    "weir_proxy_conntrack_delete_failures_total":
        "Conntrack deletions the kernel refused (EPERM without CAP_NET_ADMIN); see the conntrack_delete_failed lines.",
    "weir_conntrack_usage_ratio": "Conntrack entries over the conntrack maximum.",
    "weir_tcp_listen_overflows_total": "TcpExt ListenOverflows: connections dropped because an accept queue was full.",
    "weir_proxy_listen_backlog": "Backlog the proxy's listeners use (net.core.somaxconn).",
    "weir_proxy_connections_total":
        "Connections forwarded (original destination known, upstream dialled), by direction.",
    "weir_proxy_connections_forwarded_active": "Forwarded connections open now, by direction.",
    "weir_proxy_upstream_failures_total": "Upstream connects that failed, by reason (refused, timeout, unreachable, "
        + "reset, other).",
    "weir_proxy_upstream_connect_seconds": "Time from connect() to an established upstream connection.",
    "weir_proxy_connection_duration_seconds": "Lifetime of forwarded connections, from accept to close.",
    "weir_build_info": "Version and git commit of this weir build (always 1).",
    "weir_capture_applies_total": "Capture installs that changed the kernel: start, reload and reconcile repairs.",
    "weir_capture_apply_failures_total": "Capture installs the kernel refused (start, reload, reconcile).",
    "weir_capture_last_apply_timestamp_seconds": "Unix time of the last capture install that changed the kernel.",
    "weir_reconcile_repairs_total": "Objects reconcile found drifted and repaired, by object.",
    "weir_reconcile_runs_total": "Reconcile passes (interval, netlink events, /readyz finding something missing).",
    "weir_reconcile_last_timestamp_seconds": "Unix time of the last reconcile pass.",
    "weir_config_reloads_total": "SIGHUP reloads applied.",
    "weir_config_reload_failures_total": "SIGHUP reloads refused (bad file, or a change that needs a restart).",
]
