import Foundation
import Testing
import WeirTestSupport

/// One connection and where it must land: `pod:15001` (outbound capture), `pod:15006` (inbound capture), or the
/// listener it was addressed to (`peer0:80`, `pod:80`, ...), i.e. direct.
struct Probe: CustomStringConvertible, Sendable {
    enum Origin: Sendable { case pod, peer0, peer1 }
    let name: String
    let origin: Origin
    let uid: UInt32?
    let gid: UInt32?
    let host: String
    let port: Int

    var description: String { name }

    static let all: [Probe] = [
        Probe(name: "o1 app uid to peer0 v4:80", origin: .pod, uid: 1000, gid: nil, host: "198.18.0.2", port: 80),
        Probe(name: "o2 proxy uid to peer0 v4:80", origin: .pod, uid: 1337, gid: nil, host: "198.18.0.2", port: 80),
        Probe(name: "o3 app uid to peer1 (second nic)", origin: .pod, uid: 1000, gid: nil, host: "198.18.1.2", port: 80),
        Probe(name: "o4 app uid to peer0:32000", origin: .pod, uid: 1000, gid: nil, host: "198.18.0.2", port: 32000),
        Probe(name: "o5 app uid to own pod IP", origin: .pod, uid: 1000, gid: nil, host: "198.18.0.1", port: 80),
        Probe(name: "o6 proxy uid to own pod IP", origin: .pod, uid: 1337, gid: nil, host: "198.18.0.1", port: 80),
        Probe(name: "o7 app uid to peer0 v6:80", origin: .pod, uid: 1000, gid: nil, host: "2001:db8::2", port: 80),
        Probe(name: "o8 app uid, group daemon(1)", origin: .pod, uid: 1000, gid: 1, host: "198.18.0.2", port: 80),
        Probe(name: "o9 app uid, group mail(8)", origin: .pod, uid: 1000, gid: 8, host: "198.18.0.2", port: 80),
        Probe(name: "o10 app uid to 127.0.0.1", origin: .pod, uid: 1000, gid: nil, host: "127.0.0.1", port: 80),
        Probe(name: "o12 proxy uid to 127.0.0.2", origin: .pod, uid: 1337, gid: nil, host: "127.0.0.2", port: 80),
        Probe(name: "o13 uid 3 to own pod IP", origin: .pod, uid: 3, gid: nil, host: "198.18.0.1", port: 80),
        Probe(name: "o14 app uid to peer0 v6:32000", origin: .pod, uid: 1000, gid: nil, host: "2001:db8::2", port: 32000),
        Probe(name: "o15 proxy uid to peer0 v6:80", origin: .pod, uid: 1337, gid: nil, host: "2001:db8::2", port: 80),
        Probe(name: "i1 peer0 to pod:32000", origin: .peer0, uid: nil, gid: nil, host: "198.18.0.1", port: 32000),
        Probe(name: "i2 peer0 to pod:80", origin: .peer0, uid: nil, gid: nil, host: "198.18.0.1", port: 80),
        Probe(name: "i3 peer0 to pod:15008", origin: .peer0, uid: nil, gid: nil, host: "198.18.0.1", port: 15008),
        Probe(name: "i4 peer0 to pod:6000", origin: .peer0, uid: nil, gid: nil, host: "198.18.0.1", port: 6000),
        Probe(name: "i5 peer0 to pod v6:4000", origin: .peer0, uid: nil, gid: nil, host: "2001:db8::1", port: 4000),
        Probe(name: "i6 peer1 to pod:80 (second nic)", origin: .peer1, uid: nil, gid: nil, host: "198.18.1.1", port: 80),
        Probe(name: "i7 peer0 to pod v6:80", origin: .peer0, uid: nil, gid: nil, host: "2001:db8::1", port: 80),
    ]

    /// Where each probe lands with no capture rules at all.
    static let direct: [String: String] = [
        "o1": "peer0:80", "o2": "peer0:80", "o3": "peer1:80", "o4": "peer0:32000", "o5": "pod:80", "o6": "pod:80",
        "o7": "peer0:80", "o8": "peer0:80", "o9": "peer0:80", "o10": "pod:80", "o12": "pod:80", "o13": "pod:80",
        "o14": "peer0:32000", "o15": "peer0:80", "i1": "pod:32000", "i2": "pod:80", "i3": "pod:15008",
        "i4": "pod:6000", "i5": "pod:4000", "i6": "pod:80", "i7": "pod:80",
    ]

