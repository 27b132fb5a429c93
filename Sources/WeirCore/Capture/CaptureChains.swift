/// The rules of each chain of the capture table, one builder per chain group, over the sets of `CaptureSets`.
struct CaptureChains {
    let config: CaptureConfig
    let sets: CaptureSets

    private typealias R = CaptureRuleset
    private var c: CaptureConfig { config }
    private var families: [IPFamily] { config.families }
    private let counter = Statement.counter
    private var ret: [Statement] { [counter, .verdict(.return)] }
    private func jump(_ chain: String) -> [Statement] { [counter, .verdict(.jump(chain))] }
    private func loopback(_ f: IPFamily) -> CIDR { f == .ipv4 ? c.ipv4LoopbackCIDR : R.loopback6 }
    private func passthrough(_ f: IPFamily) -> CIDR {
        f == .ipv4 ? R.inboundPassthroughSource4 : R.inboundPassthroughSource6
    }
    /// The proxy's owners: each UID, then each GID.
    private var owners: [Match] {
        c.proxyUIDs.map { .skuid($0, negated: false) } + c.proxyGIDs.map { .skgid($0, negated: false) }
    }

    /// nat prerouting: excluded and virtual interfaces, then inbound capture (REDIRECT mode); and its `inbound`.
    func natInbound() -> (prerouting: [Rule], inbound: [Rule]) {
        var prerouting: [Rule] = []
        if let s = sets.excludeInterfaces { prerouting.append(Rule([.iifnameInSet(s)], ret)) }
        if let s = sets.virtualInterfaces {
            switch c.outboundIncludeCIDRs {
            case .all: prerouting.append(Rule([.iifnameInSet(s)], jump(R.redirect)))
            case .list:
                for f in families {
                    for inc in sets.outboundInclude[f] ?? [] {
                        prerouting.append(Rule([.iifnameInSet(s), .daddrInSet(f, set: inc)], jump(R.redirect)))
                    }
                }
            case .none: break
            }
            prerouting.append(Rule([.iifnameInSet(s)], ret))
        }
        guard c.mode == .redirect else { return (prerouting, []) }
        if c.inboundPorts != .none { prerouting.append(Rule([.l4proto(.tcp)], jump(R.inbound))) }
        var inbound = [Rule([.l4proto(.tcp), .dport(.tcp, c.inboundTunnelPort, negated: false)], ret)]
        switch c.inboundPorts {
        case .all:
            if let s = sets.inboundPortsExclude { inbound.append(Rule([.dportInSet(.tcp, set: s)], ret)) }
            inbound.append(Rule([.l4proto(.tcp)], jump(R.inRedirect)))
        case .list:
            inbound.append(Rule([.dportInSet(.tcp, set: sets.inboundPorts!)], jump(R.inRedirect)))
        case .none: break
        }
        return (prerouting, inbound)
    }

    /// nat output and `outbound`: istio's ISTIO_OUTPUT, in istio's order.
    func outbound() -> (output: [Rule], outbound: [Rule]) {
        var output: [Rule] = []
        if let s = sets.excludeInterfaces { output.append(Rule([.oifnameInSet(s)], ret)) }
        output.append(Rule([], jump(R.outbound)))

        var rules: [Rule] = []
        if let s = sets.outboundPortsExclude {
            rules.append(Rule([.dportInSet(.tcp, set: s)], ret))
            rules.append(Rule([.dportInSet(.udp, set: s)], ret))
        }
        for f in families { rules.append(Rule([.oifname("lo"), .saddr(passthrough(f))], ret)) }
        if c.mode == .tproxy {
            // weir's own TPROXY hand-off: the proxy's upstream socket to the application is IP_TRANSPARENT, bound to
            // the client's address and marked with -t. Without this return the next rule (proxy UID on lo) would
            // redirect that SYN back to the inbound capture port, a loop. Only a socket with CAP_NET_ADMIN can set
            // the mark, so no application connection is affected.
            rules.append(Rule([.oifname("lo"), .l4proto(.tcp), .mark(c.tproxyMark, negated: false)], ret))
        }
        for uid in c.proxyUIDs { rules += ownerRules(uid, skipsDNS: true) { .skuid($0, negated: $1) } }
        for gid in c.proxyGIDs { rules += ownerRules(gid, skipsDNS: false) { .skgid($0, negated: $1) } }
        if let s = sets.groupsInclude { rules.append(Rule([.skgidInSet(set: s, negated: true)], ret)) }
        if let s = sets.groupsExclude { rules.append(Rule([.skgidInSet(set: s, negated: false)], ret)) }
        if c.capturesDNS { rules.append(Rule([], jump(R.redirectDNS))) }
        for f in families { rules.append(Rule([.daddr(loopback(f), negated: false)], ret)) }
        for f in families {
            for s in sets.outboundExclude[f] ?? [] { rules.append(Rule([.daddrInSet(f, set: s)], ret)) }
        }
        if let s = sets.outboundPortsInclude { rules.append(Rule([.dportInSet(.tcp, set: s)], jump(R.redirect))) }
        switch c.outboundIncludeCIDRs {
        case .all: rules.append(Rule([], jump(R.redirect)))
        case .list:
            for f in families {
                for s in sets.outboundInclude[f] ?? [] {
                    rules.append(Rule([.daddrInSet(f, set: s)], jump(R.redirect)))
                }
            }
        case .none: break
        }
        return (output, rules)
    }

