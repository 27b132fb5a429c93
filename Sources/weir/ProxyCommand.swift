import ArgumentParser
import WeirAgent
import WeirCore
import WeirProxy
import WeirSystem
import WeirTuning

/// The proxy's own limits and workers, shared by `weir proxy` and `weir run`. Each option collects every occurrence,
/// so one given twice with different values is refused (`oneValue`) rather than the last silently winning.
struct ProxyLimitOptions: ParsableArguments {
    @Option(name: .customLong("connect-timeout"),
            help: "Upstream connect timeout; the client is reset when it expires (default 5s).")
    var connectTimeout: [String] = []
    @Option(name: .customLong("idle-timeout"), help: """
        Close connections idle this long (default 1h). 0 turns it off: dangerous, as peers that vanish without a \
        FIN or RST then hold two sockets and a connection slot forever, until --max-connections is exhausted.
        """)
    var idleTimeout: [String] = []
    @Option(name: .customLong("max-connections"),
            help: "Ceiling of open proxied connections; past it new ones are reset at once (default 10000).")
    var maxConnections: [String] = []
    @Option(name: .customLong("buffer-limit"),
            help: "Bytes held in flight per direction of a connection: pipe or copy buffer (default 64KiB).")
    var bufferLimit: [String] = []
    @Option(name: .customLong("drain-timeout"),
            help: "After SIGTERM, time open connections get to finish before they are closed (default 20s).")
    var drainTimeout: [String] = []
    @Flag(name: .customLong("no-splice"),
          help: "Move bytes with the bounded copy only, never splice (for kernels or sockets where splice misbehaves).")
    var noSplice = false
    @Option(name: .customLong("workers"),
            help: "Worker threads; 0 = one per CPU weir may use (cgroup quota and cpuset, not the host count).")
    var workers: [String] = []
    @Option(name: .customLong("tproxy-source-ports"), help: """
        TPROXY: where an inbound upstream connection (it keeps the client's address) takes its source port: auto \
        (default: the ports above this namespace's ip_local_port_range, where Linux clients never pick one; the \
        kernel's choice when fewer than 64 are left there), kernel, or LOW-HIGH. A port a client also uses toward \
        the same application would put two connections on one 4-tuple.
        """)
    var tproxySourcePorts: [String] = []

    /// Each limit: the values given and where the value goes (its flag and `--config` key follow from there).
    private var limits: [([String], WritableKeyPath<ProxyConfig.Flags, String?>)] {
        [(connectTimeout, \.connectTimeout), (idleTimeout, \.idleTimeout), (maxConnections, \.maxConnections),
         (bufferLimit, \.bufferLimit), (drainTimeout, \.drainTimeout), (workers, \.workers),
         (tproxySourcePorts, \.tproxySourcePorts)]
    }

    /// Validates the proxy limits over `base` (the proxy's own -p -z -m -u -g -t in `flags`, or the capture's values
    /// for `weir run`); a limit not given as a flag comes from `file` (`weir run --config`), and a bad value from the
    /// file is reported with the file, line and key. `workers` 0 becomes the CPUs this process may really use: the
    /// smallest of the scheduler affinity and the cgroup CPU budget (quota and cpuset, v1 or v2).
    func config(_ base: ProxyConfig, flags given: ProxyConfig.Flags = .init(), file: ConfigFile? = nil) throws
        -> ProxyConfig
    {
        var flags = given
        for (values, target) in limits {
            let flag = ProxyConfig.Flags.flagName(target)
            if let v = try oneValue(values, flag) {
                flags[keyPath: target] = v
            } else if let file, case let key = ConfigFile.key(forFlag: flag), let v = file.values[key] {
                flags[keyPath: target] = v
                flags.sources[target] = file.valueSource(key)
            }
        }
        var config = try ProxyConfig.parse(flags, base: base)
        config.splice = !noSplice
        if config.workers == 0 {
            config.workers = max(1, min(SystemInfo.usableCPUs, CPUBudget.current().usable))
        }
        return config
    }
}

/// `weir proxy`'s help for one of the capture's flags: what it is to the proxy, and the table's default.
private func proxyHelp(_ flag: CaptureFlag, _ summary: String, default: String? = nil) -> ArgumentHelp {
    ArgumentHelp("\(summary) (default \(`default` ?? flag.defaultText!)).")
}

struct ProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Run the transparent proxy (data plane) on the capture ports.",
        // Each option once: the same option twice with different values is refused.
        usage: """
            weir proxy [-p 15001] [-z 15006] [-m REDIRECT|TPROXY] [-u 1337] [-g 1337] [-t 1337]
                       [--connect-timeout 5s] [--idle-timeout 1h] [--max-connections 10000] [--buffer-limit 64KiB]
                       [--drain-timeout 20s] [--workers 0] [--no-splice]
            """,
        discussion: """
        Forwards every captured TCP connection to its original destination. Outbound upstream sockets are owned by \
        the proxy UID/GID so the owner-match capture rules let them out; inbound hand-off comes from 127.0.0.6/::6 \
        (REDIRECT) or from the client's own address (TPROXY). Run it as root, or as the proxy user with ambient \
        CAP_NET_ADMIN and CAP_NET_RAW. SIGTERM stops accepting and drains open connections.
        """
    )

    // The capture's letters and names, weir's names first; what each means here is the proxy's.
    @Option(name: CaptureFlag.proxyPort.names(weirFirst: true), help: proxyHelp(.proxyPort, "Outbound capture port"))
    var proxyPort: [String] = []
    @Option(name: CaptureFlag.inboundCapturePort.names(weirFirst: true),
            help: proxyHelp(.inboundCapturePort, "Inbound capture port"))
    var inboundCapturePort: [String] = []
    @Option(name: CaptureFlag.mode.names(weirFirst: true),
            help: proxyHelp(.mode, "Inbound interception: REDIRECT or TPROXY"))
    var mode: [String] = []
    @Option(name: CaptureFlag.proxyUID.names(weirFirst: true), help: proxyHelp(.proxyUID, "UID owning upstream sockets"))
    var proxyUID: [String] = []
    @Option(name: CaptureFlag.proxyGID.names(weirFirst: true),
            help: proxyHelp(.proxyGID, "GID owning upstream sockets", default: "1337"))
    var proxyGID: [String] = []
    @Option(name: CaptureFlag.tproxyMark.names(weirFirst: true),
            help: proxyHelp(.tproxyMark, "Mark of TPROXY upstream sockets, 1 to 4294967295"))
    var tproxyMark: [String] = []
    @OptionGroup var limits: ProxyLimitOptions

    func run() throws {
        var flags = ProxyConfig.Flags()
        let given: [(WritableKeyPath<ProxyConfig.Flags, String?>, [String])] = [
            (\.proxyPort, proxyPort), (\.inboundCapturePort, inboundCapturePort), (\.mode, mode),
            (\.proxyUID, proxyUID), (\.proxyGID, proxyGID), (\.tproxyMark, tproxyMark)]
        for (key, values) in given { flags[keyPath: key] = try oneValue(values, ProxyConfig.Flags.flagName(key)) }
        let config = try limits.config(ProxyConfig(), flags: flags)
        do {
            // The upstream conntrack entries a killed predecessor left connecting (weir's mark, SYN_SENT: see
            // UpstreamConntrack) go before anything is served.
            try ProxyServer(config: config).run { StaleConntrack.sweep() }
        } catch let error as ProxyStartError {
            throw RuntimeFailure(message: "proxy: \(error.description)")
        }
    }
}
