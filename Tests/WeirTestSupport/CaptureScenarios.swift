import WeirCore

/// One capture scenario: istio-iptables flags and variables, shared by the golden-text tests and the kernel tests.
public struct CaptureScenario: Sendable {
    public let name: String
    /// Flags by long name, as `weir rules` receives them.
    public let flags: [String: [String]]
    public let environment: [String: String]
    public let ipv4Only: Bool
    /// The istio reference golden this scenario reproduces, if any.
    public let istioCase: String?

    public init(_ name: String, _ flags: [String: [String]] = [:], env: [String: String] = [:], ipv4Only: Bool = false,
                istio: String? = nil) {
        self.name = name
        self.flags = flags
        self.environment = env
        self.ipv4Only = ipv4Only
        self.istioCase = istio
    }

    /// Command-line arguments for `weir rules`.
    public var arguments: [String] {
        var out: [String] = []
        let booleans: Set = ["drop-invalid", "redirect-dns", "capture-all-dns"]
        for key in flags.keys.sorted() {
            for v in flags[key]! {
                if booleans.contains(key) { out.append("--\(key)=\(v)"); continue }
                out += ["--\(key)", v]
            }
        }
        if ipv4Only { out.append("--ipv4-only") }
        return out
    }

    /// Group names used by the scenarios, resolved the same on every Debian machine.
    public static func resolveGroup(_ name: String) -> UInt32? {
        ["daemon": 1, "mail": 8][name]
    }

    public func config() throws -> CaptureConfig {
        try CaptureConfig.parse(flags: flags, environment: environment, ipv4Only: ipv4Only,
                                resolveGroup: CaptureScenario.resolveGroup)
    }
}

