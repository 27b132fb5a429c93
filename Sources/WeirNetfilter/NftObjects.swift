// The batch encoder: WeirCore's `Table` -> libnftnl objects -> nfnetlink messages.
//
// Each match of the model becomes the expressions `nft` itself generates for it (checked against
// `nft --debug=netlink`), including the implicit dependencies nft adds: `meta nfproto` before an `ip`/`ip6` payload in
// an inet table, `meta l4proto` before a port. That is what makes `nft list` of our netlink ruleset identical to
// `nft list` of the same ruleset loaded with `nft -f`. Values go into register 1; verdicts into the verdict register.
import CNetfilter
import WeirCore
import WeirSystem

/// Attribute numbers of libnftnl's typed enums as the `uint16_t` its setters take.
@inline(__always) func attr<T: RawRepresentable>(_ a: T) -> UInt16 where T.RawValue: BinaryInteger {
    UInt16(truncatingIfNeeded: a.rawValue)
}

/// Expression attributes are `#define`d and import as `Int`.
@inline(__always) func attr(_ a: Int) -> UInt16 { UInt16(truncatingIfNeeded: a) }

/// `NF_NAT_RANGE_PROTO_SPECIFIED` (linux/netfilter/nf_nat.h), which nft sets on `redirect to :port`.
let natRangeProtoSpecified: UInt32 = 0x2

/// Kernel constants that import as typed enums, as plain integers.
@inline(__always) func num<T: RawRepresentable>(_ a: T) -> UInt32 where T.RawValue: BinaryInteger {
    UInt32(truncatingIfNeeded: a.rawValue)
}

extension TableFamily {
    var nfproto: UInt16 { self == .inet ? UInt16(NFPROTO_INET) : UInt16(NFPROTO_IPV4) }
}

let register1 = num(NFT_REG_1)
let verdictRegister = num(NFT_REG_VERDICT)

/// Owns a libnftnl rule and adds expressions to it.
final class RuleBuilder {
    let rule: OpaquePointer
    private let family: TableFamily
    private let table: String
    private let chain: String
    private var nfprotoChecked: IPFamily?
    private var l4protoChecked: L4Proto?

    init(table: String, chain: String, family: TableFamily) {
        self.table = table
        self.chain = chain
        rule = nftnl_rule_alloc()
        nftnl_rule_set_str(rule, attr(NFTNL_RULE_TABLE), table)
        nftnl_rule_set_str(rule, attr(NFTNL_RULE_CHAIN), chain)
        nftnl_rule_set_u32(rule, attr(NFTNL_RULE_FAMILY), UInt32(family.nfproto))
        self.family = family
    }

    deinit { nftnl_rule_free(rule) }

    private func expr(_ name: String, _ configure: (OpaquePointer) -> Void) {
        let e = nftnl_expr_alloc(name)!
        configure(e)
        nftnl_rule_add_expr(rule, e)
    }

    private func setData(_ e: OpaquePointer, _ type: UInt16, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { _ = nftnl_expr_set(e, type, $0.baseAddress, UInt32($0.count)) }
    }