    var key: String { String(name.split(separator: " ")[0]) }
}

/// A behaviour case: a capture scenario and where each probe must land under it (probes not named land `direct`,
/// except that `o6` and `o12`, the proxy calling its own pod over `lo`, land on 15006 whenever the proxy UID is 1337).
struct BehaviourCase: CustomStringConvertible, Sendable {
    let scenario: String
    let secondInterface: String
    let expected: [String: String]

    var description: String { scenario }

    init(_ scenario: String, secondInterface: String = "eth1", _ expected: [String: String]) {
        self.scenario = scenario
        self.secondInterface = secondInterface
        self.expected = expected
    }
}

let proxyToSelf: [String: String] = ["o6": "pod:15006", "o12": "pod:15006"]
let out = "pod:15001", inb = "pod:15006"

/// Expectations derived from istio-iptables' rules for each reference case (see ../shared/reference/istio-nft).
let behaviourCases: [BehaviourCase] = [
    BehaviourCase("empty", proxyToSelf),
    BehaviourCase("inbound-ports-include", proxyToSelf.merging(["i1": inb]) { $1 }),
    BehaviourCase("inbound-ports-wildcard", proxyToSelf.merging([
        "i1": inb, "i2": inb, "i4": inb, "i5": inb, "i6": inb, "i7": inb]) { $1 }),
    BehaviourCase("inbound-ports-tproxy", proxyToSelf.merging(["i1": inb]) { $1 }),
    // As both of istio's backends do: in TPROXY mode the tunnel port 15008 is captured too (i3).
    BehaviourCase("inbound-ports-wildcard-tproxy", proxyToSelf.merging([
        "i1": inb, "i2": inb, "i3": inb, "i4": inb, "i5": inb, "i6": inb, "i7": inb]) { $1 }),
    BehaviourCase("inbound-ports-empty-tproxy", proxyToSelf),
    BehaviourCase("ipnets", proxyToSelf.merging(["o1": out, "o3": out, "o4": out, "o8": out, "o9": out]) { $1 }),
    BehaviourCase("kube-virt-interfaces", proxyToSelf.merging([
        "o1": out, "o3": out, "o4": out, "o7": out, "o8": out, "o9": out, "o14": out, "i6": out]) { $1 }),
    BehaviourCase("ipnets-with-kube-virt-interfaces", proxyToSelf.merging([
        "o1": out, "o3": out, "o4": out, "o8": out, "o9": out, "i6": out]) { $1 }),
    BehaviourCase("outbound-ports-include", proxyToSelf.merging(["o4": out, "o14": out]) { $1 }),
    BehaviourCase("basic-exclude-nic", secondInterface: "not-istio-nic", proxyToSelf),
    BehaviourCase("drop-invalid", proxyToSelf),
    BehaviourCase("host-ipv4-loopback-cidr", ["o6": inb]),
    BehaviourCase("outbound-owner-groups", proxyToSelf),
    BehaviourCase("outbound-owner-groups-exclude", proxyToSelf),
    BehaviourCase("ipv6-empty-inbound-ports", proxyToSelf),
    BehaviourCase("ipv6-inbound-ports", proxyToSelf.merging(["i5": inb]) { $1 }),
    BehaviourCase("ipv6-virt-interfaces", secondInterface: "eth1", proxyToSelf),
    BehaviourCase("ipv6-ipnets", secondInterface: "eth1", proxyToSelf.merging(["i5": out, "i7": out]) { $1 }),
    BehaviourCase("ipv6-uid-gid", secondInterface: "eth1", ["o13": inb, "i5": out, "i7": out]),
    BehaviourCase("ipv6-outbound-ports", proxyToSelf.merging(["o4": out, "o14": out]) { $1 }),
    // weir's own cases: the same semantics with -i '*' so exclusions and groups show.
    BehaviourCase("sidecar", proxyToSelf.merging([
        "o1": out, "o3": out, "o4": out, "o7": out, "o8": out, "o9": out, "o14": out,
        "i1": inb, "i2": inb, "i4": inb, "i5": inb, "i6": inb, "i7": inb]) { $1 }),
    BehaviourCase("sidecar-tproxy", secondInterface: "not-weir-nic", proxyToSelf.merging([
        "o1": out, "o4": out, "o7": out, "o8": out, "o9": out, "o14": out,
        "i1": inb, "i2": inb, "i3": inb, "i4": inb, "i5": inb, "i7": inb]) { $1 }),
    BehaviourCase("outbound-lists", proxyToSelf.merging([
        "o1": out, "o3": out, "o4": out, "o8": out, "o9": out]) { $1 }),
    BehaviourCase("loopback-include", ["o13": inb]),
    // An address of the include list (peer0, v4 and v6; the pod's second address from the virtual interface) is
    // captured, its neighbour (peer1) is not; an excluded address (peer1) or prefix (around peer0's v6) goes direct.
    BehaviourCase("outbound-include-hosts", proxyToSelf.merging([
        "o1": out, "o4": out, "o7": out, "o8": out, "o9": out, "o14": out, "i6": out]) { $1 }),
    BehaviourCase("outbound-exclude-hosts", proxyToSelf.merging(["o1": out, "o4": out, "o8": out, "o9": out]) { $1 }),
    BehaviourCase("ipv4-only", proxyToSelf.merging([
        "o1": out, "o3": out, "o4": out, "o8": out, "o9": out, "i1": inb, "i2": inb, "i4": inb, "i6": inb]) { $1 }),
]

