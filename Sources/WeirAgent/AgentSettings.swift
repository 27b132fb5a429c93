import WeirCore
import WeirTuning

/// Everything `weir run` was told, validated: what the agent applies at start and compares at reload.
public struct AgentSettings {
    public var capture: CaptureConfig
    /// The capture table built from `capture`.
    public var table: Table
    public var proxy: ProxyConfig
    public var adminHost: String
    public var adminPort: UInt16
    /// Profile to apply at start, with the tuner that applies it (state directory, sysctl root).
    public var profile: String?
    public var tuning: (tuner: Tuner, plan: TunePlan)?
    public var reconcileIntervalMs: Int64
    public var cleanupOnExit: Bool
    /// `--config FILE`, re-read on SIGHUP.
    public var configPath: String?
    /// `--network-namespace`: the data plane (lock, listeners, capture) lives in this namespace; the admin endpoint
    /// stays in the namespace weir was started in.
    public var networkNamespace: String?
    /// `--metrics-address` (and the bearer token of `--metrics-token-file`): /metrics on a port of its own.
    public var metrics: (host: String, port: UInt16, token: String?)?
    /// `--pod-mode`: serve every pod the CNI plugin attaches (nil: host mode only).
    public var pods: PodSettings?
    /// `--run-dir`: locks, the successor's socket, pod mode's socket and registry.
    public var runDirectory = "/run/weir"
    /// `--takeover`: replace the agent running with the same run directory, without a gap.
    public var takeover = false

    /// Whether the agent captures and serves its own namespace: always in host mode, with `--capture-node` in pod
    /// mode.
    public var capturesNode: Bool { pods?.captureNode ?? true }

    public init(capture: CaptureConfig, proxy: ProxyConfig, adminHost: String, adminPort: UInt16,
                profile: String? = nil, tuning: (tuner: Tuner, plan: TunePlan)? = nil,
                reconcileIntervalMs: Int64 = 10_000, cleanupOnExit: Bool = false, configPath: String? = nil,
                networkNamespace: String? = nil, metrics: (host: String, port: UInt16, token: String?)? = nil) {
        self.metrics = metrics
        self.capture = capture
        self.table = CaptureRuleset.build(capture)
        self.proxy = proxy
        self.adminHost = adminHost
        self.adminPort = adminPort
        self.profile = profile
        self.tuning = tuning
        self.reconcileIntervalMs = reconcileIntervalMs
        self.cleanupOnExit = cleanupOnExit
        self.configPath = configPath
        self.networkNamespace = networkNamespace
    }

    /// Settings a reload cannot change in place, by name, when `other` changes them: the admin address (probes and
    /// scrapes would lose it) and the profile (tuning is applied and reverted as a whole at start and with
    /// `weir tune`). Everything else is applied by a reload: capture rules in one batch, proxy settings by a new data
    /// plane that takes over the capture ports while the old one finishes its connections.
    public func needsRestart(_ other: AgentSettings) -> [String] {
        var out: [String] = []
        if adminHost != other.adminHost || adminPort != other.adminPort { out.append("WEIR_ADMIN_ADDRESS") }
        if profile != other.profile { out.append("WEIR_PROFILE") }
        if networkNamespace != other.networkNamespace { out.append("NETWORK_NAMESPACE") }
        if metrics?.host != other.metrics?.host || metrics?.port != other.metrics?.port {
            out.append("WEIR_METRICS_ADDRESS")
        }
        if metrics?.token != other.metrics?.token { out.append("WEIR_METRICS_TOKEN_FILE") }
        if pods != other.pods { out.append("WEIR_POD_MODE") }
        if runDirectory != other.runDirectory { out.append("WEIR_RUN_DIR") }
        return out
    }

    /// The `agent` part of `GET /config`.
    var agentJSON: [(String, JSONValue)] {
        let admin = adminHost.contains(":") ? "[\(adminHost)]:\(adminPort)" : "\(adminHost):\(adminPort)"
        return [("admin_address", .string(admin)),
                ("profile", profile.map { .string($0) } ?? .null),
                ("reconcile_interval_ms", .int(reconcileIntervalMs)),
                ("cleanup_on_exit", .bool(cleanupOnExit)),
                ("config_file", configPath.map { .string($0) } ?? .null),
                ("network_namespace", networkNamespace.map { .string($0) } ?? .null),
                ("metrics_address", metrics.map { .string($0.host.contains(":") ? "[\($0.host)]:\($0.port)"
                                                                                 : "\($0.host):\($0.port)") } ?? .null),
                ("metrics_token", .bool(metrics?.token != nil)),
                ("pod_mode", .bool(pods != nil)),
                ("run_dir", .string(runDirectory)),
                ("capture_node", .bool(capturesNode)),
                ("max_connections_per_pod", .int(Int64(pods?.maxConnectionsPerPod ?? 0))),
                ("max_connection_rate_per_pod", .int(Int64(pods?.maxConnectionRatePerPod ?? 0))),
                ("table", .string("\(table.family.rawValue) \(table.name)"))]
    }
}
