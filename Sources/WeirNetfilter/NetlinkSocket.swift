import CNetfilter
import Glibc
import WeirSystem

/// A kernel refusal or a failed netlink call, with the operation, the object and errno.
public struct NetlinkError: Error, CustomStringConvertible, Equatable {
    public let operation: String
    public let errno: Int32
    /// What the failing call had already done before this step failed (`ensureTPROXYRouting`'s additions).
    public var alreadyDone: [String] = []

    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    /// `add chain inet weir output: EPERM (need CAP_NET_ADMIN, or another process owns the table)`
    public var description: String {
        var text = "\(operation): \(errnoName(errno))"
        let reading = operation.hasPrefix("get ") || operation.hasPrefix("list ")
        if errno == EPERM && (reading || !operation.contains("table")) {
            text += " (need CAP_NET_ADMIN)"
        } else if let hint = errnoHint(errno) {
            text += " (\(hint))"
        }
        return text
    }
}

func errnoHint(_ e: Int32) -> String? {
    switch e {
    case EPERM: return "need CAP_NET_ADMIN, or another process owns the table"
    case EACCES: return "need CAP_NET_ADMIN"
    case EOPNOTSUPP: return "the kernel does not support this"
    case ENOENT: return "no such object"
    case EEXIST: return "already exists"
    case ENOBUFS: return "netlink receive buffer overrun"
    case EPROTO: return "malformed netlink reply"
    default: return nil  // errnoName already spells out an errno it has no name for
    }
}

/// A netlink socket (libmnl) that sends whole buffers and collects replies. Owns the socket; closes it on deinit.
///
/// Closing the socket that created an nftables table with the owner flag releases the table (to orphan it with the
/// persist flag, or to destroy it without), so the socket lives as long as weir wants to own its table.
final class NetlinkSocket {
    private let socket: OpaquePointer
    let portID: UInt32
    private var sequence: UInt32

    init(bus: Int32) throws {
        guard let s = mnl_socket_open(bus) else { throw NetlinkError("open netlink socket", errno: errno) }
        socket = s
        guard mnl_socket_bind(s, 0, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let e = errno
            mnl_socket_close(s)
            throw NetlinkError("bind netlink socket", errno: e)
        }
        portID = mnl_socket_get_portid(s)
        // Sequence numbers only need to be unique per socket; start from the clock like nft does.
        sequence = UInt32(truncatingIfNeeded: time(nil))
        var on: Int32 = 1
        // Extended acks name the attribute a kernel refusal is about; harmless if unsupported.
        _ = setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &on, socklen_t(MemoryLayout<Int32>.size))
        var strict: Int32 = 1
        _ = setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &strict, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { mnl_socket_close(socket) }

    var fd: Int32 { mnl_socket_get_fd(socket) }

    func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    /// Grows the send and receive buffers so a large batch goes in one sendmsg and its errors all come back.
    func reserve(sendBytes: Int) {
        var snd = Int32(clamping: sendBytes + 65536)
        if setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &snd, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, socklen_t(MemoryLayout<Int32>.size))
        }
        var rcv: Int32 = 4 << 20
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    func send(_ bytes: [UInt8], operation: String) throws {
        let sent = bytes.withUnsafeBytes { mnl_socket_sendto(socket, $0.baseAddress, $0.count) }
        guard sent == bytes.count else { throw NetlinkError(operation, errno: sent < 0 ? errno : EMSGSIZE) }
    }

    /// Reads every reply already queued (the kernel answers a batch synchronously within sendmsg).
    func drain() throws -> [NetlinkMessage] {
        var out: [NetlinkMessage] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { return out }
                if errno == EINTR { continue }
                throw NetlinkError("receive netlink replies", errno: errno)
            }
            if n == 0 { return out }
            out += NetlinkMessage.split(Array(buffer[0..<n]))
        }
    }

    /// Sends a request and reads replies until NLMSG_DONE (dumps) or the ack/error for `sequence`.
    func transact(_ request: [UInt8], sequence: UInt32, dump: Bool, operation: String) throws -> [NetlinkMessage] {
        try send(request, operation: operation)
        var out: [NetlinkMessage] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                throw NetlinkError(operation, errno: errno)
            }
            for m in NetlinkMessage.split(Array(buffer[0..<n])) where m.sequence == sequence {
                if m.type == UInt16(NLMSG_DONE) { return out }
                if m.type == UInt16(NLMSG_ERROR) {
                    let e = m.errorCode
                    if e != 0 { throw NetlinkError(operation, errno: -e) }
                    return out
                }
                out.append(m)
                if !dump { return out }
            }
        }
    }
}

/// One netlink message as bytes (header included).
struct NetlinkMessage {
    let bytes: [UInt8]

    var type: UInt16 { bytes.withUnsafeBytes { $0.load(fromByteOffset: 4, as: UInt16.self) } }
    var flags: UInt16 { bytes.withUnsafeBytes { $0.load(fromByteOffset: 6, as: UInt16.self) } }
    var sequence: UInt32 { bytes.withUnsafeBytes { $0.load(fromByteOffset: 8, as: UInt32.self) } }

    /// For NLMSG_ERROR: the (negative) errno, 0 for an ack.
    var errorCode: Int32 {
        bytes.count >= 20 ? bytes.withUnsafeBytes { $0.load(fromByteOffset: 16, as: Int32.self) } : -EPROTO
    }

    /// Long enough for the nfgenmsg header that libnftnl and the ctnetlink parsers read without checking, and a whole
    /// number of 4-byte units: libmnl walks attributes up to the aligned end of a message, past the bytes of a shorter
    /// one. The kernel's netfilter replies always are.
    var isNetfilterShaped: Bool { bytes.count >= 20 && bytes.count % 4 == 0 }

    /// Runs `body` with the message as a `nlmsghdr` pointer, for libnftnl's parsers.
    func withHeader<T>(_ body: (UnsafePointer<nlmsghdr>) -> T) -> T {
        bytes.withUnsafeBytes { body($0.baseAddress!.assumingMemoryBound(to: nlmsghdr.self)) }
    }

    /// Netlink attributes after a fixed header of `headerLength` bytes following the nlmsghdr.
    func attributes(after headerLength: Int) -> [UInt16: [UInt8]] {
        var out: [UInt16: [UInt8]] = [:]
        var offset = 16 + Int(weir_nlmsg_align(UInt32(headerLength)))
        while offset + 4 <= bytes.count {
            let len = Int(UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8)
            let type = (UInt16(bytes[offset + 2]) | UInt16(bytes[offset + 3]) << 8) & 0x3fff
            guard len >= 4, offset + len <= bytes.count else { break }
            out[type] = Array(bytes[(offset + 4)..<(offset + len)])
            offset += (len + 3) & ~3
        }
        return out
    }

    static func split(_ buffer: [UInt8]) -> [NetlinkMessage] {
        var out: [NetlinkMessage] = []
        var offset = 0
        while offset + 16 <= buffer.count {
            let len = Int(buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self) })
            guard len >= 16, offset + len <= buffer.count else { break }
            out.append(NetlinkMessage(bytes: Array(buffer[offset..<(offset + len)])))
            offset += Int(weir_nlmsg_align(UInt32(len)))
        }
        return out
    }
}

extension Array where Element == UInt8 {
    var u32: UInt32 { count >= 4 ? withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) } : 0 }
    var u8: UInt8 { first ?? 0 }
}
