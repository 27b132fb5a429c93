import Testing
@testable import WeirCore

struct ControlPathTests {
    func cidr(_ s: String) -> CIDR { try! CIDR.parse(s).get() }

    @Test func apiServerRegistryAndDNSAreAddedToTheOutboundExclusions() throws {
        let path = try ControlPath.parse(
            kubernetesHost: "10.96.0.1", apiServers: ("192.0.2.10, 2001:db8::10,10.96.0.1", "--api-servers"),
            registryCIDRs: ("198.51.100.0/24", "--registry-cidrs"), registryPorts: ("5000", "--registry-ports"),
            resolvConf: ("search cluster.local\nnameserver 192.0.2.53\nnameserver 10.96.0.1\n", "/etc/resolv.conf"))
        #expect(path.apiServers.map(\.description) == ["10.96.0.1", "192.0.2.10", "2001:db8::10"])
        var config = CaptureConfig()
        config.outboundExcludeCIDRs = [cidr("203.0.113.0/24")]
        config.outboundPortsExclude = [22, 10250]
        let out = path.excluded(from: config)
        #expect(out.outboundExcludeCIDRs.map(\.description)
                == ["10.96.0.1", "192.0.2.10", "192.0.2.53", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::10"])
        #expect(out.outboundPortsExclude == [22, 5000, 10250])
        // The rest of the capture is untouched, and the ruleset carries the addresses in its exclude set.
        #expect(out.proxyPort == config.proxyPort && out.inboundPorts == config.inboundPorts)
        let text = NftText.render(CaptureRuleset.build(out))
        #expect(text.contains("10.96.0.1"), "\(text)")
    }

    @Test func ipv4OnlyLeavesIPv6EntriesOut() throws {
        let path = ControlPath(apiServers: [IPAddress("10.96.0.1")!, IPAddress("2001:db8::1")!])
        var config = CaptureConfig()
        config.ipv4Only = true
        #expect(path.excluded(from: config).outboundExcludeCIDRs.map(\.description) == ["10.96.0.1"])
    }

    @Test func outsideKubernetesWithNothingGivenNothingChanges() throws {
        let path = try ControlPath.parse(kubernetesHost: nil, apiServers: nil, registryCIDRs: nil,
                                         registryPorts: nil, resolvConf: nil)
        #expect(path.excluded(from: CaptureConfig()) == CaptureConfig())
    }

    @Test func badValuesNameTheValueAndItsSource() {
        func message(_ body: () throws -> ControlPath) -> String {
            do { _ = try body(); return "" } catch { return "\(error)" }
        }
        #expect(message { try ControlPath.parse(kubernetesHost: "kubernetes.default", apiServers: nil,
                                                 registryCIDRs: nil, registryPorts: nil, resolvConf: nil) }
                == "KUBERNETES_SERVICE_HOST (environment) 'kubernetes.default' is not an IP address: expected the "
                   + "API server's service address, e.g. 10.96.0.1")
        #expect(message { try ControlPath.parse(kubernetesHost: nil, apiServers: ("10.0.0.1,nope", "weir.conf:3 WEIR_API_SERVERS"),
                                                 registryCIDRs: nil, registryPorts: nil, resolvConf: nil) }
                == "weir.conf:3 WEIR_API_SERVERS 'nope' is not an IP address: expected e.g. 192.0.2.10,2001:db8::10")
        #expect(message { try ControlPath.parse(kubernetesHost: nil, apiServers: nil,
                                                 registryCIDRs: ("10.0.0.1/8", "--registry-cidrs"),
                                                 registryPorts: nil, resolvConf: nil) }
                .hasPrefix("--registry-cidrs '10.0.0.1/8' is not a CIDR"))
        #expect(message { try ControlPath.parse(kubernetesHost: nil, apiServers: nil, registryCIDRs: nil,
                                                 registryPorts: ("0", "--registry-ports"), resolvConf: nil) }
                .hasPrefix("--registry-ports '0' is not a port"))
    }
}

struct FailOpenPolicyTests {
    let policy = FailOpenPolicy(limit: 3, windowSeconds: 600)

    @Test func theLimitWithinTheWindowFailsOpenAndRecordsNothing() {
        #expect(policy.decide(history: "", now: 1000) == .start(history: [1000]))
        #expect(policy.decide(history: "900\n950\n", now: 1000) == .start(history: [900, 950, 1000]))
        #expect(policy.decide(history: "900\n950\n990\n", now: 1000) == .failOpen(failures: 3))
    }

    @Test func oldStartsLeaveTheWindowAndJunkIsDropped() {
        // 300 is 700 s old: outside the window. A time in the future (clock set back) and junk are not trusted.
        #expect(policy.decide(history: "300\n950\nnope\n5000\n990\n", now: 1000) == .start(history: [950, 990, 1000]))
        #expect(FailOpenPolicy.render([950, 990]) == "950\n990\n")
        #expect(FailOpenPolicy.parse(FailOpenPolicy.render([1, 2])) == [1, 2])
    }
}
