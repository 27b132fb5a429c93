import CNetfilter
import WeirCore
import WeirSystem

/// rtnetlink for TPROXY's policy routing and the inbound hand-off address. Everything weir adds carries protocol
/// `RouteClient.weirProtocol`, which is how `weir clean` finds it again whatever flags installed it.
public final class RouteClient {
    /// Route/rule/address protocol number marking weir's objects (shown as `proto 87` by `ip`).
    public static let weirProtocol: UInt8 = 87

    private let socket: NetlinkSocket

    public init() throws {
        socket = try NetlinkSocket.opened(.route)
    }

    /// One request: its message and sequence number. `build` adds the fixed header and the attributes.
    private func request(_ type: Int32, flags: NetlinkFlags, build: (NetlinkRequest) -> Void)
        -> (NetlinkRequest, UInt32)
    {
        let sequence = socket.nextSequence()
        let request = NetlinkRequest(capacity: 256)
        request.begin(type: UInt16(type), flags: flags.union(.request), sequence: sequence)
        build(request)
        return (request, sequence)
    }

    private func af(_ f: IPFamily) -> UInt8 { f == .ipv4 ? UInt8(AF_INET) : UInt8(AF_INET6) }

    // MARK: Rules

    struct RuleRecord {
        let family: IPFamily
        let header: [UInt8]
        let attributes: [UInt16: [UInt8]]
        var mark: UInt32? { attributes[UInt16(FRA_FWMARK)].map(u32) }
        var table: UInt32 { attributes[UInt16(FRA_TABLE)].map(u32) ?? UInt32(header[4]) }
        var proto: UInt8 { attributes[UInt16(FRA_PROTOCOL)]?.first ?? 0 }
    }

    /// Dumps one kind of rtnetlink object of one address family. Every such header (fib_rule_hdr, rtmsg, ifaddrmsg)
    /// starts with the family byte. Returns each reply's fixed header and attributes.
    private func dump(_ request: Int32, reply: Int32, headerSize: Int, family: UInt8, _ operation: NetlinkOperation) throws
        -> [(header: [UInt8], attributes: [UInt16: [UInt8]])]
    {
        let (req, seq) = self.request(request, flags: .dump) {
            $0.put(headerBytes: [family] + [UInt8](repeating: 0, count: headerSize - 1))
        }
        return Self.records(try socket.transact(req, sequence: seq, dump: true, operation), reply: reply,
                            headerSize: headerSize, family: family)
    }

    /// The replies of type `reply` and address family `family`: each one's fixed header and attributes.
    static func records(_ messages: [NetlinkMessage], reply: Int32, headerSize: Int, family: UInt8)
        -> [(header: [UInt8], attributes: [UInt16: [UInt8]])]
    {
        messages.compactMap { m in
            guard m.type == UInt16(reply), let header = m.fixedHeader(headerSize), header.first == family else {
                return nil
            }
            return (Array(header), m.attributes(after: headerSize).byType().mapValues { Array($0) })
        }
    }

    func rules(_ family: IPFamily) throws -> [RuleRecord] {
        try dump(Int32(RTM_GETRULE), reply: Int32(RTM_NEWRULE), headerSize: MemoryLayout<fib_rule_hdr>.size,
                 family: af(family), NetlinkOperation(.dump, .ipRule, "list ip rules"))
            .map { RuleRecord(family: family, header: $0.header, attributes: $0.attributes) }
    }

    private func ruleMessage(_ type: Int32, flags: NetlinkFlags, family: IPFamily, mark: UInt32, table: UInt32,
                             proto: UInt8) -> (NetlinkRequest, UInt32) {
        request(type, flags: flags) {
            var frh = fib_rule_hdr()
            frh.family = af(family)
            frh.action = UInt8(FR_ACT_TO_TBL)
            frh.table = table < 256 ? UInt8(table) : UInt8(RT_TABLE_UNSPEC.rawValue)
            $0.put(header: frh)
            $0.put(UInt16(FRA_FWMARK), mark)
            $0.put(UInt16(FRA_TABLE), table)
            $0.put(UInt16(FRA_PROTOCOL), proto)
        }
    }

