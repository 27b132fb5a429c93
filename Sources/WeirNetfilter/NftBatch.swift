import CNetfilter
import WeirCore
import WeirSystem

/// One nfnetlink batch: BEGIN, messages, END, in one buffer sent with one sendmsg. Each message keeps its operation
/// (`add chain inet weir output`) so a kernel error, which names the message by sequence number, names the object.
struct NftBatch {
    let request = NetlinkRequest(capacity: 1 << 16)
    private(set) var operations: [UInt32: NetlinkOperation] = [:]
    private let socket: NetlinkSocket

    /// The most one message may take: libnftnl writes without bounds, so this is reserved before each payload
    /// (a chunk of 1,000 set elements is well under it).
    private static let messageCapacity = 1 << 17

    init(socket: NetlinkSocket) {
        self.socket = socket
        delimiter(UInt16(NFNL_MSG_BATCH_BEGIN))
    }

    /// BEGIN and END: nfgenmsg's resource id names the subsystem the batch is for (big endian).
    private mutating func delimiter(_ type: UInt16) {
        request.begin(type: type, flags: .request, sequence: socket.nextSequence())
        request.put(header: nfgenmsg(nfgen_family: UInt8(AF_UNSPEC), version: UInt8(NFNETLINK_V0),
                                     res_id: UInt16(NFNL_SUBSYS_NFTABLES).bigEndian))
    }

    /// Adds one message; `payload` fills it from a libnftnl object.
    mutating func add(_ type: nf_tables_msg_types, family: UInt16, flags: NetlinkFlags, _ operation: NetlinkOperation,
                      payload: (UnsafeMutablePointer<nlmsghdr>) -> Void) {
        let sequence = socket.nextSequence()
        operations[sequence] = operation
        request.begin(type: NftMessage.type(type), flags: flags.union(.request), sequence: sequence)
        request.put(header: NftMessage.header(family: family))
        request.withMessage(capacity: Self.messageCapacity) { payload($0.assumingMemoryBound(to: nlmsghdr.self)) }
    }

    /// Sends the batch and throws the kernel's first refusal, naming the object it refused.
    mutating func commit() throws {
        delimiter(UInt16(NFNL_MSG_BATCH_END))
        socket.reserve(sendBytes: request.count)
        try naming(NetlinkOperation(.socket, .batch, "send nftables batch")) { try socket.send(request) }
        let replies = try naming(nil) { try socket.drain() }
        var firstError: (UInt32, Int32)?
        for reply in replies where reply.type == Netlink.error && reply.errorCode != 0 {
            let s = reply.sequence
            if firstError == nil || s < firstError!.0 { firstError = (s, -reply.errorCode) }
        }
        if let (s, e) = firstError {
            throw NetlinkError(operations[s] ?? NetlinkOperation(.new, .batch, "nftables batch"), errno: e)
        }
    }
}

/// nf_tables message headers, as libnftnl's `nftnl_nlmsg_build_hdr` writes them.
enum NftMessage {
    static func type(_ type: nf_tables_msg_types) -> UInt16 { UInt16(NFNL_SUBSYS_NFTABLES) << 8 | UInt16(type.rawValue) }

    static func header(family: UInt16) -> nfgenmsg {
        nfgenmsg(nfgen_family: UInt8(truncatingIfNeeded: family), version: UInt8(NFNETLINK_V0), res_id: 0)
    }
}
