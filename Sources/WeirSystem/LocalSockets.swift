import CWeirLinux
import Glibc

// Sockets that are not a connection: what a listener's queue holds, the largest backlog and sd_notify's datagram.

/// The accept queue of a listening socket, read from the socket itself.
public struct ListenQueue: Equatable {
    /// Connections whose handshake completed, waiting for accept() (TCP_INFO tcpi_unacked).
    public let length: Int
    /// The queue's limit, the backlog (tcpi_sacked).
    public let limit: Int
    /// Connections the listener dropped: a full queue, or a SYN it could not answer (SO_MEMINFO drops).
    public let drops: Int64

    /// Nil when `fd` is not a listening TCP socket (or was closed).
    public init?(of fd: Int32) {
        var length: UInt32 = 0, limit: UInt32 = 0
        guard weir_listen_queue(fd, &length, &limit) == 0 else { return nil }
        self.length = Int(length)
        self.limit = Int(limit)
        drops = max(0, weir_socket_drops(fd))
    }
}

/// net.core.somaxconn of this network namespace: the largest backlog listen() grants (4096 when unreadable). Read
/// into a few bytes on the stack: `readSmallFile`'s 64 KiB buffer would stay resident in the heap of a proxy that
/// reads nothing else that large.
public func maximumListenBacklog() -> Int32 {
    let fd = open("/proc/sys/net/core/somaxconn", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return 4096 }
    defer { closeDescriptor(fd) }
    var digits: (UInt64, UInt64) = (0, 0)
    let n = withUnsafeMutableBytes(of: &digits) { read(fd, $0.baseAddress, $0.count) }
    guard n > 0 else { return 4096 }
    let text = withUnsafeBytes(of: digits) { String(decoding: $0.prefix(n).prefix { $0 >= 48 && $0 <= 57 }, as: UTF8.self) }
    guard let value = Int32(text), value > 0 else { return 4096 }
    return value
}

/// A datagram socket of the AF_UNIX family, for one message to a path (sd_notify(3)'s `$NOTIFY_SOCKET`).
public enum UnixDatagram {
    /// Sends `message` to `path` (a leading 0 byte: the abstract namespace); true when all of it was sent.
    public static func send(_ message: [UInt8], to path: [UInt8]) -> Bool {
        var address = sockaddr_un()
        guard !path.isEmpty, path.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        guard let socket = try? Descriptor.opened("socket", {
            Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }) else { return false }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in path.enumerated() { raw[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        let sent = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { addr in
                message.withUnsafeBytes {
                    sendto(socket.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), addr, length)
                }
            }
        }
        return sent == message.count
    }
}