    // MARK: Routes

    struct RouteRecord {
        let family: IPFamily
        let header: [UInt8]  // struct rtmsg
        let attributes: [UInt16: [UInt8]]
        var table: UInt32 { attributes[UInt16(RTA_TABLE.rawValue)].map(u32) ?? UInt32(header[4]) }
        var proto: UInt8 { header[5] }
        var type: UInt8 { header[7] }
        var dstLength: UInt8 { header[1] }
        var oif: UInt32? { attributes[UInt16(RTA_OIF.rawValue)].map(u32) }
    }

    func routes(_ family: IPFamily) throws -> [RouteRecord] {
        try dump(Int32(RTM_GETROUTE), reply: Int32(RTM_NEWROUTE), headerSize: MemoryLayout<rtmsg>.size,
                 family: af(family), NetlinkOperation(.dump, .route, "list routes"))
            .map { RouteRecord(family: family, header: $0.header, attributes: $0.attributes) }
    }

    private func routeMessage(_ type: Int32, flags: NetlinkFlags, family: IPFamily, table: UInt32, proto: UInt8,
                              loopbackIndex: UInt32) -> (NetlinkRequest, UInt32) {
        request(type, flags: flags) {
            var rtm = rtmsg()
            rtm.rtm_family = af(family)
            rtm.rtm_dst_len = 0
            rtm.rtm_table = table < 256 ? UInt8(table) : UInt8(RT_TABLE_UNSPEC.rawValue)
            rtm.rtm_protocol = proto
            rtm.rtm_scope = UInt8(RT_SCOPE_HOST.rawValue)
            rtm.rtm_type = UInt8(RTN_LOCAL)
            $0.put(header: rtm)
            $0.put(UInt16(RTA_TABLE.rawValue), table)
            $0.put(UInt16(RTA_OIF.rawValue), loopbackIndex)
        }
    }

    private func run(_ message: (NetlinkRequest, UInt32), _ operation: NetlinkOperation) throws {
        _ = try socket.transact(message.0, sequence: message.1, dump: false, operation)
    }

    // MARK: Public API

    /// The loopback interface's index, which weir's routes and address name.
    private func loopback() throws -> UInt32 {
        guard let lo = Netlink.interfaceIndex("lo") else {
            throw NetlinkError(NetlinkOperation(.get, .interface, "find interface lo"), errno: Errno.ENODEV)
        }
        return lo
    }

    /// Ensures `ip rule fwmark MARK lookup TABLE` and `ip route local default dev lo table TABLE` for each family.
    /// Returns what was added (empty when everything was already there).
    @discardableResult
    public func ensureTPROXYRouting(mark: UInt32, table: UInt32, families: [IPFamily]) throws -> [RoutingObject] {
        let lo = try loopback()
        var added: [RoutingObject] = []
        do {
            for f in families {
                if try !hasRule(f, mark: mark, table: table) {
                    let rule = RoutingObject.rule(f, mark: mark, table: table)
                    try run(ruleMessage(Int32(RTM_NEWRULE), flags: [.create, .ack], family: f, mark: mark,
                                        table: table, proto: Self.weirProtocol), NetlinkOperation(.new, .ipRule, "add \(rule)"))
                    added.append(rule)
                }
                if try !hasLocalRoute(f, table: table, loopback: lo) {
                    let route = RoutingObject.localRoute(f, table: table)
                    try run(routeMessage(Int32(RTM_NEWROUTE), flags: [.create, .replace, .ack], family: f, table: table,
                                         proto: Self.weirProtocol, loopbackIndex: lo), NetlinkOperation(.new, .route, "add \(route)"))
                    added.append(route)
                }
            }
        } catch var e as NetlinkError {
            e.alreadyDone = added
            throw e
        }
        return added
    }

