import CNetfilter
import Glibc
import WeirCore

/// rtnetlink for TPROXY's policy routing and the inbound hand-off address. Everything weir adds carries protocol
/// `RouteClient.weirProtocol`, which is how `weir clean` finds it again whatever flags installed it.
public final class RouteClient {
    /// Route/rule/address protocol number marking weir's objects (shown as `proto 87` by `ip`).
    public static let weirProtocol: UInt8 = 87

    private let socket: NetlinkSocket

    public init() throws {
        socket = try NetlinkSocket(bus: NETLINK_ROUTE)
    }

    /// A policy rule `fwmark MARK lookup TABLE` or a `local default dev lo table TABLE` route, as found.
    public struct Entry: Equatable, Sendable, CustomStringConvertible {
        public let family: IPFamily
        public let description: String
    }

    private func request(_ type: Int32, flags: Int32, build: (UnsafeMutablePointer<nlmsghdr>) -> Void) -> ([UInt8], UInt32) {
        var buf = [UInt8](repeating: 0, count: 1024)
        let seq = socket.nextSequence()
        let len = buf.withUnsafeMutableBytes { raw -> Int in
            let nlh = mnl_nlmsg_put_header(raw.baseAddress)!
            nlh.pointee.nlmsg_type = UInt16(type)
            nlh.pointee.nlmsg_flags = UInt16(NLM_F_REQUEST | flags)
            nlh.pointee.nlmsg_seq = seq
            build(nlh)
            return Int(nlh.pointee.nlmsg_len)
        }
        return (Array(buf[0..<len]), seq)
    }

    private func af(_ f: IPFamily) -> UInt8 { f == .ipv4 ? UInt8(AF_INET) : UInt8(AF_INET6) }

    // MARK: Rules

    struct RuleRecord {
        let family: IPFamily
        let header: [UInt8]
        let attributes: [UInt16: [UInt8]]
        var mark: UInt32? { attributes[UInt16(FRA_FWMARK)]?.u32 }
        var table: UInt32 { attributes[UInt16(FRA_TABLE)]?.u32 ?? UInt32(header[4]) }
        var proto: UInt8 { attributes[UInt16(FRA_PROTOCOL)]?.u8 ?? 0 }
    }

    /// Dumps one kind of rtnetlink object of one address family. Every such header (fib_rule_hdr, rtmsg, ifaddrmsg)
    /// starts with the family byte. Returns each reply's fixed header and attributes.
    private func dump(_ request: Int32, reply: Int32, headerSize: Int, family: UInt8, operation: String) throws
        -> [(header: [UInt8], attributes: [UInt16: [UInt8]])]
    {
        let (req, seq) = self.request(request, flags: NLM_F_DUMP) { nlh in
            mnl_nlmsg_put_extra_header(nlh, headerSize)!.storeBytes(of: family, as: UInt8.self)
        }
        return Self.records(try socket.transact(req, sequence: seq, dump: true, operation: operation), reply: reply,
                            headerSize: headerSize, family: family)
    }

    /// The replies of type `reply` and address family `family`: each one's fixed header and attributes.
    static func records(_ messages: [NetlinkMessage], reply: Int32, headerSize: Int, family: UInt8)
        -> [(header: [UInt8], attributes: [UInt16: [UInt8]])]
    {
        messages.compactMap { m in
            guard m.type == UInt16(reply), m.bytes.count >= 16 + headerSize, m.bytes[16] == family else { return nil }
            return (Array(m.bytes[16..<(16 + headerSize)]), m.attributes(after: headerSize))
        }
    }

    func rules(_ family: IPFamily) throws -> [RuleRecord] {
        try dump(Int32(RTM_GETRULE), reply: Int32(RTM_NEWRULE), headerSize: MemoryLayout<fib_rule_hdr>.size,
                 family: af(family), operation: "list ip rules")
            .map { RuleRecord(family: family, header: $0.header, attributes: $0.attributes) }
    }

    private func ruleMessage(_ type: Int32, flags: Int32, family: IPFamily, mark: UInt32?, table: UInt32,
                             proto: UInt8?, priority: UInt32?) -> ([UInt8], UInt32) {
        request(type, flags: flags) { nlh in
            let frh = mnl_nlmsg_put_extra_header(nlh, MemoryLayout<fib_rule_hdr>.size)!
                .assumingMemoryBound(to: fib_rule_hdr.self)
            frh.pointee.family = af(family)
            frh.pointee.action = UInt8(FR_ACT_TO_TBL)
            frh.pointee.table = table < 256 ? UInt8(table) : UInt8(RT_TABLE_UNSPEC.rawValue)
            if let mark { mnl_attr_put_u32(nlh, UInt16(FRA_FWMARK), mark) }
            mnl_attr_put_u32(nlh, UInt16(FRA_TABLE), table)
            if let proto { mnl_attr_put_u8(nlh, UInt16(FRA_PROTOCOL), proto) }
            if let priority { mnl_attr_put_u32(nlh, UInt16(FRA_PRIORITY), priority) }
        }
    }

