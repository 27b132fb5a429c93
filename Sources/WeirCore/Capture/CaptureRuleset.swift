/// Builds weir's capture table from a `CaptureConfig`, with istio-iptables' semantics.
///
/// Layout: one table (`inet weir`, or `ip weir` with `--ipv4-only`). The nat chains do what istio's nat table does
/// (REDIRECT of outbound to `-p`, of inbound to `-z`); the mangle-priority chains do what istio's mangle table does in
/// TPROXY mode. Lists become named sets; CIDR lists become interval sets split by family. The order of rules that
/// decides behaviour is istio's, rule for rule; only chains and sets that something uses are emitted.
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
        var sets: [NamedSet] = []
        func addSet(_ name: String, _ type: SetKeyType, _ elements: [SetElement]) -> String? {
            guard !elements.isEmpty else { return nil }
            sets.append(NamedSet(name: name, keyType: type, elements: elements))
            return name
        }
        func cidrs(_ list: [CIDR], _ f: IPFamily) -> [SetElement] {
            IPRange.merge(list.filter { $0.family == f }).map { .range($0) }
        }
        let families = c.families
        let excludeIfaces = addSet("exclude-interfaces", .ifname, c.excludeInterfaces.map { .ifname($0) })
        let virtIfaces = addSet("virtual-interfaces", .ifname, c.virtualInterfaces.map { .ifname($0) })
        var inboundPortsSet: String?
        var inboundExcludeSet: String?
        switch c.inboundPorts {
        case .list(let ports): inboundPortsSet = addSet("inbound-ports", .inetService, ports.map { .port($0) })
        case .all: inboundExcludeSet = addSet("inbound-ports-exclude", .inetService, c.inboundPortsExclude.map { .port($0) })
        case .none: break
        }
        let outPortsExclude = addSet("outbound-ports-exclude", .inetService, c.outboundPortsExclude.map { .port($0) })
        let outPortsInclude = addSet("outbound-ports-include", .inetService, c.outboundPortsInclude.map { .port($0) })
        var includeSets: [IPFamily: String] = [:]
        var excludeSets: [IPFamily: String] = [:]
        for f in families {
            let suffix = f == .ipv4 ? "v4" : "v6"
            let type: SetKeyType = f == .ipv4 ? .ipv4Addr : .ipv6Addr
            if case .list(let list) = c.outboundIncludeCIDRs {
                includeSets[f] = addSet("outbound-include-\(suffix)", type, cidrs(list, f))
            }
            excludeSets[f] = addSet("outbound-exclude-\(suffix)", type, cidrs(c.outboundExcludeCIDRs, f))
        }
        let groupsInclude = addSet("owner-groups-include", .gid, (c.ownerGroupsInclude ?? []).map { .gid($0) })
        let groupsExclude = addSet("owner-groups-exclude", .gid, c.ownerGroupsExclude.map { .gid($0) })

        func loopback(_ f: IPFamily) -> CIDR { f == .ipv4 ? c.ipv4LoopbackCIDR : loopback6 }
        func passthrough(_ f: IPFamily) -> CIDR { f == .ipv4 ? inboundPassthroughSource4 : inboundPassthroughSource6 }
        let counter = Statement.counter
        func jump(_ chain: String) -> [Statement] { [counter, .verdict(.jump(chain))] }
        let ret: [Statement] = [counter, .verdict(.return)]

        // nat prerouting: excluded and virtual interfaces, then inbound capture (REDIRECT mode).
        var preroutingRules: [Rule] = []
        if let s = excludeIfaces { preroutingRules.append(Rule([.iifnameInSet(s)], ret)) }
        if let s = virtIfaces {
            switch c.outboundIncludeCIDRs {
            case .all: preroutingRules.append(Rule([.iifnameInSet(s)], jump(redirect)))
            case .list:
                for f in families {
                    if let inc = includeSets[f] {
                        preroutingRules.append(Rule([.iifnameInSet(s), .daddrInSet(f, set: inc)], jump(redirect)))
                    }
                }
            case .none: break
            }
            preroutingRules.append(Rule([.iifnameInSet(s)], ret))
        }
        if c.mode == .redirect && c.inboundPorts != .none {
            preroutingRules.append(Rule([.l4proto(.tcp)], jump(inbound)))
        }

        var inboundRules: [Rule] = []
        if c.mode == .redirect {
            inboundRules.append(Rule([.l4proto(.tcp), .dport(.tcp, c.inboundTunnelPort, negated: false)], ret))
            switch c.inboundPorts {
            case .all:
                if let s = inboundExcludeSet { inboundRules.append(Rule([.dportInSet(.tcp, set: s)], ret)) }
                inboundRules.append(Rule([.l4proto(.tcp)], jump(inRedirect)))
            case .list:
                inboundRules.append(Rule([.dportInSet(.tcp, set: inboundPortsSet!)], jump(inRedirect)))
            case .none: break
            }
        }

        // nat output -> outbound: istio's ISTIO_OUTPUT, in istio's order.
        var outputRules: [Rule] = []
        if let s = excludeIfaces { outputRules.append(Rule([.oifnameInSet(s)], ret)) }
        outputRules.append(Rule([], jump(outbound)))

        var outboundRules: [Rule] = []
        if let s = outPortsExclude {
            outboundRules.append(Rule([.dportInSet(.tcp, set: s)], ret))
            outboundRules.append(Rule([.dportInSet(.udp, set: s)], ret))
        }
        for f in families { outboundRules.append(Rule([.oifname("lo"), .saddr(passthrough(f))], ret)) }
        if c.mode == .tproxy {
            // weir's own TPROXY hand-off: the proxy's upstream socket to the application is IP_TRANSPARENT, bound to
            // the client's address and marked with -t. Without this return the next rule (proxy UID on lo) would
            // redirect that SYN back to the inbound capture port, a loop. Only a socket with CAP_NET_ADMIN can set
            // the mark, so no application connection is affected.
            outboundRules.append(Rule([.oifname("lo"), .l4proto(.tcp), .mark(c.tproxyMark, negated: false)], ret))
        }
        var loopbackIncluded = false
        if case .list(let list) = c.outboundIncludeCIDRs { loopbackIncluded = list.contains { $0.isLoopback } }
        let dns = c.capturesDNS
        let notDNS = Match.dport(.tcp, dnsPort, negated: true)
        // With DNS capture, istio keeps TCP port 53 out of the two lo rules so a DNS server on lo is still captured
        // (and the proxy's own queries go to the server, not back to the inbound port). The GID jump keeps 53, as
        // both istio backends have it.
        func ownerRules(_ id: UInt32, skipsDNS: Bool, _ owner: (UInt32, Bool) -> Match) {
            for f in families {
                outboundRules.append(Rule(
                    [.oifname("lo"), .l4proto(.tcp), .daddr(loopback(f), negated: true)]
                        + (dns && skipsDNS ? [notDNS] : [])
                        + [.dport(.tcp, c.inboundTunnelPort, negated: true), owner(id, false)],
                    jump(inRedirect)))
            }
            if !loopbackIncluded {
                let matches: [Match] = dns ? [.oifname("lo"), .l4proto(.tcp), notDNS, owner(id, true)]
                                           : [.oifname("lo"), owner(id, true)]
                outboundRules.append(Rule(matches, ret))
            }
            outboundRules.append(Rule([owner(id, false)], ret))
        }
        for uid in c.proxyUIDs { ownerRules(uid, skipsDNS: true) { .skuid($0, negated: $1) } }
        for gid in c.proxyGIDs { ownerRules(gid, skipsDNS: false) { .skgid($0, negated: $1) } }
        if let s = groupsInclude { outboundRules.append(Rule([.skgidInSet(set: s, negated: true)], ret)) }
        if let s = groupsExclude { outboundRules.append(Rule([.skgidInSet(set: s, negated: false)], ret)) }

        // DNS: queries to the servers (or to any server with --capture-all-dns) go to the agent's DNS port, TCP and
        // UDP. Conntrack zones keep the two legs of a UDP query apart: the application's query to the server and the
        // agent's answer (sport 15053) in zone 2, the agent's own query upstream and the server's answer in zone 1.
        var dnsRules: [Rule] = []
        var rawOutputRules: [Rule] = []
        var rawPreroutingRules: [Rule] = []
        if dns {
            outboundRules.append(Rule([], jump(redirectDNS)))
            var serverSets: [IPFamily: String] = [:]
            if !c.captureAllDNS {
                for f in families {
                    let hosts = c.dnsServers.filter { $0.family == f }.map { CIDR(address: $0, prefixLength: f.byteCount * 8) }
                    serverSets[f] = addSet("dns-servers-\(f == .ipv4 ? "v4" : "v6")", f == .ipv4 ? .ipv4Addr : .ipv6Addr,
                                           cidrs(hosts, f))
                }
            }
            let redirectToAgent: [Statement] = [counter, .redirect(port: c.dnsProxyPort)]
            for p in [L4Proto.tcp, .udp] {
                if c.captureAllDNS {
                    dnsRules.append(Rule([.dport(p, dnsPort, negated: false)], redirectToAgent))
                }
                for f in families {
                    if let s = serverSets[f] {
                        dnsRules.append(Rule([.daddrInSet(f, set: s), .dport(p, dnsPort, negated: false)], redirectToAgent))
                    }
                }
            }
            let owners: [Match] = c.proxyUIDs.map { .skuid($0, negated: false) } + c.proxyGIDs.map {
                .skgid($0, negated: false)
            }
            for owner in owners {
                rawOutputRules.append(Rule([.dport(.udp, dnsPort, negated: false), owner], [counter, .setCtZone(1)]))
                rawOutputRules.append(Rule([.sport(.udp, c.dnsProxyPort), owner], [counter, .setCtZone(2)]))
            }
            if c.captureAllDNS {
                rawOutputRules.append(Rule([.dport(.udp, dnsPort, negated: false)], [counter, .setCtZone(2)]))
                rawPreroutingRules.append(Rule([.sport(.udp, dnsPort)], [counter, .setCtZone(1)]))
            }
            for f in families {
                if let s = serverSets[f] {
                    rawOutputRules.append(Rule([.dport(.udp, dnsPort, negated: false), .daddrInSet(f, set: s)],
                                               [counter, .setCtZone(2)]))
                    rawPreroutingRules.append(Rule([.sport(.udp, dnsPort), .saddrInSet(f, set: s)],
                                                   [counter, .setCtZone(1)]))
                }
            }
        }
        for f in families { outboundRules.append(Rule([.daddr(loopback(f), negated: false)], ret)) }
        for f in families {
            if let s = excludeSets[f] { outboundRules.append(Rule([.daddrInSet(f, set: s)], ret)) }
        }
        if let s = outPortsInclude { outboundRules.append(Rule([.dportInSet(.tcp, set: s)], jump(redirect))) }
        switch c.outboundIncludeCIDRs {
        case .all: outboundRules.append(Rule([], jump(redirect)))
        case .list:
            for f in families {
                if let s = includeSets[f] { outboundRules.append(Rule([.daddrInSet(f, set: s)], jump(redirect))) }
            }
        case .none: break
        }

        // Mangle-priority chains: TPROXY inbound capture and the invalid-state drop.
        var manglePreroutingRules: [Rule] = []
        var tproxyInboundRules: [Rule] = []
        var tproxyRules: [Rule] = []
        var mangleOutputRules: [Rule] = []
        let mark = c.tproxyMark
        if c.mode == .tproxy || c.dropInvalid {
            if let s = excludeIfaces { manglePreroutingRules.append(Rule([.iifnameInSet(s)], ret)) }
        }
        if c.dropInvalid {
            manglePreroutingRules.append(Rule([.l4proto(.tcp), .ctState(.invalid)], jump(dropInvalid)))
        }
        if c.mode == .tproxy {
            manglePreroutingRules.append(Rule([.l4proto(.tcp)], jump(tproxyInbound)))
            manglePreroutingRules.append(Rule([.l4proto(.tcp), .mark(mark, negated: false)],
                                              [counter, .setCtMarkFromMark]))
            tproxyInboundRules.append(Rule([.l4proto(.tcp), .mark(mark, negated: false)], ret))
            for f in families {
                tproxyInboundRules.append(Rule([.iifname("lo"), .l4proto(.tcp), .saddr(passthrough(f))], ret))
            }
            tproxyInboundRules.append(Rule([.iifname("lo"), .l4proto(.tcp), .mark(outboundToSelfMark, negated: true)],
                                           ret))
            let established = Match.ctState([.established, .related])
            // A SYN is never part of an established connection, yet conntrack files one under a stale entry when it
            // reuses the 4-tuple of a connection that ended with a reset from the other side less than 10 s ago
            // (state CLOSE: the kernel takes the SYN as a retransmission to ignore). Diverted as established, it
            // would reach the application directly; it goes to tproxy like every new connection instead.
            let notSYN = Match.tcpSYN(negated: true)
            switch c.inboundPorts {
            // No return for the tunnel port (-e) here: istio-iptables has it only in the nat chain, which TPROXY mode
            // does not hook, and istio-nftables' mangle chain has none either, so with -b '*' 15008 is captured too.
            case .all:
                if let s = inboundExcludeSet { tproxyInboundRules.append(Rule([.dportInSet(.tcp, set: s)], ret)) }
                tproxyInboundRules.append(Rule([.l4proto(.tcp), established, notSYN], jump(tproxyDivert)))
                tproxyInboundRules.append(Rule([.l4proto(.tcp)], jump(tproxy)))
            case .list:
                tproxyInboundRules.append(Rule([.dportInSet(.tcp, set: inboundPortsSet!), established, notSYN],
                                               jump(tproxyDivert)))
                tproxyInboundRules.append(Rule([.dportInSet(.tcp, set: inboundPortsSet!)], jump(tproxy)))
            case .none: break
            }
            for f in families {
                tproxyRules.append(Rule(
                    [.l4proto(.tcp), .daddr(loopback(f), negated: true)],
                    [.tproxy(f, port: c.inboundCapturePort), .setMark(mark), counter, .verdict(.accept)]))
            }
            // Nothing listens on the capture port (the proxy is restarting): nft's tproxy falls through to the next
            // rule, and without these the packet would reach the application directly, uncaptured. Drop it, as
            // istio-iptables' TPROXY target does; the client retransmits its SYN until the proxy is back.
            for f in families {
                tproxyRules.append(Rule([.l4proto(.tcp), .daddr(loopback(f), negated: true)],
                                        [counter, .verdict(.drop)]))
            }
            if let s = excludeIfaces { mangleOutputRules.append(Rule([.oifnameInSet(s)], ret)) }
            mangleOutputRules.append(Rule([.oifname("lo"), .l4proto(.tcp), .mark(mark, negated: false)], ret))
            let owners: [Match] = c.proxyUIDs.map { .skuid($0, negated: false) } + c.proxyGIDs.map {
                .skgid($0, negated: false)
            }
            for owner in owners {
                for f in families {
                    mangleOutputRules.append(Rule(
                        [.oifname("lo"), .l4proto(.tcp), .daddr(loopback(f), negated: true), owner],
                        [counter, .setMark(outboundToSelfMark)]))
                }
            }
            mangleOutputRules.append(Rule([.l4proto(.tcp), .ctMark(mark)], [counter, .setMarkFromCtMark]))
        }

        // Leaf chains first, then the chains that jump to them, then base chains: every jump target exists first.
        var chains: [Chain] = [
            Chain(name: redirect, rules: [Rule([.l4proto(.tcp)], [counter, .redirect(port: c.proxyPort)])]),
            Chain(name: inRedirect, rules: [Rule([.l4proto(.tcp)], [counter, .redirect(port: c.inboundCapturePort)])]),
            Chain(name: tproxyDivert, rules: [Rule([], [counter, .setMark(mark), .verdict(.accept)])]),
            Chain(name: tproxy, rules: tproxyRules),
            Chain(name: dropInvalid, rules: [Rule([], [counter, .verdict(.drop)])]),
            Chain(name: redirectDNS, rules: dnsRules),
            Chain(name: inbound, rules: inboundRules),
            Chain(name: outbound, rules: outboundRules),
            Chain(name: tproxyInbound, rules: tproxyInboundRules),
            Chain(name: prerouting, base: BaseChain(type: .nat, hook: .prerouting, priority: -100),
                  rules: preroutingRules),
            Chain(name: output, base: BaseChain(type: .nat, hook: .output, priority: -100), rules: outputRules),
            Chain(name: manglePrerouting, base: BaseChain(type: .filter, hook: .prerouting, priority: -150),
                  rules: manglePreroutingRules),
            Chain(name: mangleOutput, base: BaseChain(type: .route, hook: .output, priority: -150),
                  rules: mangleOutputRules),
            // Raw priority: before conntrack (-200), so the zone is set before the connection is looked up.
            Chain(name: rawPrerouting, base: BaseChain(type: .filter, hook: .prerouting, priority: -300),
                  rules: rawPreroutingRules),
            Chain(name: rawOutput, base: BaseChain(type: .filter, hook: .output, priority: -300), rules: rawOutputRules),
        ]
        chains = pruned(chains)
        let usedSets = Set(chains.flatMap { $0.rules.flatMap { $0.matches.compactMap(\.setName) } })
        sets = sets.filter { usedSets.contains($0.name) }
        return Table(family: c.ipv4Only ? .ip : .inet, name: tableName, sets: sets, chains: chains)
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