    // What the ensure* calls check before adding, and missingRouting reports.
    private func hasRule(_ f: IPFamily, mark: UInt32, table: UInt32) throws -> Bool {
        try rules(f).contains { $0.mark == mark && $0.table == table }
    }

    private func hasLocalRoute(_ f: IPFamily, table: UInt32, loopback lo: UInt32) throws -> Bool {
        try routes(f).contains { $0.table == table && $0.type == UInt8(RTN_LOCAL) && $0.dstLength == 0 && $0.oif == lo }
    }

    private func hasPassthroughAddress(loopback lo: UInt32) throws -> Bool {
        try addresses().contains { $0.index == lo && $0.address == Self.passthrough6 }
    }

    /// What `ensureTPROXYRouting` (when `tproxy` is given) and `ensurePassthroughAddress` (when `address`) would add,
    /// without adding it.
    public func missingRouting(tproxy: (mark: UInt32, table: UInt32)?, families: [IPFamily], address: Bool) throws
        -> [RoutingObject] {
        // No lo (index 0) matches no route or address: all of them are reported missing.
        let lo = Netlink.interfaceIndex("lo") ?? 0
        var out: [RoutingObject] = []
        if let (mark, table) = tproxy {
            for f in families {
                if try !hasRule(f, mark: mark, table: table) { out.append(.rule(f, mark: mark, table: table)) }
                if try !hasLocalRoute(f, table: table, loopback: lo) { out.append(.localRoute(f, table: table)) }
            }
        }
        if address, try !hasPassthroughAddress(loopback: lo) { out.append(.passthroughAddress) }
        return out
    }

    /// Ensures `::6/128` on `lo` (the inbound hand-off source). Returns true if it was added.
    @discardableResult
    public func ensurePassthroughAddress() throws -> Bool {
        let lo = try loopback()
        if try hasPassthroughAddress(loopback: lo) { return false }
        let message = addressMessage(Int32(RTM_NEWADDR), flags: [.create, .exclusive, .ack], index: lo,
                                     proto: Self.weirProtocol)
        try run(message, NetlinkOperation(.new, .address, "add \(RoutingObject.passthroughAddress)"))
        return true
    }

    static let passthrough6: [UInt8] = [UInt8](repeating: 0, count: 15) + [6]

    struct AddressRecord {
        let index: UInt32
        let prefixLength: UInt8
        let address: [UInt8]
        let proto: UInt8

        /// From a reply's `struct ifaddrmsg` (family, prefixlen, flags, scope, index as u32 at offset 4) and its
        /// attributes. IFA_PROTO (kernel >= 6.3) is attribute 11.
        init(header h: [UInt8], attributes a: [UInt16: [UInt8]]) {
            index = u32(h[4..<8])
            prefixLength = h[1]
            address = a[UInt16(IFA_ADDRESS)] ?? []
            proto = a[11]?.first ?? 0
        }
    }

    /// IPv6 addresses (the only family weir adds one to).
    func addresses() throws -> [AddressRecord] {
        try dump(Int32(RTM_GETADDR), reply: Int32(RTM_NEWADDR), headerSize: MemoryLayout<ifaddrmsg>.size,
                 family: UInt8(AF_INET6), NetlinkOperation(.dump, .address, "list addresses")).map(AddressRecord.init)
    }

    private func addressMessage(_ type: Int32, flags: NetlinkFlags, index: UInt32, proto: UInt8?)
        -> (NetlinkRequest, UInt32)
    {
        request(type, flags: flags) {
            var ifa = ifaddrmsg()
            ifa.ifa_family = UInt8(AF_INET6)
            ifa.ifa_prefixlen = 128
            ifa.ifa_flags = UInt8(IFA_F_NODAD)
            ifa.ifa_scope = UInt8(RT_SCOPE_HOST.rawValue)
            ifa.ifa_index = index
            $0.put(header: ifa)
            $0.put(UInt16(IFA_LOCAL), bytes: Self.passthrough6)
            $0.put(UInt16(IFA_ADDRESS), bytes: Self.passthrough6)
            $0.put(UInt16(IFA_FLAGS), UInt32(IFA_F_NODAD))
            if let proto { $0.put(11, proto) }
        }
    }

