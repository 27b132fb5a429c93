// The socket type constants (enum __socket_type) come from the headers CWeirLinux.h includes.
import CWeirLinux
import Glibc

/// A netlink socket that sends whole requests and collects their replies. Owns its descriptor.
///
/// Errors are `SystemError`s naming the step (`open netlink socket`, `bind netlink socket`) or, for a request the
/// kernel refused, `netlink request` with the kernel's errno; callers name the operation (WeirNetfilter's
/// `NetlinkError`). Closing the socket that created an nftables table with the owner flag releases the table, so the
/// socket lives as long as its owner wants the table.
public final class NetlinkSocket {
    /// The netlink families weir talks to (linux/netlink.h).
    public enum Bus: Int32 {
        case route = 0
        case netfilter = 12
    }

    public let descriptor: Descriptor
    /// The port the kernel bound this socket to (`nlmsg_pid` of its replies; an owned table's owner).
    public let portID: UInt32
    private var sequence: UInt32
    /// Replies are read into a buffer of this size, allocated per call rather than kept: an idle agent holds six
    /// netlink sockets, and 64 KiB each would stay resident.
    private static let replyBufferSize = 1 << 16

    // linux/netlink.h; not exported by Glibc.
    private static let solNetlink: Int32 = 270
    private static let addMembership: Int32 = 1, dropMembership: Int32 = 2
    private static let extendedAck: Int32 = 11, strictCheck: Int32 = 12

