import Testing
import WeirCore
import WeirTestSupport

struct CaptureFlagsTests {
    func parse(_ flags: [String: [String]], env: [String: String] = [:],
               files: [String: String] = [:]) throws -> CaptureConfig {
        try CaptureConfig.parse(flags: flags, environment: env, readFile: { files[$0].map { .success($0) } ?? .failure(.missing) },
                                resolveGroup: { ["daemon": 1][$0] })
    }

    func error(_ flags: [String: [String]], env: [String: String] = [:]) -> String? {
        configError { _ = try parse(flags, env: env) }
    }

    @Test func istioDefaults() throws {
        let c = try parse([:])
        #expect(c.proxyPort == 15001 && c.inboundCapturePort == 15006 && c.inboundTunnelPort == 15008)
        #expect(c.proxyUIDs == [1337] && c.proxyGIDs == [1337] && c.mode == .redirect)
        #expect(c.tproxyMark == 1337 && c.tproxyRouteTable == 133)
        #expect(c.inboundPorts == .none && c.outboundIncludeCIDRs == .none)
    }

    @Test func flagBeatsEnvironment() throws {
        let c = try parse(["envoy-port": ["15101"]], env: ["ENVOY_PORT": "15201", "INBOUND_CAPTURE_PORT": "15206"])
        #expect(c.proxyPort == 15101)
        #expect(c.inboundCapturePort == 15206)
    }

    @Test func gidDefaultsToUIDList() throws {
        #expect(try parse(["proxy-uid": ["3,4"]]).proxyGIDs == [3, 4])
        #expect(try parse(["proxy-uid": ["3,4"], "proxy-gid": ["7"]]).proxyGIDs == [7])
    }

    @Test func listsAreSortedAndDeduplicated() throws {
        let c = try parse(["istio-inbound-ports": ["32000, 31000,32000"], "proxy-uid": ["4,3,4"]])
        #expect(c.inboundPorts == .list([31000, 32000]))
        #expect(c.proxyUIDs == [3, 4])
    }

    @Test func listFilesWithComments() throws {
        let c = try parse(["istio-service-exclude-cidr": ["@/x.txt,198.19.0.0/16"]],
                          files: ["/x.txt": "# exclusions\n198.18.0.0/24  # lab\n\n2001:db8::/32\r\n"])
        #expect(c.outboundExcludeCIDRs.map(\.description) == ["198.18.0.0/24", "198.19.0.0/16", "2001:db8::/32"])
    }

    @Test func ownerGroupsResolveNames() throws {
        #expect(try parse([:], env: ["ISTIO_OUTBOUND_OWNER_GROUPS": "daemon,202"]).ownerGroupsInclude == [1, 202])
        #expect(try parse([:], env: ["ISTIO_OUTBOUND_OWNER_GROUPS": "*"]).ownerGroupsInclude == nil)
    }

