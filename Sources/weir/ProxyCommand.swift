import ArgumentParser
import WeirCore
import WeirProxy
import WeirTuning

/// The proxy's own limits and workers, shared by `weir proxy` and `weir run`.
struct ProxyLimitOptions: ParsableArguments {
    @Option(name: .customLong("connect-timeout"),
            help: "Upstream connect timeout; the client is reset when it expires (default 5s).")
    var connectTimeout: String?
    @Option(name: .customLong("idle-timeout"), help: """
        Close connections idle this long (default 1h). 0 turns it off: dangerous, as peers that vanish without a \
        FIN or RST then hold two sockets and a connection slot forever, until --max-connections is exhausted.
        """)
    var idleTimeout: String?
    @Option(name: .customLong("max-connections"),
            help: "Ceiling of open proxied connections; past it new ones are reset at once (default 10000).")
    var maxConnections: String?
    @Option(name: .customLong("buffer-limit"),
            help: "Bytes held in flight per direction of a connection: pipe or copy buffer (default 64KiB).")
    var bufferLimit: String?
    @Option(name: .customLong("drain-timeout"),
            help: "After SIGTERM, time open connections get to finish before they are closed (default 20s).")
    var drainTimeout: String?
    @Flag(name: .customLong("no-splice"),
          help: "Move bytes with the bounded copy only, never splice (for kernels or sockets where splice misbehaves).")
    var noSplice = false
    @Option(name: .customLong("workers"),
            help: "Worker threads; 0 = one per CPU weir may use (cgroup quota and cpuset, not the host count).")
    var workers: String?

    /// Validates the proxy flags. `workers` 0 becomes the CPUs this process may really use: the smallest of the
    /// scheduler affinity and the cgroup CPU budget (quota and cpuset, v1 or v2).
    func config(_ base: ProxyConfig.Flags) throws -> ProxyConfig {
        var flags = base
        flags.connectTimeout = connectTimeout
        flags.idleTimeout = idleTimeout
        flags.maxConnections = maxConnections
        flags.bufferLimit = bufferLimit
        flags.drainTimeout = drainTimeout
        flags.workers = workers
        var config = try ProxyConfig.parse(flags)
        config.splice = !noSplice
        if config.workers == 0 {
            config.workers = max(1, min(usableCPUs(), CPUBudget.current().usable))
        }
        return config
    }
}

struct ProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Run the transparent proxy (data plane) on the capture ports.",
        discussion: """
        Forwards every captured TCP connection to its original destination. Outbound upstream sockets are owned by \
        the proxy UID/GID so the owner-match capture rules let them out; inbound hand-off comes from 127.0.0.6/::6 \
        (REDIRECT) or from the client's own address (TPROXY). Run it as root, or as the proxy user with ambient \
        CAP_NET_ADMIN and CAP_NET_RAW. SIGTERM stops accepting and drains open connections.
        """
    )

    @Option(name: [.customShort("p"), .customLong("proxy-port"), .customLong("envoy-port")],
            help: "Outbound capture port (default 15001).")
    var proxyPort: String?
    @Option(name: [.customShort("z"), .customLong("inbound-capture-port")],
            help: "Inbound capture port (default 15006).")
    var inboundCapturePort: String?
    @Option(name: [.customShort("m"), .customLong("mode"), .customLong("istio-inbound-interception-mode")],
            help: "Inbound interception: REDIRECT or TPROXY (default REDIRECT).")
    var mode: String?
    @Option(name: [.customShort("u"), .customLong("proxy-uid")], help: "UID owning upstream sockets (default 1337).")
    var proxyUID: String?
    @Option(name: [.customShort("g"), .customLong("proxy-gid")], help: "GID owning upstream sockets (default 1337).")
    var proxyGID: String?
    @Option(name: [.customShort("t"), .customLong("tproxy-mark"), .customLong("istio-inbound-tproxy-mark")],
            help: "Mark of TPROXY upstream sockets (default 1337).")
    var tproxyMark: String?
    @OptionGroup var limits: ProxyLimitOptions

    func run() throws {
        var flags = ProxyConfig.Flags()
        flags.proxyPort = proxyPort
        flags.inboundCapturePort = inboundCapturePort
        flags.mode = mode
        flags.proxyUID = proxyUID
        flags.proxyGID = proxyGID
        flags.tproxyMark = tproxyMark
        let config = try limits.config(flags)
        do {
            try ProxyServer(config: config).run()
        } catch let error as ProxyStartError {
            throw RuntimeFailure(message: "proxy: \(error.description)")
        }
    }
}
