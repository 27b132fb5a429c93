import Foundation
import Testing
import WeirTestSupport

/// One DNS query and where its answer must come from: `agent>pod-dns` (captured: the agent on the DNS proxy port
/// answered, after relaying upstream to the pod's resolver on 127.0.0.53), `pod-dns` or `peer0-dns` (direct), or the
/// first word of a probe server's reply (`pod:15001`: the TCP connection was captured as ordinary outbound traffic).
struct DNSProbe: CustomStringConvertible, Sendable {
    let key: String
    let proxy: Bool
    let host: String
    let transport: String
    let direct: String

    var description: String { "\(key) \(proxy ? "proxy" : "app") \(transport) to \(host)" }

    static let all: [DNSProbe] = [
        DNSProbe(key: "q1", proxy: false, host: "127.0.0.53", transport: "udp", direct: "pod-dns"),
        DNSProbe(key: "q2", proxy: false, host: "127.0.0.53", transport: "tcp", direct: "pod-dns"),
        DNSProbe(key: "q3", proxy: false, host: "198.18.0.2", transport: "udp", direct: "peer0-dns"),
        DNSProbe(key: "q4", proxy: false, host: "198.18.0.2", transport: "tcp", direct: "peer0-dns"),
        DNSProbe(key: "q5", proxy: false, host: "2001:db8::2", transport: "udp", direct: "peer0-dns"),
        DNSProbe(key: "q6", proxy: false, host: "2001:db8::2", transport: "tcp", direct: "peer0-dns"),
        DNSProbe(key: "q7", proxy: true, host: "127.0.0.53", transport: "udp", direct: "pod-dns"),
        DNSProbe(key: "q8", proxy: true, host: "127.0.0.53", transport: "tcp", direct: "pod-dns"),
        DNSProbe(key: "q9", proxy: false, host: "::127.0.0.53", transport: "udp", direct: "pod-dns"),
        DNSProbe(key: "q10", proxy: false, host: "::127.0.0.53", transport: "tcp", direct: "pod-dns"),
        DNSProbe(key: "q11", proxy: false, host: "198.18.1.2", transport: "udp", direct: "peer1-dns"),
    ]
}

let agent = "agent>pod-dns"

/// Expectations derived from istio's rules for its DNS reference cases, and weir's two.
let dnsCases: [BehaviourCase] = [
    BehaviourCase("dns-uid-gid", ["q1": agent, "q2": agent, "q9": agent, "q10": agent]),
    // -i 198.18.0.0/16 also captures TCP to peer0, port 53 included: Envoy's outbound port takes it.
    BehaviourCase("ip-range", ["q1": agent, "q2": agent, "q4": "pod:15001"]),
    // TPROXY: the proxy's own TCP to a loopback address other than -z's 127.0.0.1 is marked 1338 and taken by the
    // inbound port (istio's mangle rules), so the agent's TCP relay to 127.0.0.53 and the proxy's own TCP query
    // land on 15006, as they would under istio.
    BehaviourCase("tproxy", secondInterface: "not-istio-nic", ["q1": agent, "q2": "agent>pod:15006", "q4": "pod:15001",
                                                         "q8": "pod:15006"]),
    BehaviourCase("loopback-outbound-iprange", ["q1": agent, "q2": agent]),
    // --redirect-dns without servers: istio turns DNS capture off, and with it the port-53 exception: the proxy's
    // TCP to 127.0.0.53 is redirected to the inbound port like any proxy connection to a loopback address.
    BehaviourCase("ipv6-dns-uid-gid", ["q8": "pod:15006"]),
    BehaviourCase("ipv6-dns-outbound-owner-groups", ["q8": "pod:15006"]),
    BehaviourCase("ipv6-dns-outbound-owner-groups-exclude", ["q8": "pod:15006"]),
    BehaviourCase("dns-capture-all", ["q1": agent, "q2": agent, "q3": agent, "q4": agent, "q5": agent, "q6": agent,
                                "q9": agent, "q10": agent, "q11": agent]),
    // The servers are the peer's; TCP to the pod's resolver (not a server) is ordinary outbound traffic under -i '*'.
    BehaviourCase("dns-remote-servers", ["q2": "pod:15001", "q3": agent, "q4": agent, "q5": agent, "q6": agent,
                                   "q10": "pod:15001"]),
]

@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct CaptureDNSTests {
    @Test(arguments: dnsCases)
    func queriesLandWhereIstioWouldSendThem(_ c: BehaviourCase) throws {
        let scenario = captureScenarios.first { $0.name == c.scenario }!
        let proxyUID = scenario.flags["proxy-uid"].map { UInt32($0[0].split(separator: ",")[0])! } ?? 1337
        let topo = try CaptureTopology(secondInterface: c.secondInterface,
                                       transparentInbound: scenario.flags["istio-inbound-interception-mode"] != nil,
                                       dnsAgentUID: proxyUID)
        defer { topo.delete() }
        let applied = try topo.pod.weir(["rules"] + scenario.arguments, environment: scenario.environment)
        try #require(applied.status == 0, "weir rules failed: \(applied.stderr)")
        for probe in DNSProbe.all {
            let got = try topo.dnsQuery(uid: probe.proxy ? proxyUID : 1000, to: probe.host, transport: probe.transport)
            let want = c.expected[probe.key] ?? probe.direct
            #expect(got == want, "\(c.scenario): \(probe) answered by \(got), expected \(want)")
        }
    }

    /// The two legs of a captured UDP query are tracked in separate conntrack zones, as istio sets them: the
    /// application's query to the server (answered by the agent, translated back) in zone 2, the agent's own query
    /// upstream in zone 1.
    @Test func udpLegsAreTrackedInSeparateZones() throws {
        let topo = try CaptureTopology(dnsAgentUID: 1337)
        defer { topo.delete() }
        try #require(try topo.pod.weir(["rules", "--redirect-dns", "--dns-servers", "127.0.0.53"]).status == 0)
        #expect(try topo.dnsQuery(uid: 1000, to: "127.0.0.53", transport: "udp") == agent)
        let entries = try topo.pod.exec(["conntrack", "-L", "-p", "udp"]).split(separator: "\n")
        #expect(entries.contains { $0.contains("dst=127.0.0.53") && $0.contains("sport=15053") && $0.contains("zone=2") },
                "\(entries)")
        #expect(entries.contains { $0.contains("dst=127.0.0.53") && $0.contains("dport=53") && !$0.contains("15053")
            && $0.contains("zone=1") }, "\(entries)")
    }

    /// Without the zone rules the same relay still works on this topology; what the zones buy is that the agent's
    /// upstream query can never be mistaken for the application's. Checked here: re-applying changes nothing, and
    /// removing DNS capture leaves no raw chain behind.
    @Test func dnsCaptureIsIdempotentAndRemovable() throws {
        try withNamespace { ns in
            let args = ["rules", "--redirect-dns", "--dns-servers", "127.0.0.53,2001:db8::53", "-b", "*"]
            try #require(try ns.weir(args).status == 0)
            let before = try ns.exec(["nft", "list", "ruleset"])
            #expect(try ns.weir(args).stdout.contains("table inet weir: unchanged"))
            #expect(try ns.exec(["nft", "list", "ruleset"]) == before)
            #expect(before.contains("ct zone set 2") && before.contains("redirect to :15053"))
            try #require(try ns.weir(["rules", "-b", "*"]).status == 0)
            let after = try ns.exec(["nft", "list", "ruleset"])
            #expect(!after.contains("raw-output") && !after.contains("15053") && !after.contains("dns-servers"))
        }
    }
}