    /// Removes every rule, route and address weir added (found by protocol), nothing else, except what `keep` names.
    /// Returns what it removed.
    @discardableResult
    public func removeWeirRouting(keeping keep: (mark: UInt32, table: UInt32, families: [IPFamily])? = nil,
                                  keepAddress: Bool = false) throws -> [RoutingObject] {
        var removed: [RoutingObject] = []
        for f in [IPFamily.ipv4, .ipv6] {
            let kept = keep.map { $0.families.contains(f) } ?? false
            for r in try rules(f) where r.proto == Self.weirProtocol
                && !(kept && r.mark == keep!.mark && r.table == keep!.table) {
                let rule = RoutingObject.rule(f, mark: r.mark ?? 0, table: r.table)
                try run(request(Int32(RTM_DELRULE), flags: .ack) {
                    $0.put(headerBytes: r.header.prefix(MemoryLayout<fib_rule_hdr>.size))
                    for (type, value) in r.attributes.sorted(by: { $0.key < $1.key }) { $0.put(type, bytes: value) }
                }, NetlinkOperation(.delete, .ipRule, "delete \(rule)"))
                removed.append(rule)
            }
            for r in try routes(f) where r.proto == Self.weirProtocol && !(kept && r.table == keep!.table) {
                try run(request(Int32(RTM_DELROUTE), flags: .ack) {
                    $0.put(headerBytes: r.header.prefix(MemoryLayout<rtmsg>.size))
                    $0.put(UInt16(RTA_TABLE.rawValue), r.table)
                    if let oif = r.oif { $0.put(UInt16(RTA_OIF.rawValue), oif) }
                }, NetlinkOperation(.delete, .route, "delete ip \(f.flag) route local default table \(r.table)"))
                removed.append(.localRoute(f, table: r.table))
            }
        }
        for a in try addresses() where !keepAddress && a.proto == Self.weirProtocol && a.address == Self.passthrough6 {
            let address = RoutingObject.passthroughAddress
            try run(addressMessage(Int32(RTM_DELADDR), flags: .ack, index: a.index, proto: nil),
                    NetlinkOperation(.delete, .address, "delete \(address)"))
            removed.append(address)
        }
        return removed
    }
}

/// One object of weir's policy routing, as `RoutingBackend` adds, removes and reports it; described as `ip` would
/// name it (`weir rules` prints these).
public enum RoutingObject: Hashable, Sendable, CustomStringConvertible {
    /// `ip -4 rule fwmark MARK lookup TABLE`
    case rule(IPFamily, mark: UInt32, table: UInt32)
    /// `ip -4 route local default dev lo table TABLE`
    case localRoute(IPFamily, table: UInt32)
    /// `::6/128` on lo, the inbound hand-off source.
    case passthroughAddress

    public var description: String {
        switch self {
        case .rule(let f, let mark, let table): return "ip \(f.flag) rule fwmark \(mark) lookup \(table)"
        case .localRoute(let f, let table): return "ip \(f.flag) route local default dev lo table \(table)"
        case .passthroughAddress: return "address ::6/128 dev lo"
        }
    }
}

extension IPFamily {
    /// `ip`'s family flag.
    var flag: String { self == .ipv4 ? "-4" : "-6" }
}

/// A u32 attribute or header field in host order; 0 when shorter (a malformed reply is not weir's object).
private func u32<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
    bytes.count >= 4 ? Array(bytes.prefix(4)).withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) } : 0
}
