import Testing
import WeirCore

/// Semantics that decide behaviour, checked on the model (the kernel tests check them with real connections).
struct CaptureRulesetTests {
    func table(_ flags: [String: [String]], env: [String: String] = [:], ipv4Only: Bool = false) throws -> Table {
        CaptureRuleset.build(try CaptureConfig.parse(flags: flags, environment: env, ipv4Only: ipv4Only))
    }

    func rules(_ t: Table, _ chain: String) -> [String] {
        t.chains.first { $0.name == chain }?.rules.map { NftText.render($0, family: t.family) } ?? []
    }

    @Test func defaultsCaptureNothingInboundAndOnlyOwnerRulesOutbound() throws {
        let t = try table([:])
        #expect(t.family == .inet)
        #expect(t.chains.map(\.name) == ["redirect-inbound", "outbound", "output"])
        #expect(t.sets.isEmpty)
        #expect(rules(t, "redirect-inbound") == ["meta l4proto tcp counter redirect to :15006"])
    }

    @Test func theProxyUIDsNewTCPConnectionsGetWeirsConntrackMarkOnlyWhereNoneIs() throws {
        let t = try table(["proxy-uid": ["1400,1500"], "istio-inbound-interception-mode": ["TPROXY"]])
        // The first rule of the nat output chain: it sees each connection's first packet only, after conntrack.
        let chain = t.chains.first { $0.name == "output" }
        #expect(chain?.base == BaseChain(type: .nat, hook: .output, priority: -100))
        // The first UID only (the owner of weir's upstream sockets), never clobbering another mark, never 1337.
        #expect(rules(t, "output").first
                == "meta l4proto tcp ct state new meta skuid 1400 ct mark 0 counter ct mark set 0x77656972")
        #expect(UpstreamConntrack.mark == 0x7765_6972 && UpstreamConntrack.mark != 1337)
        #expect(UpstreamConntrack.mark & 0xfff != 0x111 && UpstreamConntrack.mark & 0xfff != 0x222)
        #expect(NftText.render(Rule([], [.setCtMark(0x539)])) == "ct mark set 0x00000539")
    }

    @Test func onlyWeirsMarkedTCPEntriesInSYNSentAreStale() {
        let mark = UpstreamConntrack.mark
        #expect(UpstreamConntrack.isStale(ipProtocol: 6, tcpState: 1, mark: mark))
        #expect(!UpstreamConntrack.isStale(ipProtocol: 6, tcpState: 1, mark: 0))  // not weir's: never guessed
        #expect(!UpstreamConntrack.isStale(ipProtocol: 6, tcpState: 1, mark: 1337))
        #expect(!UpstreamConntrack.isStale(ipProtocol: 6, tcpState: 1, mark: mark | 0x8000_0000))
        #expect(!UpstreamConntrack.isStale(ipProtocol: 6, tcpState: 3, mark: mark))  // established
        #expect(!UpstreamConntrack.isStale(ipProtocol: 6, tcpState: 2, mark: mark))  // SYN_RECV
        #expect(!UpstreamConntrack.isStale(ipProtocol: 17, tcpState: 0, mark: mark))
    }

    @Test func excludeCIDRsComeBeforeIncludesAndPorts() throws {
        let t = try table(["istio-service-cidr": ["198.18.0.0/15"], "istio-service-exclude-cidr": ["198.18.1.0/24"],
                           "istio-outbound-ports": ["8080"]])
        let r = rules(t, "outbound")
        let exclude = r.firstIndex(of: "ip daddr @outbound-exclude-v4 counter return")!
        let ports = r.firstIndex(of: "tcp dport @outbound-ports-include counter jump redirect-outbound")!
        let include = r.firstIndex(of: "ip daddr @outbound-include-v4 counter jump redirect-outbound")!
        #expect(exclude < ports && ports < include)
    }

    @Test func outboundPortExclusionsComeFirstForTCPAndUDP() throws {
        let r = rules(try table(["istio-local-outbound-ports-exclude": ["53,9090"]]), "outbound")
        #expect(Array(r.prefix(2)) == ["tcp dport @outbound-ports-exclude counter return",
                                       "udp dport @outbound-ports-exclude counter return"])
    }

    @Test func inboundExcludePortsOnlyApplyWithWildcard() throws {
        let listed = try table(["istio-inbound-ports": ["80"], "istio-local-exclude-ports": ["81"]])
        #expect(listed.set(named: "inbound-ports-exclude") == nil)
        let wildcard = try table(["istio-inbound-ports": ["*"], "istio-local-exclude-ports": ["81"]])
        #expect(rules(wildcard, "inbound") == [
            "meta l4proto tcp tcp dport 15008 counter return",
            "tcp dport @inbound-ports-exclude counter return",
            "meta l4proto tcp counter jump redirect-inbound",
        ])
    }

    @Test func loopbackIncludeDropsTheLoReturnForOtherOwners() throws {
        let withLoopback = rules(try table(["istio-service-cidr": ["127.1.2.3/32"]]), "outbound")
        #expect(!withLoopback.contains("oifname \"lo\" meta skuid != 1337 counter return"))
        let without = rules(try table(["istio-service-cidr": ["198.18.0.0/15"]]), "outbound")
        #expect(without.contains("oifname \"lo\" meta skuid != 1337 counter return"))
    }

    @Test func cidrsMergeIntoTheFewestRanges() throws {
        let t = try table(["istio-service-exclude-cidr": [
            "198.18.0.0/24,198.18.1.0/24,198.18.0.128/25,198.19.0.0/16,2001:db8::/33,2001:db8:8000::/33"]])
        #expect(t.set(named: "outbound-exclude-v4")?.elements.map(\.description) == [
            "198.18.0.0/23", "198.19.0.0/16"])
        #expect(t.set(named: "outbound-exclude-v6")?.elements.map(\.description) == ["2001:db8::/32"])
        let odd = try table(["istio-service-exclude-cidr": ["198.18.0.0/24,198.18.1.0/25"]])
        #expect(odd.set(named: "outbound-exclude-v4")?.elements.map(\.description) == ["198.18.0.0-198.18.1.127"])
    }

    @Test func ipv4OnlyUsesAnIPTableWithoutIPv6Rules() throws {
        let t = try table(["istio-inbound-ports": ["*"], "istio-service-cidr": ["*"]], ipv4Only: true)
        #expect(t.family == .ip)
        let text = NftText.render(t)
        #expect(!text.contains("ip6"))
        #expect(text.contains("table ip weir {"))
    }

    @Test func tproxyModeCapturesInboundInMangleChainsOnly() throws {
        let t = try table(["istio-inbound-ports": ["8080"], "istio-inbound-interception-mode": ["TPROXY"]])
        #expect(rules(t, "prerouting").isEmpty)
        #expect(rules(t, "tproxy-capture") == [
            "meta l4proto tcp ip daddr != 127.0.0.1 tproxy ip to :15006 meta mark set 1337 counter accept",
            "meta l4proto tcp ip6 daddr != ::1 tproxy ip6 to :15006 meta mark set 1337 counter accept",
            // What tproxy could not hand to a listener (none on 15006) is dropped, never delivered directly.
            "meta l4proto tcp ip daddr != 127.0.0.1 counter drop",
            "meta l4proto tcp ip6 daddr != ::1 counter drop",
        ])
        #expect(rules(t, "mangle-prerouting").first == "meta l4proto tcp counter jump tproxy-inbound")
    }

    @Test func largeCIDRListsBecomeOneSetAndOneRule() throws {
        var cidrs: [String] = []
        for a in 0..<40 { for b in 0..<250 { cidrs.append("198.\(18 + a % 2).\(a / 2 * 10 + b / 25).\(b % 25 * 2)") } }
        let t = try table(["istio-service-exclude-cidr": [cidrs.joined(separator: ",")]])
        #expect(cidrs.count == 10_000)
        // 10,000 single addresses that do not merge: one set without intervals, one rule.
        #expect(rules(t, "outbound").filter { $0.contains("outbound-exclude") }.count == 1)
        #expect(t.set(named: "outbound-exclude-v4") == nil)
        #expect(t.set(named: "outbound-exclude-hosts-v4")?.elements.count == 10_000)
    }

    @Test func singleAddressesGoToASetWithoutIntervalsBesideThePrefixes() throws {
        let t = try table(["istio-service-exclude-cidr": [
            // A host inside a listed prefix, two adjacent hosts (they merge into a range), two lone hosts.
            "198.18.0.0/24,198.18.0.7,198.18.2.0,198.18.2.1,198.18.3.9,198.18.1.5,2001:db8::5,2001:db8:1::/48"]])
        let ranges = try #require(t.set(named: "outbound-exclude-v4"))
        #expect(ranges.isInterval && ranges.declaredSize == nil)
        #expect(ranges.elements.map(\.description) == ["198.18.0.0/24", "198.18.2.0/31"])
        let hosts = try #require(t.set(named: "outbound-exclude-hosts-v4"))
        #expect(!hosts.isInterval && hosts.declaredSize == 2)
        #expect(hosts.elements.map(\.description) == ["198.18.1.5", "198.18.3.9"])
        #expect(t.set(named: "outbound-exclude-v6")?.elements.map(\.description) == ["2001:db8:1::/48"])
        #expect(t.set(named: "outbound-exclude-hosts-v6")?.elements.map(\.description) == ["2001:db8::5"])
        // Both sets of a family return: in istio-iptables each CIDR is a RETURN rule of its own.
        #expect(rules(t, "outbound").filter { $0.contains("outbound-exclude") } == [
            "ip daddr @outbound-exclude-v4 counter return", "ip daddr @outbound-exclude-hosts-v4 counter return",
            "ip6 daddr @outbound-exclude-v6 counter return", "ip6 daddr @outbound-exclude-hosts-v6 counter return",
        ])
        let text = NftText.render(t)
        #expect(text.contains("set outbound-exclude-hosts-v4 {\n\t\ttype ipv4_addr\n\t\tsize 2\n\t\telements = {"))
        #expect(text.contains("set outbound-exclude-v4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n"))
    }
}