    // MARK: Routes

    struct RouteRecord {
        let family: IPFamily
        let header: [UInt8]  // struct rtmsg
        let attributes: [UInt16: [UInt8]]
        var table: UInt32 { attributes[UInt16(RTA_TABLE.rawValue)]?.u32 ?? UInt32(header[4]) }
        var proto: UInt8 { header[5] }
        var type: UInt8 { header[7] }
        var dstLength: UInt8 { header[1] }
        var oif: UInt32? { attributes[UInt16(RTA_OIF.rawValue)]?.u32 }
    }

    func routes(_ family: IPFamily) throws -> [RouteRecord] {
        try dump(Int32(RTM_GETROUTE), reply: Int32(RTM_NEWROUTE), headerSize: MemoryLayout<rtmsg>.size,
                 family: af(family), operation: "list routes")
            .map { RouteRecord(family: family, header: $0.header, attributes: $0.attributes) }
    }

    private func routeMessage(_ type: Int32, flags: Int32, family: IPFamily, table: UInt32, proto: UInt8,
                              loopbackIndex: UInt32) -> ([UInt8], UInt32) {
        request(type, flags: flags) { nlh in
            let rtm = mnl_nlmsg_put_extra_header(nlh, MemoryLayout<rtmsg>.size)!.assumingMemoryBound(to: rtmsg.self)
            rtm.pointee.rtm_family = af(family)
            rtm.pointee.rtm_dst_len = 0
            rtm.pointee.rtm_table = table < 256 ? UInt8(table) : UInt8(RT_TABLE_UNSPEC.rawValue)
            rtm.pointee.rtm_protocol = proto
            rtm.pointee.rtm_scope = UInt8(RT_SCOPE_HOST.rawValue)
            rtm.pointee.rtm_type = UInt8(RTN_LOCAL)
            mnl_attr_put_u32(nlh, UInt16(RTA_TABLE.rawValue), table)
            mnl_attr_put_u32(nlh, UInt16(RTA_OIF.rawValue), loopbackIndex)
        }
    }

    private func run(_ message: ([UInt8], UInt32), operation: String) throws {
        _ = try socket.transact(message.0, sequence: message.1, dump: false, operation: operation)
    }

    // MARK: Public API

