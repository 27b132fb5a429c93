import CNetfilter
import WeirCore
import WeirSystem

/// What a netlink request was for: which request (the verb of its message type) on which kind of object, and the
/// text messages name it by (`add chain inet weir output`). Code decides on `request` and `object`, never on the text.
public struct NetlinkOperation: Equatable, Sendable, CustomStringConvertible {
    /// The verb of the message type sent (NFT_MSG_NEWTABLE is `.new`), or `.socket` for the socket's own calls.
    public enum Request: Equatable, Sendable {
        case new, delete, get, dump, socket
    }

    public enum Object: Equatable, Sendable {
        case table, chain, set, setElements, rule, generation
        /// An nftables batch as a whole (its send, or a refusal of a message it cannot name).
        case batch
        case ipRule, route, address, interface, conntrackStatistics
        /// The netlink socket itself (open, bind, subscribe, receive).
        case socket
    }

    public let request: Request
    public let object: Object
    public let description: String

    public init(_ request: Request, _ object: Object, _ description: String) {
        self.request = request
        self.object = object
        self.description = description
    }

    var isRead: Bool { request == .get || request == .dump }

    /// A call of the socket itself, named as WeirSystem named it (`open netlink socket`).
    static func socket(_ error: SystemError) -> NetlinkOperation { NetlinkOperation(.socket, .socket, error.call) }
}

/// A kernel refusal or a failed netlink call: the operation, the object and errno.
public struct NetlinkError: Error, CustomStringConvertible, Equatable {
    public let operation: NetlinkOperation
    public let errno: Int32
    /// What the failing call had already done before this step failed (`ensureTPROXYRouting`'s additions).
    public var alreadyDone: [RoutingObject] = []

    public init(_ operation: NetlinkOperation, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    /// `add table inet weir: EPERM (need CAP_NET_ADMIN, or another process owns the table)`
    public var description: String {
        var text = "\(operation): \(errnoName(errno))"
        // Only a change to the table itself, or the batch that carries it, meets an owner.
        let ownable = !operation.isRead && (operation.object == .table || operation.object == .batch)
        if errno == Errno.EPERM && !ownable {
            text += " (need CAP_NET_ADMIN)"
        } else if let hint = errnoHint(errno) {
            text += " (\(hint))"
        }
        return text
    }
}

func errnoHint(_ e: Int32) -> String? {
    switch e {
    case Errno.EPERM: return "need CAP_NET_ADMIN, or another process owns the table"
    case Errno.EACCES: return "need CAP_NET_ADMIN"
    case Errno.EOPNOTSUPP: return "the kernel does not support this"
    case Errno.ENOENT: return "no such object"
    case Errno.EEXIST: return "already exists"
    case Errno.ENOBUFS: return "netlink receive buffer overrun"
    case Errno.EPROTO: return "malformed netlink reply"
    default: return nil  // errnoName already spells out an errno it has no name for
    }
}

/// Runs a WeirSystem netlink call, reporting its failure as `operation` (or, when nil, as the socket call it was).
func naming<T>(_ operation: NetlinkOperation?, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as SystemError {
        throw NetlinkError(operation ?? .socket(e), errno: e.errno)
    }
}

extension NetlinkSocket {
    /// Opens a socket on `bus`; failures are `NetlinkError`s.
    static func opened(_ bus: Bus, groups: [UInt32] = []) throws -> NetlinkSocket {
        try naming(nil) { try NetlinkSocket(bus, groups: groups) }
    }

    /// `transact`, with a refusal or failure reported as `operation`.
    func transact(_ request: NetlinkRequest, sequence: UInt32, dump: Bool, _ operation: NetlinkOperation) throws
        -> [NetlinkMessage]
    {
        try naming(operation) { try transact(request, sequence: sequence, dump: dump) }
    }
}

extension NetlinkMessage {
    /// Long enough for the nfgenmsg header that libnftnl reads without checking, and a whole number of 4-byte units:
    /// libmnl walks attributes up to the aligned end of a message, past the bytes of a shorter one. The kernel's
    /// netfilter replies always are.
    var isNetfilterShaped: Bool { bytes.count >= 20 && bytes.count % 4 == 0 }

    /// Runs `body` with the message as a `nlmsghdr` pointer, for libnftnl's parsers.
    func withHeader<T>(_ body: (UnsafePointer<nlmsghdr>) -> T) -> T {
        bytes.withUnsafeBytes { body($0.baseAddress!.assumingMemoryBound(to: nlmsghdr.self)) }
    }

    /// The nfnetlink attributes (after the 4-byte nfgenmsg).
    var netfilterAttributes: NetlinkAttributes { attributes(after: 4) }
}
