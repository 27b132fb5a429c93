import ArgumentParser
import FoundationEssentials
import Glibc
import WeirCore
import WeirSystem

/// istio-iptables' flags, with istio's letters, long names and environment variables. Every option collects each
/// occurrence so a flag given twice with different values is refused rather than silently overridden.
struct CaptureOptions: ParsableArguments {
    @Option(name: [.customShort("p"), .customLong("envoy-port"), .customLong("proxy-port")],
            help: "Port outbound TCP is redirected to. Env ENVOY_PORT. (default: 15001)")
    var proxyPort: [String] = []

    @Option(name: [.customShort("z"), .customLong("inbound-capture-port")],
            help: "Port inbound TCP is redirected to. Env INBOUND_CAPTURE_PORT. (default: 15006)")
    var inboundCapturePort: [String] = []

    @Option(name: [.customShort("e"), .customLong("inbound-tunnel-port")],
            help: "Inbound tunnel port, not captured in REDIRECT mode. Env INBOUND_TUNNEL_PORT. (default: 15008)")
    var inboundTunnelPort: [String] = []

    @Option(name: [.customShort("u"), .customLong("proxy-uid")],
            help: "UIDs (comma list) whose traffic is never captured. Env PROXY_UID. (default: 1337)")
    var proxyUID: [String] = []

    @Option(name: [.customShort("g"), .customLong("proxy-gid")],
            help: "GIDs (comma list) whose traffic is never captured. Env PROXY_GID. (default: the -u list)")
    var proxyGID: [String] = []

    @Option(name: [.customShort("m"), .customLong("istio-inbound-interception-mode"), .customLong("mode")],
            help: "Inbound capture mode: REDIRECT or TPROXY. Env ISTIO_INBOUND_INTERCEPTION_MODE. (default: REDIRECT)")
    var mode: [String] = []

    @Option(name: [.customShort("t"), .customLong("istio-inbound-tproxy-mark"), .customLong("tproxy-mark")],
            help: "TPROXY packet mark. Env ISTIO_INBOUND_TPROXY_MARK. (default: 1337)")
    var tproxyMark: [String] = []

    @Option(name: [.customShort("r"), .customLong("istio-inbound-tproxy-route-table")],
            help: "TPROXY routing table. Env ISTIO_INBOUND_TPROXY_ROUTE_TABLE. (default: 133)")
    var tproxyRouteTable: [String] = []

    @Option(name: [.customShort("b"), .customLong("istio-inbound-ports")],
            help: "Inbound ports to capture: '*' or a comma list; empty captures none. Env ISTIO_INBOUND_PORTS.")
    var inboundPorts: [String] = []

    @Option(name: [.customShort("d"), .customLong("istio-local-exclude-ports")],
            help: "Inbound ports never captured; only used with -b '*'. Env ISTIO_LOCAL_EXCLUDE_PORTS.")
    var inboundPortsExclude: [String] = []

    @Option(name: [.customShort("o"), .customLong("istio-local-outbound-ports-exclude")],
            help: "Outbound ports never captured, TCP and UDP. Env ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE.")
    var outboundPortsExclude: [String] = []

    @Option(name: [.customShort("q"), .customLong("istio-outbound-ports")],
            help: "Outbound TCP ports always captured (unless -x excludes the address). Env ISTIO_OUTBOUND_PORTS.")
    var outboundPortsInclude: [String] = []

    @Option(name: [.customShort("i"), .customLong("istio-service-cidr")],
            help: "Outbound CIDRs to capture: '*' or a comma list; empty captures none. Env ISTIO_SERVICE_CIDR.")
    var outboundIncludeCIDRs: [String] = []

    @Option(name: [.customShort("x"), .customLong("istio-service-exclude-cidr")],
            help: "Outbound CIDRs never captured; wins over -i and -q. Env ISTIO_SERVICE_EXCLUDE_CIDR.")
    var outboundExcludeCIDRs: [String] = []

    @Option(name: [.customShort("k"), .customLong("kube-virt-interfaces")],
            help: "Interfaces whose inbound traffic is treated as outbound. Env KUBE_VIRT_INTERFACES.")
    var virtualInterfaces: [String] = []

    @Option(name: [.customShort("c"), .customLong("istio-exclude-interfaces")],
            help: "Interfaces never captured. Env ISTIO_EXCLUDE_INTERFACES.")
    var excludeInterfaces: [String] = []

    @Option(name: .customLong("outbound-owner-groups"),
            help: "Only capture outbound traffic of these groups (names or GIDs, '*' for all). Env ISTIO_OUTBOUND_OWNER_GROUPS.")
    var ownerGroupsInclude: [String] = []

    @Option(name: .customLong("outbound-owner-groups-exclude"),
            help: "Never capture outbound traffic of these groups. Env ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE.")
    var ownerGroupsExclude: [String] = []

    @Option(name: .customLong("outbound-ipv4-loopback-cidr"),
            help: "IPv4 loopback range never captured. Env ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR. (default: 127.0.0.1/32)")
    var ipv4LoopbackCIDR: [String] = []

    @Flag(name: .customLong("drop-invalid"), inversion: .prefixedNo,
          help: "Drop TCP packets in conntrack state INVALID. Env INVALID_DROP, DROP_INVALID.")
    var dropInvalid: Bool?

    @Flag(name: .customLong("redirect-dns"), inversion: .prefixedNo, help: """
        Capture DNS (TCP and UDP port 53) to the DNS servers and send it to --dns-proxy-port. \
        Env ISTIO_META_DNS_CAPTURE, REDIRECT_DNS.
        """)
    var redirectDNS: Bool?