    /// Opens a socket on `bus`, bound to a port the kernel picks, subscribed to the multicast `groups` (numbers as in
    /// the uapi headers, 1 to 32). Event sockets (`groups` not empty) are non-blocking.
    public init(_ bus: Bus, groups: [UInt32] = []) throws {
        let flags = SOCK_CLOEXEC.rawValue | (groups.isEmpty ? 0 : SOCK_NONBLOCK.rawValue)
        let events = !groups.isEmpty
        let fd = try Descriptor.opened(events ? "open netlink event socket" : "open netlink socket") {
            socket(AF_NETLINK, Int32(SOCK_RAW.rawValue | flags), bus.rawValue)  // netlink: no CAP_NET_RAW needed
        }
        // struct sockaddr_nl: family, pad, port (0: the kernel picks), groups.
        var address = (UInt16(AF_NETLINK), UInt16(0), UInt32(0), groups.reduce(UInt32(0)) { $0 | 1 << ($1 - 1) })
        var length = socklen_t(MemoryLayout.size(ofValue: address))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd.rawValue, $0, length) }
        }
        guard bound == 0 else {
            throw SystemError(events ? "subscribe to netlink events" : "bind netlink socket", errno: errno)
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd.rawValue, $0, &length) }
        }
        descriptor = fd
        portID = address.2
        // Sequence numbers only need to be unique per socket; start from the clock like nft does.
        sequence = UInt32(truncatingIfNeeded: time(nil))
        // Extended acks name the attribute a refusal is about, strict checking refuses what the kernel would ignore;
        // both are harmless where unsupported.
        _ = setOption(Self.solNetlink, Self.extendedAck, 1)
        _ = setOption(Self.solNetlink, Self.strictCheck, 1)
    }

    public func nextSequence() -> UInt32 {
        sequence &+= 1
        return sequence
    }

    private func setOption(_ level: Int32, _ name: Int32, _ value: Int32) -> Bool {
        var v = value
        return setsockopt(descriptor.rawValue, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) == 0
    }

    /// Joins or leaves multicast `group`. False when the kernel refused (errno says why).
    public func setMembership(_ group: UInt32, _ member: Bool) -> Bool {
        setOption(Self.solNetlink, member ? Self.addMembership : Self.dropMembership, Int32(group))
    }

    /// Grows the send and receive buffers so that a large batch goes in one sendmsg and its errors all come back.
    /// The FORCE options exceed the sysctl limits with CAP_NET_ADMIN; without it the plain ones are the fallback.
    public func reserve(sendBytes: Int) {
        let send = Int32(clamping: sendBytes + 65536)
        if !setOption(SOL_SOCKET, SO_SNDBUFFORCE, send) { _ = setOption(SOL_SOCKET, SO_SNDBUF, send) }
        if !setOption(SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20) { _ = setOption(SOL_SOCKET, SO_RCVBUF, 4 << 20) }
    }

    /// Sends the whole request to the kernel in one datagram.
    public func send(_ request: NetlinkRequest) throws {
        var kernel = (UInt16(AF_NETLINK), UInt16(0), UInt32(0), UInt32(0))
        let length = socklen_t(MemoryLayout.size(ofValue: kernel))
        let result = try request.withUnsafeBytes { bytes in
            try syscall("send netlink request") {
                withUnsafePointer(to: &kernel) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(descriptor.rawValue, bytes.baseAddress, bytes.count, 0, $0, length)
                    }
                }
            }
        }
        // A blocking socket does not report would-block; a short datagram means it did not fit.
        guard case .done(let sent) = result, sent == request.count else {
            throw SystemError("send netlink request", errno: Errno.EMSGSIZE)
        }
    }

    /// Receives one datagram into `buffer` (its size bounds the datagram): its messages, or nil when nothing is
    /// queued (`wait` false, or a non-blocking socket).
    public func receive(into buffer: inout [UInt8], wait: Bool) throws -> [NetlinkMessage]? {
        let result = try syscall("receive netlink replies") {
            buffer.withUnsafeMutableBytes {
                recv(descriptor.rawValue, $0.baseAddress, $0.count, wait ? 0 : Int32(MSG_DONTWAIT))
            }
        }
        guard case .done(let n) = result, n > 0 else { return nil }
        return buffer.withUnsafeBytes { NetlinkMessage.split(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }

    /// Reads every reply already queued (the kernel answers a batch within its sendmsg).
    public func drain() throws -> [NetlinkMessage] {
        var buffer = [UInt8](repeating: 0, count: Self.replyBufferSize)
        var out: [NetlinkMessage] = []
        while let messages = try receive(into: &buffer, wait: false) { out += messages }
        return out
    }

    /// Reads and discards every queued message (event sockets). True if there was any; an overrun (ENOBUFS) counts
    /// as one, since events were lost.
    public func discardPending() -> Bool {
        // Events are small; a longer one is cut short, which is all discarding needs.
        var buffer = [UInt8](repeating: 0, count: 16384)
        var any = false
        while true {
            do {
                guard try receive(into: &buffer, wait: false) != nil else { return any }
                any = true
            } catch let e as SystemError where e.errno == Errno.ENOBUFS {
                any = true
            } catch {
                return any
            }
        }
    }

    /// Sends a request and reads its replies until NLMSG_DONE (`dump`) or the ack/error for `sequence`. A refusal
    /// throws `SystemError("netlink request", errno:)` with the kernel's errno.
    public func transact(_ request: NetlinkRequest, sequence: UInt32, dump: Bool) throws -> [NetlinkMessage] {
        try send(request)
        var buffer = [UInt8](repeating: 0, count: Self.replyBufferSize)
        var out: [NetlinkMessage] = []
        while true {
            for m in try receive(into: &buffer, wait: true) ?? [] where m.sequence == sequence {
                if m.type == Netlink.done { return out }
                if m.type == Netlink.error {
                    let e = m.errorCode
                    if e != 0 { throw SystemError("netlink request", errno: -e) }
                    return out
                }
                out.append(m)
                if !dump { return out }
            }
        }
    }
}

extension Netlink {
    /// The index rtnetlink requests name the interface `name` by; nil when there is no such interface.
    public static func interfaceIndex(_ name: String) -> UInt32? {
        let index = if_nametoindex(name)
        return index == 0 ? nil : index
    }
}
