/// Builds weir's capture table from a `CaptureConfig`, with istio-iptables' semantics.
///
/// Layout: one table (`inet weir`, or `ip weir` with `--ipv4-only`). The nat chains do what istio's nat table does
/// (REDIRECT of outbound to `-p`, of inbound to `-z`); the mangle-priority chains do what istio's mangle table does in
/// TPROXY mode. Lists become named sets; CIDR lists become sets split by family, and within a family into an interval
/// set of the ranges and a plain set of the single addresses (`SetRegistry.addresses`), each with its own rule. The
/// order of rules that decides behaviour is istio's, rule for rule (istio-iptables has one rule per CIDR, and rules
/// with the same verdict side by side match their union); only chains and sets that something uses are emitted.
///
/// One builder per chain group (`CaptureChains`: nat inbound, outbound, DNS, TPROXY) reads the configuration and
/// the set names of `CaptureSets`, the one registry of the table's sets.
public enum CaptureRuleset {
    public static let tableName = "weir"
    /// Mark istio gives the proxy's own connections to its pod address over `lo` in TPROXY mode.
    public static let outboundToSelfMark: UInt32 = 1338
    /// Source of the proxy's inbound hand-off to the local application (REDIRECT mode).
    public static let inboundPassthroughSource4 = CIDR(
        address: IPAddress(family: .ipv4, bytes: [127, 0, 0, 6]), prefixLength: 32)
    public static let inboundPassthroughSource6 = CIDR(
        address: IPAddress(family: .ipv6, bytes: [UInt8](repeating: 0, count: 15) + [6]), prefixLength: 128)
    static let loopback6 = CIDR(
        address: IPAddress(family: .ipv6, bytes: [UInt8](repeating: 0, count: 15) + [1]), prefixLength: 128)

    // Chain names.
    static let prerouting = "prerouting", output = "output"
    static let manglePrerouting = "mangle-prerouting", mangleOutput = "mangle-output"
    static let inbound = "inbound", inRedirect = "redirect-inbound", redirect = "redirect-outbound", outbound = "outbound"
    static let tproxyInbound = "tproxy-inbound", tproxyDivert = "tproxy-divert", tproxy = "tproxy-capture"
    static let dropInvalid = "drop-invalid"
    static let redirectDNS = "redirect-dns", rawPrerouting = "raw-prerouting", rawOutput = "raw-output"
    static let dnsPort: UInt16 = 53

    public static func build(_ c: CaptureConfig) -> Table {
        var registry = SetRegistry()
        let builder = CaptureChains(config: c, sets: CaptureSets(c, &registry))
        let nat = builder.natInbound()
        let out = builder.outbound()
        let dns = builder.dns()
        let mangle = builder.mangle()
        let counter = Statement.counter
        // Leaf chains first, then the chains that jump to them, then base chains: every jump target exists first.
        var chains: [Chain] = [
            Chain(name: redirect, rules: [Rule([.l4proto(.tcp)], [counter, .redirect(port: c.proxyPort)])]),
            Chain(name: inRedirect, rules: [Rule([.l4proto(.tcp)], [counter, .redirect(port: c.inboundCapturePort)])]),
            Chain(name: tproxyDivert, rules: [Rule([], [counter, .setMark(c.tproxyMark), .verdict(.accept)])]),
            Chain(name: tproxy, rules: mangle.tproxy),
            Chain(name: dropInvalid, rules: [Rule([], [counter, .verdict(.drop)])]),
            Chain(name: redirectDNS, rules: dns.redirect),
            Chain(name: inbound, rules: nat.inbound),
            Chain(name: outbound, rules: out.outbound),
            Chain(name: tproxyInbound, rules: mangle.tproxyInbound),
            Chain(name: prerouting, base: BaseChain(type: .nat, hook: .prerouting, priority: -100),
                  rules: nat.prerouting),
            // weir's conntrack mark first (UpstreamConntrack): a nat chain sees only a connection's first packet, so
            // the mark costs one rule per new connection, and no hook of its own for every packet.
            Chain(name: output, base: BaseChain(type: .nat, hook: .output, priority: -100),
                  rules: builder.upstreamMark() + out.output),
            Chain(name: manglePrerouting, base: BaseChain(type: .filter, hook: .prerouting, priority: -150),
                  rules: mangle.prerouting),
            Chain(name: mangleOutput, base: BaseChain(type: .route, hook: .output, priority: -150),
                  rules: mangle.output),
            // Raw priority: before conntrack (-200), so the zone is set before the connection is looked up.
            Chain(name: rawPrerouting, base: BaseChain(type: .filter, hook: .prerouting, priority: -300),
                  rules: dns.rawPrerouting),
            Chain(name: rawOutput, base: BaseChain(type: .filter, hook: .output, priority: -300), rules: dns.rawOutput),
        ]
        chains = pruned(chains)
        let usedSets = Set(chains.flatMap { $0.rules.flatMap { $0.matches.compactMap(\.setName) } })
        return Table(family: c.ipv4Only ? .ip : .inet, name: tableName,
                     sets: registry.sets.filter { usedSets.contains($0.name) }, chains: chains)
    }

