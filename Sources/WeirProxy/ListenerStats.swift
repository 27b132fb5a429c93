import CWeirLinux
import Glibc
import Synchronization

/// The accept queue of one of the proxy's listening sockets, read from the socket itself.
public struct ListenerStats: Equatable, Sendable {
    /// "outbound" (-p) or "inbound" (-z).
    public let listener: String
    /// "ipv4" or "ipv6".
    public let family: String
    /// The worker whose SO_REUSEPORT socket this is: the kernel hashes each connection to one socket, so one full
    /// queue drops connections while the others are empty.
    public let worker: Int
    /// Connections whose handshake completed, waiting for accept() (TCP_INFO tcpi_unacked).
    public let queueLength: Int
    /// The queue's limit, the backlog the listener got (TCP_INFO tcpi_sacked).
    public let queueLimit: Int
    /// Connections this listener dropped: a full accept queue, or a SYN it could not answer (SO_MEMINFO drops).
    public let drops: Int64
}

/// Duplicates of the listeners' descriptors, read by the admin thread. They are closed (under the lock) before the
/// workers close theirs when the server drains or retires, so a duplicate never keeps a listener open that nobody
/// accepts from, and never names a descriptor number reused by something else.
final class ListenerProbes: @unchecked Sendable {
    private struct Probe {
        let fd: Int32
        let listener: String
        let family: String
        let worker: Int
    }

    private let probes = Mutex<[Probe]>([])

    func add(_ l: Listener, worker: Int) {
        let fd = fcntl(l.fd, F_DUPFD_CLOEXEC, 0)
        guard fd >= 0 else { return }  // no metrics for this socket; never fatal
        let probe = Probe(fd: fd, listener: l.kind == .inbound ? "inbound" : "outbound",
                          family: l.family == AF_INET6 ? "ipv6" : "ipv4", worker: worker)
        probes.withLock { $0.append(probe) }
    }

    func closeAll() {
        probes.withLock { list in
            for p in list { close(p.fd) }
            list.removeAll()
        }
    }

    func read() -> [ListenerStats] {
        probes.withLock { list in
            list.compactMap { p in
                var length: UInt32 = 0, limit: UInt32 = 0
                guard weir_listen_queue(p.fd, &length, &limit) == 0 else { return nil }
                let drops = weir_socket_drops(p.fd)
                return ListenerStats(listener: p.listener, family: p.family, worker: p.worker,
                                     queueLength: Int(length), queueLimit: Int(limit), drops: max(0, drops))
            }
        }
    }
}