    /// Ensures `ip rule fwmark MARK lookup TABLE` and `ip route local default dev lo table TABLE` for each family.
    /// Returns what was added (empty when everything was already there).
    @discardableResult
    public func ensureTPROXYRouting(mark: UInt32, table: UInt32, families: [IPFamily]) throws -> [String] {
        let lo = if_nametoindex("lo")
        guard lo != 0 else { throw NetlinkError("find interface lo", errno: ENODEV) }
        var added: [String] = []
        do {
            for f in families {
                let v = f == .ipv4 ? "-4" : "-6"
                if try !hasRule(f, mark: mark, table: table) {
                    try run(ruleMessage(Int32(RTM_NEWRULE), flags: NLM_F_CREATE | NLM_F_ACK, family: f, mark: mark,
                                        table: table, proto: Self.weirProtocol, priority: nil),
                            operation: "add ip \(v) rule fwmark \(mark) lookup \(table)")
                    added.append("ip \(v) rule fwmark \(mark) lookup \(table)")
                }
                if try !hasLocalRoute(f, table: table, loopback: lo) {
                    try run(routeMessage(Int32(RTM_NEWROUTE), flags: NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK, family: f,
                                         table: table, proto: Self.weirProtocol, loopbackIndex: lo),
                            operation: "add ip \(v) route local default dev lo table \(table)")
                    added.append("ip \(v) route local default dev lo table \(table)")
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
        -> [String] {
        let lo = if_nametoindex("lo")
        var out: [String] = []
        if let (mark, table) = tproxy {
            for f in families {
                let v = f == .ipv4 ? "-4" : "-6"
                if try !hasRule(f, mark: mark, table: table) {
                    out.append("ip \(v) rule fwmark \(mark) lookup \(table) is missing")
                }
                if try !hasLocalRoute(f, table: table, loopback: lo) {
                    out.append("ip \(v) route local default dev lo table \(table) is missing")
                }
            }
        }
        if address, try !hasPassthroughAddress(loopback: lo) {
            out.append("address ::6/128 dev lo is missing")
        }
        return out
    }

    /// Ensures `::6/128` on `lo` (the inbound hand-off source). Returns true if it was added.
    @discardableResult
    public func ensurePassthroughAddress() throws -> Bool {
        let lo = if_nametoindex("lo")
        guard lo != 0 else { throw NetlinkError("find interface lo", errno: ENODEV) }
        if try hasPassthroughAddress(loopback: lo) { return false }
        let msg = addressMessage(Int32(RTM_NEWADDR), flags: NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, index: lo,
                                 proto: Self.weirProtocol)
        try run(msg, operation: "add address ::6/128 dev lo")
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
            index = Array(h[4..<8]).u32
            prefixLength = h[1]
            address = a[UInt16(IFA_ADDRESS)] ?? []
            proto = a[11]?.u8 ?? 0
        }
    }

    /// IPv6 addresses (the only family weir adds one to).
    func addresses() throws -> [AddressRecord] {
        try dump(Int32(RTM_GETADDR), reply: Int32(RTM_NEWADDR), headerSize: MemoryLayout<ifaddrmsg>.size,
                 family: UInt8(AF_INET6), operation: "list addresses").map(AddressRecord.init)
    }

    private func addressMessage(_ type: Int32, flags: Int32, index: UInt32, proto: UInt8?) -> ([UInt8], UInt32) {
        request(type, flags: flags) { nlh in
            let ifa = mnl_nlmsg_put_extra_header(nlh, MemoryLayout<ifaddrmsg>.size)!
                .assumingMemoryBound(to: ifaddrmsg.self)
            ifa.pointee.ifa_family = UInt8(AF_INET6)
            ifa.pointee.ifa_prefixlen = 128
            ifa.pointee.ifa_flags = UInt8(IFA_F_NODAD)
            ifa.pointee.ifa_scope = UInt8(RT_SCOPE_HOST.rawValue)
            ifa.pointee.ifa_index = index
            Self.passthrough6.withUnsafeBytes {
                mnl_attr_put(nlh, UInt16(IFA_LOCAL), 16, $0.baseAddress)
                mnl_attr_put(nlh, UInt16(IFA_ADDRESS), 16, $0.baseAddress)
            }
            mnl_attr_put_u32(nlh, UInt16(IFA_FLAGS), UInt32(IFA_F_NODAD))
            if let proto { mnl_attr_put_u8(nlh, 11, proto) }
        }
    }

    /// Removes every rule, route and address weir added (found by protocol), nothing else, except what `keep` names.
    /// Returns what it removed.
    @discardableResult
    public func removeWeirRouting(keeping keep: (mark: UInt32, table: UInt32, families: [IPFamily])? = nil,
                                  keepAddress: Bool = false) throws -> [String] {
        var removed: [String] = []
        for f in [IPFamily.ipv4, .ipv6] {
            let v = f == .ipv4 ? "-4" : "-6"
            let kept = keep.map { $0.families.contains(f) } ?? false
            for r in try rules(f) where r.proto == Self.weirProtocol
                && !(kept && r.mark == keep!.mark && r.table == keep!.table) {
                try run(request(Int32(RTM_DELRULE), flags: NLM_F_ACK) { nlh in
                    let size = MemoryLayout<fib_rule_hdr>.size
                    UnsafeMutableRawBufferPointer(start: mnl_nlmsg_put_extra_header(nlh, size), count: size)
                        .copyBytes(from: r.header.prefix(size))
                    for (type, value) in r.attributes.sorted(by: { $0.key < $1.key }) {
                        value.withUnsafeBytes { mnl_attr_put(nlh, type, $0.count, $0.baseAddress) }
                    }
                }, operation: "delete ip \(v) rule fwmark \(r.mark ?? 0) lookup \(r.table)")
                removed.append("ip \(v) rule fwmark \(r.mark ?? 0) lookup \(r.table)")
            }
            for r in try routes(f) where r.proto == Self.weirProtocol && !(kept && r.table == keep!.table) {
                try run(request(Int32(RTM_DELROUTE), flags: NLM_F_ACK) { nlh in
                    let size = MemoryLayout<rtmsg>.size
                    UnsafeMutableRawBufferPointer(start: mnl_nlmsg_put_extra_header(nlh, size), count: size)
                        .copyBytes(from: r.header.prefix(size))
                    mnl_attr_put_u32(nlh, UInt16(RTA_TABLE.rawValue), r.table)
                    if let oif = r.oif { mnl_attr_put_u32(nlh, UInt16(RTA_OIF.rawValue), oif) }
                }, operation: "delete ip \(v) route local default table \(r.table)")
                removed.append("ip \(v) route local default dev lo table \(r.table)")
            }
        }
        for a in try addresses() where !keepAddress && a.proto == Self.weirProtocol && a.address == Self.passthrough6 {
            try run(addressMessage(Int32(RTM_DELADDR), flags: NLM_F_ACK, index: a.index, proto: nil),
                    operation: "delete address ::6/128 dev lo")
            removed.append("address ::6/128 dev lo")
        }
        return removed
    }
}