    /// Keeps base chains that have rules and the regular chains reachable from them.
    static func pruned(_ chains: [Chain]) -> [Chain] {
        var reachable = Set<String>()
        var queue = chains.filter { $0.base != nil && !$0.rules.isEmpty }.map(\.name)
        while let name = queue.popLast() {
            guard reachable.insert(name).inserted, let chain = chains.first(where: { $0.name == name }) else { continue }
            for rule in chain.rules {
                for case .verdict(.jump(let target)) in rule.statements { queue.append(target) }
            }
        }
        return chains.filter { reachable.contains($0.name) }
    }
}

/// The table's named sets, in the order they are registered (the order the table lists them).
struct SetRegistry {
    private(set) var sets: [NamedSet] = []

    /// Registers a set and returns its name; an empty list makes no set (and its rules are left out): nil.
    mutating func add(_ name: String, _ type: SetKeyType, _ elements: [SetElement], interval: Bool = false) -> String? {
        guard !elements.isEmpty else { return nil }
        sets.append(NamedSet(name: name, keyType: type, elements: elements, isInterval: interval))
        return name
    }

    /// One family's prefixes as up to two sets that a rule matches either of: `NAME-FAMILY`, an interval set of the
    /// ranges that hold more than one address, and `NAME-hosts-FAMILY`, a set of the single addresses. The prefixes
    /// are merged first, so the two sets never share an address and an address covered by a wider prefix is not
    /// listed again. Returns the names of the sets made, ranges first.
    mutating func addresses(_ name: String, _ list: [CIDR], _ f: IPFamily) -> [String] {
        var ranges: [SetElement] = [], hosts: [SetElement] = []
        for r in IPRange.merge(list.filter { $0.family == f }) {
            if r.first == r.last { hosts.append(.address(r.first)) } else { ranges.append(.range(r)) }
        }
        return [add("\(name)-\(f.setSuffix)", f.addressType, ranges, interval: true),
                add("\(name)-hosts-\(f.setSuffix)", f.addressType, hosts)].compactMap { $0 }
    }
}

/// The names of the sets a configuration needs; nil (or no name) where its list is empty.
struct CaptureSets {
    var excludeInterfaces, virtualInterfaces: String?
    var inboundPorts, inboundPortsExclude: String?
    var outboundPortsExclude, outboundPortsInclude: String?
    /// Per family, the sets of `SetRegistry.addresses`: a rule for each, with the same verdict.
    var outboundInclude: [IPFamily: [String]] = [:]
    var outboundExclude: [IPFamily: [String]] = [:]
    var groupsInclude, groupsExclude: String?
    var dnsServers: [IPFamily: String] = [:]

    init(_ c: CaptureConfig, _ registry: inout SetRegistry) {
        excludeInterfaces = registry.add("exclude-interfaces", .ifname, c.excludeInterfaces.map { .ifname($0) })
        virtualInterfaces = registry.add("virtual-interfaces", .ifname, c.virtualInterfaces.map { .ifname($0) })
        switch c.inboundPorts {
        case .list(let ports): inboundPorts = registry.add("inbound-ports", .inetService, ports.map { .port($0) })
        case .all:
            inboundPortsExclude = registry.add("inbound-ports-exclude", .inetService,
                                               c.inboundPortsExclude.map { .port($0) })
        case .none: break
        }
        outboundPortsExclude = registry.add("outbound-ports-exclude", .inetService,
                                            c.outboundPortsExclude.map { .port($0) })
        outboundPortsInclude = registry.add("outbound-ports-include", .inetService,
                                            c.outboundPortsInclude.map { .port($0) })
        for f in c.families {
            if case .list(let list) = c.outboundIncludeCIDRs {
                outboundInclude[f] = registry.addresses("outbound-include", list, f)
            }
            outboundExclude[f] = registry.addresses("outbound-exclude", c.outboundExcludeCIDRs, f)
        }
        groupsInclude = registry.add("owner-groups-include", .gid, (c.ownerGroupsInclude ?? []).map { .gid($0) })
        groupsExclude = registry.add("owner-groups-exclude", .gid, c.ownerGroupsExclude.map { .gid($0) })
        if c.capturesDNS && !c.captureAllDNS {
            for f in c.families {
                // Single addresses only: one set without intervals.
                let hosts = Set(c.dnsServers.filter { $0.family == f }).sorted().map { SetElement.address($0) }
                dnsServers[f] = registry.add("dns-servers-\(f.setSuffix)", f.addressType, hosts)
            }
        }
    }
}

extension IPFamily {
    /// How set names tell the families apart: `v4`, `v6`.
    var setSuffix: String { self == .ipv4 ? "v4" : "v6" }
    var addressType: SetKeyType { self == .ipv4 ? .ipv4Addr : .ipv6Addr }
}

extension Match {
    /// The named set this match looks up, if any.
    public var setName: String? {
        switch self {
        case .iifnameInSet(let s), .oifnameInSet(let s), .daddrInSet(_, let s), .saddrInSet(_, let s),
             .dportInSet(_, let s), .skgidInSet(let s, _):
            return s
        default:
            return nil
        }
    }
}
