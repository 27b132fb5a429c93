import CNetfilter
import Glibc
import WeirCore

/// One nfnetlink batch: BEGIN, messages, END, in one buffer sent with one sendmsg. Each message keeps a description
/// (`add chain inet weir output`) so a kernel error, which names the message by sequence number, names the object.
struct NftBatch {
    private(set) var bytes: [UInt8] = []
    private(set) var operations: [UInt32: String] = [:]
    private var scratch = [UInt8](repeating: 0, count: 1 << 17)
    private let socket: NetlinkSocket

    init(socket: NetlinkSocket) {
        self.socket = socket
        let seq = socket.nextSequence()
        append { nftnl_batch_begin($0, seq) }
    }

    private mutating func append(_ build: (UnsafeMutablePointer<CChar>) -> UnsafeMutablePointer<nlmsghdr>?) {
        scratch.withUnsafeMutableBytes { raw in
            let base = raw.baseAddress!.assumingMemoryBound(to: CChar.self)
            let nlh = build(base)!
            let len = Int(weir_nlmsg_align(nlh.pointee.nlmsg_len))
            bytes.append(contentsOf: UnsafeRawBufferPointer(start: raw.baseAddress, count: len))
        }
    }

    /// Adds one message; `payload` fills it from a libnftnl object.
    mutating func add(_ type: nf_tables_msg_types, family: UInt16, flags: Int32, operation: String,
                      payload: (UnsafeMutablePointer<nlmsghdr>) -> Void) {
        let seq = socket.nextSequence()
        operations[seq] = operation
        append { buf in
            let nlh = nftnl_nlmsg_build_hdr(buf, UInt16(type.rawValue), family, UInt16(flags), seq)!
            payload(nlh)
            return nlh
        }
    }

    /// Sends the batch and throws the kernel's first refusal, naming the object it refused.
    mutating func commit() throws {
        let seq = socket.nextSequence()
        append { nftnl_batch_end($0, seq) }
        socket.reserve(sendBytes: bytes.count)
        try socket.send(bytes, operation: "send nftables batch")
        var firstError: (UInt32, Int32)?
        for reply in try socket.drain() where reply.type == UInt16(NLMSG_ERROR) && reply.errorCode != 0 {
            let s = reply.sequence
            if firstError == nil || s < firstError!.0 { firstError = (s, -reply.errorCode) }
        }
        if let (s, e) = firstError {
            throw NetlinkError(operations[s] ?? "nftables batch", errno: e)
        }
    }
}