    func metaLoad(_ key: UInt32) {
        expr("meta") {
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_META_KEY), key)
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_META_DREG), register1)
        }
    }

    func compare(_ negated: Bool, _ bytes: [UInt8]) {
        expr("cmp") {
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_CMP_SREG), register1)
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_CMP_OP), num(negated ? NFT_CMP_NEQ : NFT_CMP_EQ))
            setData($0, attr(NFTNL_EXPR_CMP_DATA), bytes)
        }
    }

    func payload(base: UInt32, offset: UInt32, length: UInt32) {
        expr("payload") {
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_PAYLOAD_DREG), register1)
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_PAYLOAD_BASE), base)
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_PAYLOAD_OFFSET), offset)
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_PAYLOAD_LEN), length)
        }
    }

    func bitwise(mask: [UInt8], xor: [UInt8]) {
        expr("bitwise") {
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_BITWISE_SREG), register1)
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_BITWISE_DREG), register1)
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_BITWISE_LEN), UInt32(mask.count))
            setData($0, attr(NFTNL_EXPR_BITWISE_MASK), mask)
            setData($0, attr(NFTNL_EXPR_BITWISE_XOR), xor)
        }
    }

    func lookup(_ set: String, setID: UInt32, negated: Bool) {
        expr("lookup") {
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_LOOKUP_SREG), register1)
            nftnl_expr_set_str($0, attr(NFTNL_EXPR_LOOKUP_SET), set)
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_LOOKUP_SET_ID), setID)
            // The kernel reports flags even when zero; sending them always keeps read-back comparable.
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_LOOKUP_FLAGS), negated ? num(NFT_LOOKUP_F_INV) : 0)
        }
    }

    func immediate(_ bytes: [UInt8]) {
        expr("immediate") {
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_IMM_DREG), register1)
            setData($0, attr(NFTNL_EXPR_IMM_DATA), bytes)
        }
    }

    /// `meta nfproto ipv4|ipv6`, once per rule, in inet tables only.
    func requireFamily(_ f: IPFamily) {
        guard family == .inet, nfprotoChecked != f else { return }
        metaLoad(num(NFT_META_NFPROTO))
        compare(false, [f == .ipv4 ? UInt8(NFPROTO_IPV4) : UInt8(NFPROTO_IPV6)])
        nfprotoChecked = f
    }

    /// `meta l4proto tcp|udp`, once per rule.
    func requireProtocol(_ p: L4Proto) {
        guard l4protoChecked != p else { return }
        metaLoad(num(NFT_META_L4PROTO))
        compare(false, [p.number])
        l4protoChecked = p
    }

    func address(_ cidr: CIDR, source: Bool, negated: Bool) {
        requireFamily(cidr.family)
        let v4 = cidr.family == .ipv4
        let offset: UInt32 = v4 ? (source ? 12 : 16) : (source ? 8 : 24)
        let full = cidr.family.byteCount
        let base = num(NFT_PAYLOAD_NETWORK_HEADER)
        if cidr.prefixLength % 8 == 0 && cidr.prefixLength > 0 {
            // Byte-aligned prefix: compare only the prefix bytes, as nft does.
            let n = cidr.prefixLength / 8
            payload(base: base, offset: offset, length: UInt32(n))
            compare(negated, Array(cidr.address.bytes.prefix(n)))
        } else {
            payload(base: base, offset: offset, length: UInt32(full))
            var mask = [UInt8](repeating: 0, count: full)
            for i in 0..<full { mask[i] = UInt8(truncatingIfNeeded: 0xff << (8 - max(0, min(8, cidr.prefixLength - i * 8)))) }
            for i in 0..<full where cidr.prefixLength - i * 8 <= 0 { mask[i] = 0 }
            bitwise(mask: mask, xor: [UInt8](repeating: 0, count: full))
            compare(negated, cidr.address.bytes)
        }
    }

    /// Adds one match. A lookup of a set the table does not define is refused before anything is sent.
    func add(_ match: Match, setIDs: [String: UInt32]) throws {
        func id(_ set: String) throws -> UInt32 {
            guard let id = setIDs[set] else {
                throw NetlinkError(NetlinkOperation(.new, .rule, "add rule \(family.rawValue) \(table) \(chain): lookup "
                    + "of set \(set), which the table does not define"), errno: Errno.ENOENT)
            }
            return id
        }
        switch match {
        case .iifname(let n):
            metaLoad(num(NFT_META_IIFNAME)); compare(false, ifnameBytes(n))
        case .oifname(let n):
            metaLoad(num(NFT_META_OIFNAME)); compare(false, ifnameBytes(n))
        case .iifnameInSet(let s):
            metaLoad(num(NFT_META_IIFNAME)); lookup(s, setID: try id(s), negated: false)
        case .oifnameInSet(let s):
            metaLoad(num(NFT_META_OIFNAME)); lookup(s, setID: try id(s), negated: false)
        case .l4proto(let p):
            requireProtocol(p)
        case .saddr(let c):
            address(c, source: true, negated: false)
        case .daddr(let c, let neg):
            address(c, source: false, negated: neg)
        case .daddrInSet(let f, let s):
            requireFamily(f)
            payload(base: num(NFT_PAYLOAD_NETWORK_HEADER), offset: f == .ipv4 ? 16 : 24, length: UInt32(f.byteCount))
            lookup(s, setID: try id(s), negated: false)
        case .saddrInSet(let f, let s):
            requireFamily(f)
            payload(base: num(NFT_PAYLOAD_NETWORK_HEADER), offset: f == .ipv4 ? 12 : 8, length: UInt32(f.byteCount))
            lookup(s, setID: try id(s), negated: false)
        case .sport(let p, let port):
            requireProtocol(p)
            payload(base: num(NFT_PAYLOAD_TRANSPORT_HEADER), offset: 0, length: 2)
            compare(false, [UInt8(port >> 8), UInt8(port & 0xff)])
        case .dport(let p, let port, let neg):
            requireProtocol(p)
            payload(base: num(NFT_PAYLOAD_TRANSPORT_HEADER), offset: 2, length: 2)
            compare(neg, [UInt8(port >> 8), UInt8(port & 0xff)])
        case .dportInSet(let p, let s):
            requireProtocol(p)
            payload(base: num(NFT_PAYLOAD_TRANSPORT_HEADER), offset: 2, length: 2)
            lookup(s, setID: try id(s), negated: false)
        case .skuid(let u, let neg):
            metaLoad(num(NFT_META_SKUID)); compare(neg, hostBytes(u))
        case .skgid(let g, let neg):
            metaLoad(num(NFT_META_SKGID)); compare(neg, hostBytes(g))
        case .skgidInSet(let s, let neg):
            metaLoad(num(NFT_META_SKGID)); lookup(s, setID: try id(s), negated: neg)
        case .mark(let m, let neg):
            metaLoad(num(NFT_META_MARK)); compare(neg, hostBytes(m))
        case .ctState(let states):
            ctLoad(num(NFT_CT_STATE))
            bitwise(mask: hostBytes(states.rawValue), xor: [0, 0, 0, 0])
            compare(true, [0, 0, 0, 0])
        case .ctMark(let m):
            ctLoad(num(NFT_CT_MARK)); compare(false, hostBytes(m))
        case .tcpSYN(let neg):
            // The flags byte (offset 13), SYN (0x02) and ACK (0x10) kept, compared with SYN alone, as nft does.
            requireProtocol(.tcp)
            payload(base: num(NFT_PAYLOAD_TRANSPORT_HEADER), offset: 13, length: 1)
            bitwise(mask: [0x12], xor: [0x00])
            compare(neg, [0x02])
        }
    }

    func ctLoad(_ key: UInt32) {
        expr("ct") {
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_CT_KEY), key)
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_CT_DREG), register1)
        }
    }

    func add(_ statement: Statement) {
        switch statement {
        case .counter:
            expr("counter") { _ in }
        case .redirect(let port):
            immediate([UInt8(port >> 8), UInt8(port & 0xff)])
            expr("redir") {
                nftnl_expr_set_u32($0, attr(NFTNL_EXPR_REDIR_REG_PROTO_MIN), register1)
                // The kernel fills in max = min and reports it; sending it keeps read-back comparable.
                nftnl_expr_set_u32($0, attr(NFTNL_EXPR_REDIR_REG_PROTO_MAX), register1)
                nftnl_expr_set_u32($0, attr(NFTNL_EXPR_REDIR_FLAGS), natRangeProtoSpecified)
            }
        case .tproxy(let f, let port):
            immediate([UInt8(port >> 8), UInt8(port & 0xff)])
            expr("tproxy") {
                nftnl_expr_set_u32($0, attr(NFTNL_EXPR_TPROXY_FAMILY), f == .ipv4 ? UInt32(NFPROTO_IPV4)
                                                                                   : UInt32(NFPROTO_IPV6))
                nftnl_expr_set_u32($0, attr(NFTNL_EXPR_TPROXY_REG_PORT), register1)
            }
        case .setMark(let m):
            immediate(hostBytes(m))
            metaSet(num(NFT_META_MARK))
        case .setMarkFromCtMark:
            ctLoad(num(NFT_CT_MARK))
            metaSet(num(NFT_META_MARK))
        case .setCtMarkFromMark:
            metaLoad(num(NFT_META_MARK))
            expr("ct") {
                nftnl_expr_set_u32($0, attr(NFTNL_EXPR_CT_KEY), num(NFT_CT_MARK))
                nftnl_expr_set_u32($0, attr(NFTNL_EXPR_CT_SREG), register1)
            }
        case .setCtMark(let m):
            immediate(hostBytes(m))
            expr("ct") {
                nftnl_expr_set_u32($0, attr(NFTNL_EXPR_CT_KEY), num(NFT_CT_MARK))
                nftnl_expr_set_u32($0, attr(NFTNL_EXPR_CT_SREG), register1)
            }
        case .setCtZone(let zone):
            // The zone is a host-order u16, as nft loads it.
            immediate(withUnsafeBytes(of: zone) { Array($0) })
            expr("ct") {
                nftnl_expr_set_u32($0, attr(NFTNL_EXPR_CT_KEY), num(NFT_CT_ZONE))
                nftnl_expr_set_u32($0, attr(NFTNL_EXPR_CT_SREG), register1)
            }
        case .verdict(let v):
            expr("immediate") {
                nftnl_expr_set_u32($0, attr(NFTNL_EXPR_IMM_DREG), verdictRegister)
                switch v {
                case .accept: nftnl_expr_set_u32($0, attr(NFTNL_EXPR_IMM_VERDICT), UInt32(NF_ACCEPT))
                case .drop: nftnl_expr_set_u32($0, attr(NFTNL_EXPR_IMM_VERDICT), UInt32(NF_DROP))
                case .return: nftnl_expr_set_u32($0, attr(NFTNL_EXPR_IMM_VERDICT), UInt32(bitPattern: NFT_RETURN.rawValue))
                case .jump(let chain):
                    nftnl_expr_set_u32($0, attr(NFTNL_EXPR_IMM_VERDICT), UInt32(bitPattern: NFT_JUMP.rawValue))
                    nftnl_expr_set_str($0, attr(NFTNL_EXPR_IMM_CHAIN), chain)
                }
            }
        }
    }

    func metaSet(_ key: UInt32) {
        expr("meta") {
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_META_KEY), key)
            nftnl_expr_set_u32($0, attr(NFTNL_EXPR_META_SREG), register1)
        }
    }
}