    /// The rules of one proxy owner (a UID or a GID) in `outbound`. With DNS capture, istio keeps TCP port 53 out of
    /// the two lo rules so a DNS server on lo is still captured (and the proxy's own queries go to the server, not
    /// back to the inbound port). The GID jump keeps 53, as both istio backends have it.
    private func ownerRules(_ id: UInt32, skipsDNS: Bool, _ owner: (UInt32, Bool) -> Match) -> [Rule] {
        let dns = c.capturesDNS
        let notDNS = Match.dport(.tcp, R.dnsPort, negated: true)
        var rules: [Rule] = []
        for f in families {
            rules.append(Rule(
                [.oifname("lo"), .l4proto(.tcp), .daddr(loopback(f), negated: true)]
                    + (dns && skipsDNS ? [notDNS] : [])
                    + [.dport(.tcp, c.inboundTunnelPort, negated: true), owner(id, false)],
                jump(R.inRedirect)))
        }
        var loopbackIncluded = false
        if case .list(let list) = c.outboundIncludeCIDRs { loopbackIncluded = list.contains { $0.isLoopback } }
        if !loopbackIncluded {
            let matches: [Match] = dns ? [.oifname("lo"), .l4proto(.tcp), notDNS, owner(id, true)]
                                       : [.oifname("lo"), owner(id, true)]
            rules.append(Rule(matches, ret))
        }
        rules.append(Rule([owner(id, false)], ret))
        return rules
    }

    /// DNS: queries to the servers (or to any server with --capture-all-dns) go to the agent's DNS port, TCP and
    /// UDP. Conntrack zones keep the two legs of a UDP query apart: the application's query to the server and the
    /// agent's answer (sport 15053) in zone 2, the agent's own query upstream and the server's answer in zone 1.
    func dns() -> (redirect: [Rule], rawOutput: [Rule], rawPrerouting: [Rule]) {
        guard c.capturesDNS else { return ([], [], []) }
        let port = R.dnsPort
        var redirect: [Rule] = []
        let redirectToAgent: [Statement] = [counter, .redirect(port: c.dnsProxyPort)]
        for p in [L4Proto.tcp, .udp] {
            if c.captureAllDNS { redirect.append(Rule([.dport(p, port, negated: false)], redirectToAgent)) }
            for f in families {
                if let s = sets.dnsServers[f] {
                    redirect.append(Rule([.daddrInSet(f, set: s), .dport(p, port, negated: false)], redirectToAgent))
                }
            }
        }
        var rawOutput: [Rule] = []
        var rawPrerouting: [Rule] = []
        for owner in owners {
            rawOutput.append(Rule([.dport(.udp, port, negated: false), owner], [counter, .setCtZone(1)]))
            rawOutput.append(Rule([.sport(.udp, c.dnsProxyPort), owner], [counter, .setCtZone(2)]))
        }
        if c.captureAllDNS {
            rawOutput.append(Rule([.dport(.udp, port, negated: false)], [counter, .setCtZone(2)]))
            rawPrerouting.append(Rule([.sport(.udp, port)], [counter, .setCtZone(1)]))
        }
        for f in families {
            if let s = sets.dnsServers[f] {
                rawOutput.append(Rule([.dport(.udp, port, negated: false), .daddrInSet(f, set: s)],
                                      [counter, .setCtZone(2)]))
                rawPrerouting.append(Rule([.sport(.udp, port), .saddrInSet(f, set: s)], [counter, .setCtZone(1)]))
            }
        }
        return (redirect, rawOutput, rawPrerouting)
    }