    @Test func loopbackCIDRAcceptsIstiosHostBits() throws {
        #expect(try parse([:], env: ["ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR": "127.0.0.1/8"]).ipv4LoopbackCIDR.description
            == "127.0.0.0/8")
    }

    static let badInputs: [([String: [String]], [String: String], String)] = [
        (["envoy-port": ["70000"]], [:], "-p '70000' is not a port: expected 1 to 65535"),
        (["envoy-port": ["http"]], [:], "-p 'http' is not a port"),
        (["istio-inbound-ports": ["80,0"]], [:], "-b '0' is not a port"),
        ([:], ["ENVOY_PORT": "-1"], "ENVOY_PORT '-1' is not a port"),
        (["istio-service-cidr": ["10.0.0.1/8"]], [:], "-i '10.0.0.1/8' has host bits set: expected 10.0.0.0/8"),
        (["istio-service-cidr": ["10.0.0.0/33"]], [:], "-i '10.0.0.0/33' has a bad prefix length: expected 0 to 32"),
        (["istio-service-exclude-cidr": ["banana"]], [:], "-x 'banana' is not an IP address or CIDR"),
        (["istio-service-exclude-cidr": ["2001:db8::1/32"]], [:], "-x '2001:db8::1/32' has host bits set"),
        (["istio-service-cidr": ["*,10.0.0.0/8"]], [:], "-i mixes '*' with other entries"),
        (["istio-inbound-ports": ["80,*"]], [:], "-b mixes '*' with other entries"),
        (["istio-service-exclude-cidr": ["*"]], [:], "-x does not take '*'"),
        (["proxy-uid": ["-5"]], [:], "-u '-5' is not a UID"),
        (["proxy-gid": ["istio"]], [:], "-g 'istio' is not a GID"),
        (["istio-inbound-interception-mode": ["TPROX"]], [:], "-m 'TPROX' is not a mode: expected REDIRECT or TPROXY"),
        (["kube-virt-interfaces": ["averyveryverylongname0"]], [:],
         "-k 'averyveryverylongname0' is 22 bytes long: expected an interface name of at most 15 bytes"),
        (["istio-exclude-interfaces": ["eth 0"]], [:], "-c 'eth 0' is not an interface name"),
        (["envoy-port": ["15001", "15002"]], [:], "-p given twice with different values '15001' and '15002'"),
        (["istio-inbound-tproxy-route-table": ["254"]], [:], "-r '254' is a reserved routing table"),
        ([:], ["ISTIO_OUTBOUND_OWNER_GROUPS": "nosuchgroup"],
         "ISTIO_OUTBOUND_OWNER_GROUPS 'nosuchgroup' is not a group on this host"),
        ([:], ["ISTIO_OUTBOUND_OWNER_GROUPS": "1", "ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE": "2"], "are both set"),
        (["istio-service-cidr": ["@/missing"]], [:], "-i list file '/missing' does not exist"),
        // Where a value came from is named: the variable, not the flag it stands for.
        ([:], ["ENVOY_PORT": "abc"], "ENVOY_PORT 'abc' is not a port"),
        (["outbound-owner-groups": ["nosuchgroup"]], [:], "--outbound-owner-groups 'nosuchgroup' is not a group"),
        (["outbound-owner-groups": ["1"]], ["ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE": "2"],
         "--outbound-owner-groups and ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE are both set"),
        // Control characters are escaped and long values bounded, so the message stays one line.
        (["istio-exclude-interfaces": ["a\nb"]], [:], "-c 'a\\nb' is not an interface name"),
        (["istio-service-cidr": ["10.0.0.0/8\u{0}"]], [:], "-i '10.0.0.0/8\\0' has a bad prefix length"),
        (["istio-exclude-interfaces": ["a:b"]], [:], "-c 'a:b' is not an interface name"),
        (["kube-virt-interfaces": ["e th"]], [:], "-k 'e th' is not an interface name"),
        // New istio flags.
        (["redirect-dns": ["maybe"]], [:], "--redirect-dns 'maybe' is not a boolean"),
        ([:], ["ISTIO_META_DNS_CAPTURE": "yes"], "ISTIO_META_DNS_CAPTURE 'yes' is not a boolean"),
        (["dns-servers": ["10.96.0.10,resolver"]], [:], "--dns-servers 'resolver' is not an IP address"),
        (["dns-proxy-port": ["0"]], [:], "--dns-proxy-port '0' is not a port"),
        (["dual-stack": ["true"]], [:], ""),
        ([:], ["ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR": "10.0.0.0/8"], "is not an IPv4 loopback range"),
        ([:], ["ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR": "127.0.0.0/7"], "is not an IPv4 loopback range"),

    ]

    @Test(arguments: badInputs.indices.filter { !badInputs[$0].2.isEmpty })
    func badInputNamesTheValueAndTheExpectation(_ i: Int) {
        let (flags, env, expected) = Self.badInputs[i]
        let message = error(flags, env: env)
        #expect(message?.contains(expected) == true, "got: \(message ?? "no error")")
        #expect(message?.contains("\n") == false)
    }

    @Test func sameValueTwiceIsFine() throws {
        #expect(try parse(["envoy-port": ["15001", "15001"]]).proxyPort == 15001)
    }

    @Test func listFilesNameTheFileAndLineOfABadEntry() {
        let message = configError {
            _ = try parse(["istio-service-cidr": ["@/l"]], files: ["/l": "10.0.0.0/8\r\n# c\r\nbanana\r\n"])
        }
        #expect(message == "-i @/l:3 'banana' is not an IP address or CIDR: expected e.g. 10.0.0.0/8 or 2001:db8::/32")
    }

    @Test func crlfAndLoneCRListFilesAreSplitIntoLines() throws {
        let c = try parse(["istio-service-cidr": ["@/l"]], files: ["/l": "10.0.0.0/8\r\n198.18.0.0/15\r172.16.0.0/12"])
        #expect(c.outboundIncludeCIDRs == .list(try ["10.0.0.0/8", "172.16.0.0/12", "198.18.0.0/15"].map {
            try CIDR.parse($0).get() }))
    }

    @Test func emptyListEntriesAreDropped() throws {
        #expect(try parse(["proxy-uid": ["1337,,1338,"]]).proxyUIDs == [1337, 1338])
    }

    @Test func modeIsCaseInsensitiveAndTrimmed() throws {
        #expect(try parse(["istio-inbound-interception-mode": ["tproxy "]]).mode == .tproxy)
        #expect(try parse(["envoy-port": [" 15101"]]).proxyPort == 15101)
    }

    @Test func dnsFlagsAndTheirVariables() throws {
        let c = try parse(["redirect-dns": ["true"], "dns-servers": ["10.96.0.10,2001:db8::53,10.96.0.10"]])
        #expect(c.redirectDNS && c.capturesDNS && !c.captureAllDNS)
        #expect(c.dnsServers.map(\.description) == ["10.96.0.10", "2001:db8::53"])
        // istio: ISTIO_META_DNS_CAPTURE (AdditionalEnv) beats REDIRECT_DNS; a flag beats both.
        #expect(try parse([:], env: ["REDIRECT_DNS": "false", "ISTIO_META_DNS_CAPTURE": "true",
                                     "WEIR_DNS_SERVERS": "10.0.0.1"]).redirectDNS)
        #expect(try parse(["redirect-dns": ["false"]], env: ["ISTIO_META_DNS_CAPTURE": "true"]).redirectDNS == false)
        #expect(try parse([:], env: ["DROP_INVALID": "1"]).dropInvalid)
        #expect(try parse([:], env: ["DROP_INVALID": "1", "INVALID_DROP": "false"]).dropInvalid == false)
        #expect(try parse([:], env: ["REDIRECT_DNS": "T", "CAPTURE_ALL_DNS": "1"]).capturesDNS)
        #expect(try parse(["dns-proxy-port": ["5353"]]).dnsProxyPort == 5353)
    }

    @Test func dnsServersComeFromResolvConfWhenNeeded() throws {
        let resolv = "# generated\nsearch svc.cluster.local\nnameserver 10.96.0.10\nnameserver fe80::1%eth0\noptions ndots:5\n"
        let c = try parse(["redirect-dns": ["true"]], files: ["/etc/resolv.conf": resolv])
        #expect(c.dnsServers.map(\.description) == ["10.96.0.10", "fe80::1"])
        // No servers known: istio turns DNS capture off.
        #expect(try parse(["redirect-dns": ["true"]], files: ["/etc/resolv.conf": "search x\n"]).capturesDNS == false)
        // Unreadable resolv.conf matters only when the servers are needed.
        #expect(error(["redirect-dns": ["true"]])?.hasPrefix("/etc/resolv.conf does not exist") == true)
        #expect(try parse(["redirect-dns": ["true"], "capture-all-dns": ["true"]]).capturesDNS)
        #expect(try parse([:]).dnsServers.isEmpty)
        #expect(configError { _ = try parse(["redirect-dns": ["true"]],
                                            files: ["/etc/resolv.conf": "nameserver bogus\n"]) }
            == "/etc/resolv.conf:1 nameserver 'bogus' is not an IP address: expected e.g. nameserver 10.96.0.10")
    }

    @Test func proxyUIDDefaultsToEnvoyUser() throws {
        let users = ["istio-proxy": UInt32(1500), "envoy": 1600]
        func parseUsers(_ env: [String: String]) throws -> CaptureConfig {
            try CaptureConfig.parse(flags: [:], environment: env, resolveUser: { users[$0] })
        }
        #expect(try parseUsers([:]).proxyUIDs == [1500])
        #expect(try parseUsers([:]).proxyGIDs == [1500])
        #expect(try parseUsers(["ENVOY_USER": "envoy"]).proxyUIDs == [1600])
        #expect(try parseUsers(["ENVOY_USER": "nobody-here"]).proxyUIDs == [1337])
    }

    @Test func dualStackIsAcceptedButContradictsIPv4Only() throws {
        #expect(try parse(["dual-stack": ["true"]]).dualStack)
        #expect(configError { _ = try CaptureConfig.parse(flags: ["dual-stack": ["true"]], ipv4Only: true) }?
            .hasPrefix("--dual-stack and --ipv4-only are both set") == true)
    }

    @Test func invocationFlagsAndVariables() throws {
        let i = try CaptureInvocation.parse(flags: ["run-validation": ["true"], "probe-timeout": ["1m30s"]],
                                            environment: ["IPTABLES_PROBE_PORT": "15102", "SKIP_RULE_APPLY": "1",
                                                          "NETWORK_NAMESPACE": "/var/run/netns/pod"])
        #expect(i.runValidation && i.skipRuleApply && i.probePort == 15102 && i.probeTimeoutMs == 90_000)
        #expect(i.networkNamespace == "/var/run/netns/pod")
        #expect(try CaptureInvocation.parse(flags: [:]).probeTimeoutMs == 5000)
        #expect(try CaptureInvocation.parse(flags: ["force-iptables-binary": ["nft"]]).forceIptablesBinary == "nft")
        let bad: [([String: [String]], [String: String], String)] = [
            (["probe-timeout": ["5"]], [:], "--probe-timeout '5' is not a duration"),
            ([:], ["PROBE_TIMEOUT": "-1s"], "PROBE_TIMEOUT '-1s' is not a duration"),
            (["iptables-probe-port": ["99999"]], [:], "--iptables-probe-port '99999' is not a port"),
            ([:], ["FORCE_IPTABLES_BINARY": "iptables-legacy"], "FORCE_IPTABLES_BINARY 'iptables-legacy' is not an"),
            (["network-namespace": ["pod"]], [:], "--network-namespace 'pod' is not a path"),
            ([:], ["CLEANUP_ONLY": "sure"], "CLEANUP_ONLY 'sure' is not a boolean"),
            (["cleanup-only": ["true"], "dry-run": ["true"]], [:], "--cleanup-only and --dry-run are both set"),
        ]
        for (flags, env, expected) in bad {
            let m = configError { _ = try CaptureInvocation.parse(flags: flags, environment: env) }
            #expect(m?.hasPrefix(expected) == true, "got \(m ?? "no error") for \(flags) \(env)")
        }
    }

    @Test func goDurations() {
        #expect(parseGoDuration("5s") == 5000 && parseGoDuration("500ms") == 500 && parseGoDuration("1.5s") == 1500)
        #expect(parseGoDuration("1h2m") == 3_720_000 && parseGoDuration("0") == 0)
        #expect(parseGoDuration("") == nil && parseGoDuration("5") == nil && parseGoDuration("s") == nil)
        #expect(parseGoDuration("5x") == nil && parseGoDuration("-5s") == nil)
    }
}
