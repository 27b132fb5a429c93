import Glibc

/// Deleting conntrack entries over ctnetlink, without libnetfilter_conntrack: one request type (the proxy's workers
/// forget the entry of an upstream flow that ended without their own FIN or RST, see WeirProxy's WorkerConntrack).
///
/// The kernel checks CAP_NET_ADMIN against the credentials of the thread that opened the socket, so each worker opens
/// its own, on its own thread.
public final class ConntrackSocket {
    /// What a delete did.
    public enum Deletion: Equatable {
        case deleted
        /// The kernel had no such entry (it expired, or the flow never created one).
        case noEntry
        /// Refused or failed: errno (EPERM without CAP_NET_ADMIN; EAFNOSUPPORT for mixed or non-IP addresses).
        case failed(Int32)
    }

    private let socket: NetlinkSocket
    /// Reused for every request: a delete is on the path of a failed connection, and should not allocate.
    private let request = NetlinkRequest(capacity: 256)
    /// The kernel's answer: an nlmsgerr with the request echoed, well under this.
    private var reply = [UInt8](repeating: 0, count: 512)

    // linux/netfilter/nfnetlink.h and nfnetlink_conntrack.h.
    private static let deleteMessage: UInt16 = 1 << 8 | 2  // NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE
    private static let tupleOriginal: UInt16 = 1, tupleIP: UInt16 = 1, tupleProtocol: UInt16 = 2
    private static let protocolNumber: UInt16 = 1, sourcePort: UInt16 = 2, destinationPort: UInt16 = 3

    private init(socket: NetlinkSocket) { self.socket = socket }

    /// A ctnetlink socket for this thread's credentials and network namespace. Throws `SystemError`.
    public static func open() throws -> ConntrackSocket {
        ConntrackSocket(socket: try NetlinkSocket(.netfilter))
    }

    /// Deletes the TCP entry whose original direction is `source` -> `destination` (both IPv4 or both IPv6, default
    /// zone) and reads the kernel's answer, which ctnetlink gives before sendmsg returns. Does not throw: a failure
    /// is a value for the caller to count and log, per connection.
    public func delete(source: SocketAddress, destination: SocketAddress) -> Deletion {
        let family = source.family
        guard family == destination.family, family == AF_INET || family == AF_INET6 else {
            return .failed(EAFNOSUPPORT)
        }
        let sequence = socket.nextSequence()
        build(source, destination, sequence: sequence)
        do {
            try socket.send(request)
            // The answer is queued by now: never wait for it. An older one (a previous request's, if its read was
            // lost) is skipped.
            while let replies = try socket.receive(into: &reply, wait: false) {
                for m in replies where m.sequence == sequence {
                    guard m.type == Netlink.error else { return .failed(EPROTO) }
                    let e = -m.errorCode
                    return e == 0 ? .deleted : e == ENOENT ? .noEntry : .failed(e)
                }
            }
            return .failed(EAGAIN)
        } catch let e as SystemError {
            return .failed(e.errno)
        } catch {
            return .failed(EPROTO)
        }
    }

    private func build(_ source: SocketAddress, _ destination: SocketAddress, sequence: UInt32) {
        let v6 = source.family == AF_INET6
        request.removeAll()
        request.begin(type: Self.deleteMessage, flags: [.request, .ack], sequence: sequence)
        // struct nfgenmsg: family, version (NFNETLINK_V0), resource id.
        request.put(header: (UInt8(truncatingIfNeeded: source.family), UInt8(0), UInt16(0)))
        let tuple = request.beginNest(Self.tupleOriginal)
        let ip = request.beginNest(Self.tupleIP)
        // CTA_IP_V4_SRC/DST are 1 and 2, CTA_IP_V6_SRC/DST 3 and 4; the addresses in network order, as stored.
        putAddress(v6 ? 3 : 1, source)
        putAddress(v6 ? 4 : 2, destination)
        request.endNest(ip)
        let proto = request.beginNest(Self.tupleProtocol)
        request.put(Self.protocolNumber, UInt8(IPPROTO_TCP))
        request.put(Self.sourcePort, source.port.bigEndian)
        request.put(Self.destinationPort, destination.port.bigEndian)
        request.endNest(proto)
        request.endNest(tuple)
    }

    /// The 4 or 16 address bytes of a `sockaddr_in` or `sockaddr_in6` (at offsets 4 and 8), as an attribute.
    private func putAddress(_ type: UInt16, _ address: SocketAddress) {
        let range = address.family == AF_INET6 ? 8..<24 : 4..<8
        withUnsafeBytes(of: address.storage) { request.put(type, UnsafeRawBufferPointer(rebasing: $0[range])) }
    }
}
