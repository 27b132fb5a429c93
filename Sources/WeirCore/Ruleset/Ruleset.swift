/// An nftables ruleset as values: one table with its sets and chains, in a stable order.
///
/// This is the single desired state. `NftText` renders it for `--dry-run`; WeirNetfilter encodes the same value as
/// one netlink batch. Every match and statement here has both a text form and a netlink form, nothing else.

/// Table family. `inet` carries IPv4 and IPv6 together; `ip` is the explicit IPv4-only choice.
public enum TableFamily: String, Hashable, Sendable {
    case inet, ip
}

/// Transport protocol of a port match.
public enum L4Proto: String, Hashable, Sendable {
    case tcp, udp

    public var number: UInt8 { self == .tcp ? 6 : 17 }
}

/// Hook of a base chain.
public enum Hook: String, Hashable, Sendable {
    case prerouting, output
}

/// Type of a base chain.
public enum ChainType: String, Hashable, Sendable {
    case nat, filter, route
}

/// What makes a chain a base chain: attached to a hook with a type and a priority.
public struct BaseChain: Hashable, Sendable {
    public var type: ChainType
    public var hook: Hook
    public var priority: Int32

    public init(type: ChainType, hook: Hook, priority: Int32) {
        self.type = type
        self.hook = hook
        self.priority = priority
    }
}

/// Connection tracking states as the kernel's bit mask.
public struct CtState: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let invalid = CtState(rawValue: 1)
    public static let established = CtState(rawValue: 2)
    public static let related = CtState(rawValue: 4)
    public static let new = CtState(rawValue: 8)
}

/// A condition of a rule. All conditions of a rule must hold.
public enum Match: Hashable, Sendable {
    case iifname(String)
    case oifname(String)
    case iifnameInSet(String)
    case oifnameInSet(String)
    case l4proto(L4Proto)
    case saddr(CIDR)
    case saddrInSet(IPFamily, set: String)
    case daddr(CIDR, negated: Bool)
    case daddrInSet(IPFamily, set: String)
    case sport(L4Proto, UInt16)
    case dport(L4Proto, UInt16, negated: Bool)
    case dportInSet(L4Proto, set: String)
    case skuid(UInt32, negated: Bool)
    case skgid(UInt32, negated: Bool)
    case skgidInSet(set: String, negated: Bool)
    case mark(UInt32, negated: Bool)
    case ctState(CtState)
    case ctMark(UInt32)
    /// `tcp flags & (syn | ack) == syn`: SYN without ACK, the first packet of a connection (`!=` when negated).
    case tcpSYN(negated: Bool)
}

/// Where a verdict sends the packet.
public enum Verdict: Hashable, Sendable {
    case accept, drop, `return`
    case jump(String)
}

/// An action of a rule, applied in order once all matches hold.
public enum Statement: Hashable, Sendable {
    case counter
    case redirect(port: UInt16)
    case tproxy(IPFamily, port: UInt16)
    case setMark(UInt32)
    case setMarkFromCtMark
    case setCtMarkFromMark
    /// `ct mark set VALUE` (written in hex, as nft lists it).
    case setCtMark(UInt32)
    /// `ct zone set N`: the packet's connection is tracked in zone N (raw priority, before conntrack; the first zone
    /// set on a packet wins).
    case setCtZone(UInt16)
    case verdict(Verdict)
}

public struct Rule: Hashable, Sendable {
    public var matches: [Match]
    public var statements: [Statement]

    public init(_ matches: [Match], _ statements: [Statement]) {
        self.matches = matches
        self.statements = statements
    }
}

public struct Chain: Hashable, Sendable {
    public var name: String
    public var base: BaseChain?
    public var rules: [Rule]

    public init(name: String, base: BaseChain? = nil, rules: [Rule] = []) {
        self.name = name
        self.base = base
        self.rules = rules
    }
}

/// Key type of a named set.
public enum SetKeyType: String, Hashable, Sendable {
    case ipv4Addr = "ipv4_addr"
    case ipv6Addr = "ipv6_addr"
    case inetService = "inet_service"
    case ifname
    case gid

    /// nftables' datatype number, stored in the set so `nft list` can print it.
    public var datatype: UInt32 {
        switch self {
        case .ipv4Addr: return 7
        case .ipv6Addr: return 8
        case .inetService: return 13
        case .gid: return 25
        case .ifname: return 41
        }
    }

    /// Key length in bytes.
    public var keyLength: UInt32 {
        switch self {
        case .ipv4Addr: return 4
        case .ipv6Addr: return 16
        case .inetService: return 2
        case .gid: return 4
        case .ifname: return 16
        }
    }
}

public enum SetElement: Hashable, Sendable, CustomStringConvertible {
    case port(UInt16)
    case ifname(String)
    case gid(UInt32)
    /// One address, in a set without intervals.
    case address(IPAddress)
    /// A range of addresses, in an interval set.
    case range(IPRange)

    public var description: String {
        switch self {
        case .port(let p): return String(p)
        case .ifname(let n): return "\"\(n)\""
        case .gid(let g): return String(g)
        case .address(let a): return a.description
        case .range(let r): return r.description
        }
    }
}

public struct NamedSet: Hashable, Sendable {
    public var name: String
    public var keyType: SetKeyType
    public var elements: [SetElement]
    /// An interval set (`flags interval`, `.range` elements): a prefix costs one tree lookup whatever the list
    /// length, but the kernel stores each range as two elements (its start and the end after it) in a tree. Single
    /// addresses go into a set without intervals instead: one element each, in a hash table.
    public var isInterval: Bool

    public init(name: String, keyType: SetKeyType, elements: [SetElement], isInterval: Bool = false) {
        self.name = name
        self.keyType = keyType
        self.elements = elements
        self.isInterval = isInterval
    }

    /// The size declared for a set of single addresses: its element count. With a size the kernel keeps the set in a
    /// hash table of fixed size, which it fills faster than the resizable one it picks for a set without (10,000
    /// addresses: see `scripts/bench-capture.sh`). weir replaces its whole table on any change, so the set never
    /// needs room for more. Port, interface and group sets declare none, as before: the kernel keeps a port set in
    /// a bitmap either way.
    public var declaredSize: Int? {
        guard !isInterval, keyType == .ipv4Addr || keyType == .ipv6Addr else { return nil }
        return elements.count
    }
}

public struct Table: Hashable, Sendable {
    public var family: TableFamily
    public var name: String
    public var sets: [NamedSet]
    public var chains: [Chain]

    public init(family: TableFamily, name: String, sets: [NamedSet] = [], chains: [Chain] = []) {
        self.family = family
        self.name = name
        self.sets = sets
        self.chains = chains
    }

    public func set(named name: String) -> NamedSet? { sets.first { $0.name == name } }
}

/// nftables table flags (linux/netfilter/nf_tables.h, NFT_TABLE_F_*), as the kernel reports them; the one definition
/// the netlink code and the status report share. Debian 12's headers do not define persist yet.
public enum TableFlag {
    /// The table belongs to the netlink socket that created or claimed it; no other process may change it.
    public static let owner: UInt32 = 0x2
    /// With owner: the table survives its owner's exit (kernel >= 6.9), unowned, until claimed again.
    public static let persist: UInt32 = 0x4
}