@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct CaptureBehaviourTests {
    @Test(arguments: behaviourCases)
    func connectionsLandWhereIstioWouldSendThem(_ c: BehaviourCase) throws {
        let scenario = captureScenarios.first { $0.name == c.scenario }!
        let tproxy = scenario.flags["istio-inbound-interception-mode"] == ["TPROXY"]
        let topo = try CaptureTopology(secondInterface: c.secondInterface, transparentInbound: tproxy)
        defer { topo.delete() }
        let applied = try topo.pod.weir(["rules"] + scenario.arguments, environment: scenario.environment)
        try #require(applied.status == 0, "weir rules failed: \(applied.stderr)")
        for probe in Probe.all {
            let from = [Probe.Origin.pod: topo.pod, .peer0: topo.peer0, .peer1: topo.peer1][probe.origin]!
            let got = try topo.probe(from: from, uid: probe.uid, gid: probe.gid, to: probe.host, port: probe.port)
            let want = c.expected[probe.key] ?? Probe.direct[probe.key]!
            #expect(got == want, "\(c.scenario): \(probe.name) landed on \(got), expected \(want)")
        }
    }

    @Test func redirectedConnectionKnowsItsOriginalDestination() throws {
        let topo = try CaptureTopology()
        defer { topo.delete() }
        try #require(try topo.pod.weir(["rules", "-i", "198.18.0.0/15,2001:db8::/32", "-b", "*"]).status == 0)
        let v4 = try topo.probeLine(from: topo.pod, uid: 1000, to: "198.18.0.2", port: 80)
        #expect(v4.hasPrefix("pod:15001 orig=198.18.0.2:80 "), "\(v4)")
        let v6 = try topo.probeLine(from: topo.pod, uid: 1000, to: "2001:db8::2", port: 32000)
        #expect(v6.hasPrefix("pod:15001 orig=[2001:db8::2]:32000 "), "\(v6)")
        let inbound = try topo.probeLine(from: topo.peer0, to: "198.18.0.1", port: 6000)
        #expect(inbound.hasPrefix("pod:15006 orig=198.18.0.1:6000 peer=198.18.0.2"), "\(inbound)")
    }

    @Test func tproxyKeepsTheClientAddressAndTheOriginalDestination() throws {
        let topo = try CaptureTopology(transparentInbound: true)
        defer { topo.delete() }
        try #require(try topo.pod.weir(["rules", "-m", "TPROXY", "-b", "*"]).status == 0)
        let v4 = try topo.probeLine(from: topo.peer0, to: "198.18.0.1", port: 32000)
        #expect(v4.hasPrefix("pod:15006 orig=198.18.0.1:32000 peer=198.18.0.2"), "\(v4)")
        let v6 = try topo.probeLine(from: topo.peer0, to: "2001:db8::1", port: 4000)
        #expect(v6.hasPrefix("pod:15006 orig=[2001:db8::1]:4000 peer=2001:db8::2"), "\(v6)")
    }
}
