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

    public init(capture: CaptureConfig, proxy: ProxyConfig, adminHost: String, adminPort: UInt16,
                profile: String? = nil, tuning: (tuner: Tuner, plan: TunePlan)? = nil,
                reconcileIntervalMs: Int64 = 10_000, cleanupOnExit: Bool = false, configPath: String? = nil) {
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
    }

    /// Settings a reload cannot change in place, by name, when `other` changes them: the proxy's listeners and
    /// identity (ports, mode, UID/GID, mark, limits), the admin address and the profile need a restart. Changing
    /// the capture ports without the listeners would redirect traffic to ports nobody listens on.
    public func needsRestart(_ other: AgentSettings) -> [String] {
        var out: [String] = []
        let (a, b) = (proxy, other.proxy)
        if a.proxyPort != b.proxyPort { out.append("ENVOY_PORT") }
        if a.inboundCapturePort != b.inboundCapturePort { out.append("INBOUND_CAPTURE_PORT") }
        if a.mode != b.mode { out.append("ISTIO_INBOUND_INTERCEPTION_MODE") }
        if a.proxyUID != b.proxyUID { out.append("PROXY_UID") }
        if a.proxyGID != b.proxyGID { out.append("PROXY_GID") }
        if a.tproxyMark != b.tproxyMark { out.append("ISTIO_INBOUND_TPROXY_MARK") }
        if a.connectTimeoutMs != b.connectTimeoutMs { out.append("WEIR_CONNECT_TIMEOUT") }
        if a.idleTimeoutMs != b.idleTimeoutMs { out.append("WEIR_IDLE_TIMEOUT") }
        if a.maxConnections != b.maxConnections { out.append("WEIR_MAX_CONNECTIONS") }
        if a.bufferLimit != b.bufferLimit { out.append("WEIR_BUFFER_LIMIT") }
        if a.drainTimeoutMs != b.drainTimeoutMs { out.append("WEIR_DRAIN_TIMEOUT") }
        if a.workers != b.workers { out.append("WEIR_WORKERS") }
        if adminHost != other.adminHost || adminPort != other.adminPort { out.append("WEIR_ADMIN_ADDRESS") }
        if profile != other.profile { out.append("WEIR_PROFILE") }
        return out
    }

    /// The `agent` part of `GET /config`.
    var agentJSON: [(String, JSONValue)] {
        [("admin_address", .string(adminHost.contains(":") ? "[\(adminHost)]:\(adminPort)" : "\(adminHost):\(adminPort)")),
         ("profile", profile.map { .string($0) } ?? .null),
         ("reconcile_interval_ms", .int(reconcileIntervalMs)),
         ("cleanup_on_exit", .bool(cleanupOnExit)),
         ("config_file", configPath.map { .string($0) } ?? .null),
         ("table", .string("\(table.family.rawValue) \(table.name)"))]
    }
}
