import Testing
import WeirCore
import WeirTestSupport

struct CaptureFlagsTests {
    func parse(_ flags: [String: [String]], env: [String: String] = [:],
               files: [String: String] = [:]) throws -> CaptureConfig {
        try CaptureConfig.parse(flags: flags, environment: env, readFile: { files[$0] },
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
        (["envoy-port": ["70000"]], [:], "-p '70000' is not a port: expected a number from 1 to 65535"),
        (["envoy-port": ["http"]], [:], "-p 'http' is not a port"),
        (["istio-inbound-ports": ["80,0"]], [:], "-b '0' is not a port"),
        ([:], ["ENVOY_PORT": "-1"], "-p '-1' is not a port"),
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
         "-k interface name 'averyveryverylongname0' is 22 bytes long: expected at most 15"),
        (["istio-exclude-interfaces": ["eth 0"]], [:], "-c 'eth 0' is not an interface name"),
        (["envoy-port": ["15001", "15002"]], [:], "-p given twice with different values '15001' and '15002'"),
        (["istio-inbound-tproxy-route-table": ["254"]], [:], "-r '254' is a reserved routing table"),
        ([:], ["ISTIO_OUTBOUND_OWNER_GROUPS": "nosuchgroup"], "group 'nosuchgroup' does not exist"),
        ([:], ["ISTIO_OUTBOUND_OWNER_GROUPS": "1", "ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE": "2"], "are both set"),
        (["istio-service-cidr": ["@/missing"]], [:], "-i cannot read list file '/missing'"),
    ]

    @Test(arguments: badInputs.indices)
    func badInputNamesTheValueAndTheExpectation(_ i: Int) {
        let (flags, env, expected) = Self.badInputs[i]
        let message = error(flags, env: env)
        #expect(message?.contains(expected) == true, "got: \(message ?? "no error")")
        #expect(message?.contains("\n") == false)
    }

    @Test func sameValueTwiceIsFine() throws {
        #expect(try parse(["envoy-port": ["15001", "15001"]]).proxyPort == 15001)
    }
}
