/// The node's control path, kept out of outbound capture by default so that a node whose weir is down (crash-looping,
/// or a bad image) can still reach what repairs it: the Kubernetes API server, the image registry and its DNS.
///
/// Exclusion is by destination address (all ports, added to `-x`) and, for the registry, by destination port (added
/// to `-o`): those are the two outbound exclusions the capture ruleset has. An API server or DNS address is
/// therefore never captured on any port; both serve nothing else in practice.
public struct ControlPath: Hashable, Sendable {
    /// `KUBERNETES_SERVICE_HOST` (the address the pod sees) and `WEIR_API_SERVERS` (e.g. the kubeconfig's real
    /// endpoint, which the kubelet dials directly and kube-proxy's DNAT turns the service address into).
    public var apiServers: [IPAddress] = []
    /// `WEIR_REGISTRY_CIDRS`: where the node's runtime pulls images from. Empty by default (see docs/kubernetes.md).
    public var registryCIDRs: [CIDR] = []
    /// `WEIR_REGISTRY_PORTS`: registry ports never captured, on any address. Empty by default.
    public var registryPorts: [UInt16] = []
    /// The `nameserver` lines of the node's resolv.conf.
    public var dnsServers: [IPAddress] = []

    public init(apiServers: [IPAddress] = [], registryCIDRs: [CIDR] = [], registryPorts: [UInt16] = [],
                dnsServers: [IPAddress] = []) {
        self.apiServers = apiServers
        self.registryCIDRs = registryCIDRs
        self.registryPorts = registryPorts
        self.dnsServers = dnsServers
    }

    /// Every prefix this control path keeps out of outbound capture: hosts for the API servers and DNS servers, the
    /// registry's CIDRs as given. Sorted, without duplicates.
    public var excludedCIDRs: [CIDR] {
        let hosts = (apiServers + dnsServers).map { CIDR(address: $0, prefixLength: $0.family.byteCount * 8) }
        return Array(Set(hosts + registryCIDRs)).sorted()
    }

    /// `config` with this control path added to its outbound exclusions (`-x` and `-o`), sorted and de-duplicated as
    /// the parser leaves them. With `--ipv4-only`, IPv6 entries are left out (nothing of IPv6 is captured then).
    public func excluded(from config: CaptureConfig) -> CaptureConfig {
        var c = config
        let cidrs = excludedCIDRs.filter { !config.ipv4Only || $0.family == .ipv4 }
        c.outboundExcludeCIDRs = Array(Set(c.outboundExcludeCIDRs + cidrs)).sorted()
        c.outboundPortsExclude = Array(Set(c.outboundPortsExclude + registryPorts)).sorted()
        return c
    }

    /// A comma (or space) separated list setting, each entry parsed by `parse`; `source` names the setting in
    /// messages (`--api-servers`, `weir.conf:7 WEIR_API_SERVERS`).
    public static func list<T>(_ text: String, source: String, expected: String,
                               _ parse: (Substring) -> T?) throws -> [T] {
        var out: [T] = []
        for bytes in text.utf8.split(whereSeparator: { $0 == UInt8(ascii: ",") || ValueParser.isSpace($0) }) {
            let word = Substring(bytes)
            guard let v = parse(word) else {
                throw ConfigError("\(source) \(quotedValue(word)) is not \(expected)")
            }
            out.append(v)
        }
        return out
    }

    /// Parses the settings of the control path: nil texts are settings not given. `kubernetesHost` is the
    /// environment's `KUBERNETES_SERVICE_HOST` (absent outside Kubernetes); `resolvConf` the text of the node's
    /// resolv.conf with its path (nil when there is none).
    public static func parse(kubernetesHost: String?, apiServers: (text: String, source: String)?,
                             registryCIDRs: (text: String, source: String)?,
                             registryPorts: (text: String, source: String)?,
                             resolvConf: (text: String, path: String)?) throws -> ControlPath {
        var path = ControlPath()
        if let host = kubernetesHost, !host.isEmpty {
            guard let a = IPAddress(host) else {
                throw ConfigError("KUBERNETES_SERVICE_HOST (environment) \(quotedValue(host)) is not an IP address: "
                    + "expected the API server's service address, e.g. 10.96.0.1")
            }
            path.apiServers.append(a)
        }
        if let (text, source) = apiServers {
            path.apiServers += try list(text, source: source, expected: "an IP address: expected e.g. "
                                        + "192.0.2.10,2001:db8::10") { IPAddress($0) }
        }
        if let (text, source) = registryCIDRs {
            path.registryCIDRs = try list(text, source: source, expected: "a CIDR: expected e.g. "
                                          + "192.0.2.0/24,2001:db8::/64") { try? CIDR.parse($0).get() }
        }
        if let (text, source) = registryPorts {
            path.registryPorts = try list(text, source: source, expected: "a port: expected 1 to 65535, e.g. 5000") {
                ValueKinds.port.value($0)
            }
        }
        if let (text, file) = resolvConf {
            path.dnsServers = try CaptureConfig.resolvConfServers(text, path: file)
        }
        var seen = Set<IPAddress>()
        path.apiServers = path.apiServers.filter { seen.insert($0).inserted }
        return path
    }
}