    /// The first rule of the nat `output` chain: weir's conntrack mark on every new TCP connection of the proxy's UID,
    /// set only where no other mark is (see `UpstreamConntrack`); none without a UID. No verdict: the connection
    /// goes on through the chain exactly as Istio's rules would take it.
    func upstreamMark() -> [Rule] {
        guard let uid = c.proxyUIDs.first else { return [] }
        return [Rule([.l4proto(.tcp), .ctState(.new), .skuid(uid, negated: false), .ctMark(0)],
                     [counter, .setCtMark(UpstreamConntrack.mark)])]
    }

    /// Mangle-priority chains: TPROXY inbound capture and the invalid-state drop.
    func mangle() -> (prerouting: [Rule], tproxyInbound: [Rule], tproxy: [Rule], output: [Rule]) {
        var prerouting: [Rule] = []
        if c.mode == .tproxy || c.dropInvalid {
            if let s = sets.excludeInterfaces { prerouting.append(Rule([.iifnameInSet(s)], ret)) }
        }
        if c.dropInvalid {
            prerouting.append(Rule([.l4proto(.tcp), .ctState(.invalid)], jump(R.dropInvalid)))
        }
        guard c.mode == .tproxy else { return (prerouting, [], [], []) }
        let mark = c.tproxyMark
        prerouting.append(Rule([.l4proto(.tcp)], jump(R.tproxyInbound)))
        prerouting.append(Rule([.l4proto(.tcp), .mark(mark, negated: false)], [counter, .setCtMarkFromMark]))
        return (prerouting, tproxyInbound(), tproxyCapture(), tproxyOutput())
    }

    /// `tproxy-inbound`: what TPROXY mode captures of inbound TCP.
    private func tproxyInbound() -> [Rule] {
        var rules = [Rule([.l4proto(.tcp), .mark(c.tproxyMark, negated: false)], ret)]
        for f in families { rules.append(Rule([.iifname("lo"), .l4proto(.tcp), .saddr(passthrough(f))], ret)) }
        rules.append(Rule([.iifname("lo"), .l4proto(.tcp), .mark(R.outboundToSelfMark, negated: true)], ret))
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
            if let s = sets.inboundPortsExclude { rules.append(Rule([.dportInSet(.tcp, set: s)], ret)) }
            rules.append(Rule([.l4proto(.tcp), established, notSYN], jump(R.tproxyDivert)))
            rules.append(Rule([.l4proto(.tcp)], jump(R.tproxy)))
        case .list:
            let s = sets.inboundPorts!
            rules.append(Rule([.dportInSet(.tcp, set: s), established, notSYN], jump(R.tproxyDivert)))
            rules.append(Rule([.dportInSet(.tcp, set: s)], jump(R.tproxy)))
        case .none: break
        }
        return rules
    }

    /// `tproxy-capture`: hand the connection to the proxy's inbound port, or drop it when nothing listens there.
    private func tproxyCapture() -> [Rule] {
        var rules: [Rule] = []
        for f in families {
            rules.append(Rule(
                [.l4proto(.tcp), .daddr(loopback(f), negated: true)],
                [.tproxy(f, port: c.inboundCapturePort), .setMark(c.tproxyMark), counter, .verdict(.accept)]))
        }
        // Nothing listens on the capture port (the proxy is restarting): nft's tproxy falls through to the next
        // rule, and without these the packet would reach the application directly, uncaptured. Drop it, as
        // istio-iptables' TPROXY target does; the client retransmits its SYN until the proxy is back.
        for f in families {
            rules.append(Rule([.l4proto(.tcp), .daddr(loopback(f), negated: true)], [counter, .verdict(.drop)]))
        }
        return rules
    }

    /// `mangle-output`: the proxy's own connections to its pod address over lo, and replies of TPROXY connections.
    private func tproxyOutput() -> [Rule] {
        var rules: [Rule] = []
        if let s = sets.excludeInterfaces { rules.append(Rule([.oifnameInSet(s)], ret)) }
        rules.append(Rule([.oifname("lo"), .l4proto(.tcp), .mark(c.tproxyMark, negated: false)], ret))
        for owner in owners {
            for f in families {
                rules.append(Rule([.oifname("lo"), .l4proto(.tcp), .daddr(loopback(f), negated: true), owner],
                                  [counter, .setMark(R.outboundToSelfMark)]))
            }
        }
        rules.append(Rule([.l4proto(.tcp), .ctMark(c.tproxyMark)], [counter, .setMarkFromCtMark]))
        return rules
    }
}