/// Every istio reference case, plus weir's own. DNS servers are given with --dns-servers (as istio's tests set them
/// in place of /etc/resolv.conf); `--dns-servers ''` is istio's "no DNS servers known". Istio's group names `java` and `ftp` do not exist
/// on Debian, so `daemon` (GID 1) and `mail` (GID 8) stand in for them.
public let captureScenarios: [CaptureScenario] = [
    CaptureScenario("empty", istio: "empty"),
    CaptureScenario("inbound-ports-include", ["istio-inbound-ports": ["32000,31000"]], istio: "inbound-ports-include"),
    CaptureScenario("inbound-ports-wildcard", ["istio-inbound-ports": ["*"]], istio: "inbound-ports-wildcard"),
    CaptureScenario("inbound-ports-tproxy", ["istio-inbound-ports": ["32000,31000"],
                                             "istio-inbound-interception-mode": ["TPROXY"]],
                    istio: "inbound-ports-tproxy"),
    CaptureScenario("inbound-ports-wildcard-tproxy", ["istio-inbound-ports": ["*"],
                                                      "istio-inbound-interception-mode": ["TPROXY"]],
                    istio: "inbound-ports-wildcard-tproxy"),
    CaptureScenario("inbound-ports-empty-tproxy", ["istio-inbound-ports": [""],
                                                   "istio-inbound-interception-mode": ["TPROXY"]],
                    istio: "inbound-ports-empty-tproxy"),
    CaptureScenario("ipnets", ["istio-service-cidr": ["198.18.0.0/16"]], istio: "ipnets"),
    CaptureScenario("kube-virt-interfaces", ["kube-virt-interfaces": ["eth1,eth2"], "istio-service-cidr": ["*"]],
                    istio: "kube-virt-interfaces"),
    CaptureScenario("ipnets-with-kube-virt-interfaces", ["kube-virt-interfaces": ["eth1,eth2"],
                                                         "istio-service-cidr": ["198.18.0.0/16"]],
                    istio: "ipnets-with-kube-virt-interfaces"),
    CaptureScenario("outbound-ports-include", ["istio-outbound-ports": ["32000,31000"]], istio: "outbound-ports-include"),
    CaptureScenario("basic-exclude-nic", ["istio-exclude-interfaces": ["not-istio-nic"]], istio: "basic-exclude-nic"),
    CaptureScenario("drop-invalid", ["drop-invalid": ["true"]], istio: "drop-invalid"),
    CaptureScenario("host-ipv4-loopback-cidr", env: ["ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR": "127.0.0.1/8"],
                    istio: "host-ipv4-loopback-cidr"),
    CaptureScenario("outbound-owner-groups", env: ["ISTIO_OUTBOUND_OWNER_GROUPS": "daemon,202"],
                    istio: "outbound-owner-groups"),
    CaptureScenario("outbound-owner-groups-exclude", env: ["ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE": "888,mail"],
                    istio: "outbound-owner-groups-exclude"),
    CaptureScenario("ipv6-empty-inbound-ports", istio: "ipv6-empty-inbound-ports"),
    CaptureScenario("ipv6-inbound-ports", ["istio-inbound-ports": ["4000,5000"]], istio: "ipv6-inbound-ports"),
    CaptureScenario("ipv6-virt-interfaces", ["istio-inbound-ports": ["4000,5000"], "kube-virt-interfaces": ["eth0,eth1"]],
                    istio: "ipv6-virt-interfaces"),
    CaptureScenario("ipv6-ipnets", ["istio-inbound-ports": ["4000,5000"], "istio-local-exclude-ports": ["6000,7000"],
                                    "kube-virt-interfaces": ["eth0,eth1"],
                                    "istio-service-exclude-cidr": ["2001:db8::/32"],
                                    "istio-service-cidr": ["2001:db8::/32"]],
                    istio: "ipv6-ipnets"),
    CaptureScenario("ipv6-uid-gid", ["istio-inbound-ports": ["4000,5000"], "istio-local-exclude-ports": ["6000,7000"],
                                     "kube-virt-interfaces": ["eth0,eth1"], "proxy-uid": ["3,4"], "proxy-gid": ["1,2"],
                                     "istio-service-exclude-cidr": ["2001:db8::/32"],
                                     "istio-service-cidr": ["2001:db8::/32"]],
                    istio: "ipv6-uid-gid"),
    CaptureScenario("ipv6-outbound-ports", ["istio-outbound-ports": ["32000,31000"]], istio: "ipv6-outbound-ports"),
    CaptureScenario("ip-range", ["istio-service-exclude-cidr": ["198.18.1.0/24"], "istio-service-cidr": ["198.18.0.0/16"],
                                 "proxy-uid": ["3,4"], "proxy-gid": ["1,2"], "redirect-dns": ["true"],
                                 "dns-servers": ["127.0.0.53"]], ipv4Only: true, istio: "ip-range"),
    CaptureScenario("tproxy", ["istio-inbound-interception-mode": ["TPROXY"], "istio-inbound-ports": ["*"],
                               "istio-service-exclude-cidr": ["198.18.1.0/24"], "istio-service-cidr": ["198.18.0.0/16"],
                               "istio-exclude-interfaces": ["not-istio-nic"], "redirect-dns": ["true"],
                               "dns-servers": ["127.0.0.53"]], istio: "tproxy"),
    CaptureScenario("loopback-outbound-iprange", ["istio-service-cidr": ["127.1.2.3/32"], "proxy-uid": ["3,4"],
                                                  "proxy-gid": ["1,2"], "redirect-dns": ["true"],
                                                  "dns-servers": ["127.0.0.53"]], ipv4Only: true,
                    istio: "loopback-outbound-iprange"),
    CaptureScenario("dns-uid-gid", ["proxy-uid": ["3,4"], "proxy-gid": ["1,2"], "redirect-dns": ["true"],
                                    "dns-servers": ["127.0.0.53,::127.0.0.53"]], istio: "dns-uid-gid"),
    CaptureScenario("ipv6-dns-uid-gid", ["proxy-uid": ["3,4"], "proxy-gid": ["1,2"], "redirect-dns": ["true"],
                                         "dns-servers": [""]], istio: "ipv6-dns-uid-gid"),
    CaptureScenario("ipv6-dns-outbound-owner-groups", ["redirect-dns": ["true"], "dns-servers": [""]],
                    env: ["ISTIO_OUTBOUND_OWNER_GROUPS": "daemon,202"], istio: "ipv6-dns-outbound-owner-groups"),
    CaptureScenario("ipv6-dns-outbound-owner-groups-exclude", ["redirect-dns": ["true"], "dns-servers": [""]],
                    env: ["ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE": "888,mail"],
                    istio: "ipv6-dns-outbound-owner-groups-exclude"),
    // weir's own scenarios.
    CaptureScenario("sidecar", ["istio-inbound-ports": ["*"], "istio-service-cidr": ["*"],
                                "istio-local-exclude-ports": ["15090,15021"]]),
    CaptureScenario("sidecar-tproxy", ["istio-inbound-ports": ["*"], "istio-service-cidr": ["*"],
                                       "istio-local-exclude-ports": ["15090,15021"],
                                       "istio-inbound-interception-mode": ["TPROXY"],
                                       "istio-exclude-interfaces": ["not-weir-nic"]]),
    CaptureScenario("outbound-lists", ["istio-service-cidr": ["198.18.0.0/15,2001:db8:1::/48"],
                                       "istio-service-exclude-cidr": ["198.18.5.0/24,198.18.6.0/24,2001:db8:1:2::/64"],
                                       "istio-local-outbound-ports-exclude": ["9090,53"],
                                       "istio-outbound-ports": ["7000"], "drop-invalid": ["true"]]),
    CaptureScenario("loopback-include", ["istio-service-cidr": ["127.1.2.3/32"], "proxy-uid": ["3,4"],
                                         "proxy-gid": ["1,2"]]),
    // Single addresses and prefixes in one list: the prefixes go to an interval set, the addresses to a set without
    // intervals, each with its rule.
    CaptureScenario("outbound-include-hosts", ["istio-service-cidr": ["198.18.0.2/32,198.18.1.1/32,2001:db8:1::/48,"
                                                                      + "2001:db8::2/128"],
                                               "kube-virt-interfaces": ["eth1"]]),
    CaptureScenario("outbound-exclude-hosts", ["istio-service-cidr": ["*"],
                                               "istio-service-exclude-cidr": ["198.18.1.2/32,198.18.5.0/24,"
                                                                              + "2001:db8::/126,2001:db8:5::1/128"]]),
    CaptureScenario("ipv4-only", ["istio-inbound-ports": ["*"], "istio-service-cidr": ["*"]], ipv4Only: true),
    CaptureScenario("ipv4-only-tproxy", ["istio-inbound-ports": ["8080"], "istio-service-cidr": ["*"],
                                         "istio-inbound-interception-mode": ["TPROXY"]], ipv4Only: true),
    CaptureScenario("dns-capture-all", ["redirect-dns": ["true"], "capture-all-dns": ["true"]]),
    CaptureScenario("dns-remote-servers", ["redirect-dns": ["true"], "dns-servers": ["198.18.0.2,2001:db8::2"],
                                           "istio-service-cidr": ["*"], "dns-proxy-port": ["15053"]]),
]