    @Flag(name: .customLong("capture-all-dns"), inversion: .prefixedNo,
          help: "With --redirect-dns: capture DNS to every address, not only the DNS servers. Env CAPTURE_ALL_DNS.")
    var captureAllDNS: Bool?

    @Option(name: .customLong("dns-servers"), help: """
        DNS servers to capture (comma list; default: the nameserver lines of /etc/resolv.conf, as istio reads them). \
        Env WEIR_DNS_SERVERS.
        """)
    var dnsServers: [String] = []

    @Option(name: .customLong("dns-proxy-port"),
            help: "Port DNS is redirected to (istio's agent DNS port). Env WEIR_DNS_PROXY_PORT. (default: 15053)")
    var dnsProxyPort: [String] = []

    @Flag(name: .customLong("dual-stack"), inversion: .prefixedNo, help: """
        Accepted for istio: weir captures IPv4 and IPv6 unless --ipv4-only. Env ISTIO_DUAL_STACK, DUAL_STACK.
        """)
    var dualStack: Bool?

    @Flag(name: .customLong("ipv4-only"), help: "Capture IPv4 only (an 'ip' table); IPv6 is then not captured.")
    var ipv4Only = false

    @Option(name: .customLong("network-namespace"), help: """
        Act inside this network namespace (/var/run/netns/NAME or /proc/PID/ns/net) instead of weir's own. \
        Env NETWORK_NAMESPACE.
        """)
    var networkNamespace: [String] = []

    /// Values by istio long name, for `CaptureConfig.parse`.
    var flagValues: [String: [String]] {
        let pairs: [(CaptureFlag, [String])] = [
            (.proxyPort, proxyPort), (.inboundCapturePort, inboundCapturePort), (.inboundTunnelPort, inboundTunnelPort),
            (.proxyUID, proxyUID), (.proxyGID, proxyGID), (.mode, mode), (.tproxyMark, tproxyMark),
            (.tproxyRouteTable, tproxyRouteTable), (.inboundPorts, inboundPorts),
            (.inboundPortsExclude, inboundPortsExclude), (.outboundPortsExclude, outboundPortsExclude),
            (.outboundPortsInclude, outboundPortsInclude), (.outboundIncludeCIDRs, outboundIncludeCIDRs),
            (.outboundExcludeCIDRs, outboundExcludeCIDRs), (.virtualInterfaces, virtualInterfaces),
            (.excludeInterfaces, excludeInterfaces), (.ownerGroupsInclude, ownerGroupsInclude),
            (.ownerGroupsExclude, ownerGroupsExclude), (.ipv4LoopbackCIDR, ipv4LoopbackCIDR),
            (.dnsServers, dnsServers), (.dnsProxyPort, dnsProxyPort), (.networkNamespace, networkNamespace),
        ]
        return flagDictionary(pairs, [(.dropInvalid, dropInvalid), (.redirectDNS, redirectDNS),
                                      (.captureAllDNS, captureAllDNS), (.dualStack, dualStack)])
    }

    /// The process environment with `--config` file values laid over it, and how messages name each variable.
    func environment(file: ConfigFile?) -> (values: [String: String], source: (String) -> String) {
        var environment = ProcessInfo.processInfo.environment
        let fromFile = Set(file?.values.keys.filter { CaptureFlag.environmentNames.contains($0) } ?? [])
        for key in fromFile { environment[key] = file!.values[key] }
        return (environment, { key in fromFile.contains(key) ? file!.source(key) : key })
    }

    /// Parses and validates everything; throws `ConfigError` (exit 2) before anything touches the system.
    /// `file` values (`weir run --config`) stand in for flags not given and beat the process environment.
    func config(file: ConfigFile? = nil, flags extra: [String: [String]] = [:]) throws -> CaptureConfig {
        let (environment, source) = self.environment(file: file)
        return try CaptureConfig.parse(
            flags: flagValues.merging(extra) { $1 },
            environment: environment,
            environmentSource: source,
            ipv4Only: try ipv4Only || (file?.bool("WEIR_IPV4_ONLY") ?? false),
            readFile: { path in
                readSmallFile(path, limit: CaptureConfig.listFileLimit).map { String(decoding: $0, as: UTF8.self) }
                    .mapError { ReadFailure($0, limit: CaptureConfig.listFileLimit) }
            },
            resolveGroup: { name in getgrnam(name).map { $0.pointee.gr_gid } },
            resolveUser: { name in getpwnam(name).map { $0.pointee.pw_uid } }
        )
    }
}

/// Values by istio long name, as `CaptureConfig.parse` and `CaptureInvocation.parse` take them: the options given,
/// and each boolean given either way (`--x` or `--no-x`) as "true" or "false".
func flagDictionary(_ values: [(CaptureFlag, [String])], _ bools: [(CaptureFlag, Bool?)]) -> [String: [String]] {
    var out: [String: [String]] = [:]
    for (flag, v) in values where !v.isEmpty { out[flag.long] = v }
    for (flag, value) in bools { if let value { out[flag.long] = [String(value)] } }
    return out
}

extension ReadFailure {
    /// The capture parser's wording of why `readSmallFile` refused a list file or /etc/resolv.conf.
    init(_ problem: FileProblem, limit: Int) {
        switch problem {
        case .missing: self = .missing
        case .directory: self = .directory
        case .notRegular: self = .other("not a regular file")
        case .unreadable(let e) where e == EACCES: self = .permission
        case .unreadable(let e): self = .other(String(cString: strerror(e)))
        case .tooLarge: self = .tooLarge(limit: limit)
        }
    }
}