func hostBytes(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }

/// Interface names are compared over the full 16 bytes (IFNAMSIZ), zero padded: an exact match.
func ifnameBytes(_ name: String) -> [UInt8] {
    var b = Array(name.utf8.prefix(15))
    b += [UInt8](repeating: 0, count: 16 - b.count)
    return b
}

/// Key bytes of a set element.
func elementKeys(_ element: SetElement) -> [(key: [UInt8], end: Bool, open: Bool)] {
    switch element {
    case .port(let p): return [([UInt8(p >> 8), UInt8(p & 0xff)], false, false)]
    case .ifname(let n): return [(ifnameBytes(n), false, false)]
    case .gid(let g): return [(hostBytes(g), false, false)]
    case .address(let a): return [(a.bytes, false, false)]
    case .range(let r):
        if let next = r.last.successor { return [(r.first.bytes, false, false), (next.bytes, true, false)] }
        return [(r.first.bytes, false, true)]
    }
}

/// The elements nft sends for a set: interval sets start with an interval-end at address zero unless the first range
/// starts there, each range is a start plus an interval-end after it, and a range that runs to the last address is
/// flagged open in the element's user data.
func encodedElements(_ set: NamedSet) -> [(key: [UInt8], end: Bool, open: Bool)] {
    var out = set.elements.flatMap(elementKeys)
    if set.isInterval, case .range(let first)? = set.elements.first,
       first.first.bytes.contains(where: { $0 != 0 }) {
        out.insert(([UInt8](repeating: 0, count: first.first.family.byteCount), true, false), at: 0)
    }
    return out
}

/// User data nft attaches to an open-ended interval element (NFTNL_UDATA_SET_ELEM_FLAGS = INTERVAL_OPEN).
let openIntervalUserData: [UInt8] = [1, 4, 1, 0, 0, 0]
