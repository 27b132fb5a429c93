import Synchronization
import WeirSystem

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
        let descriptor: Descriptor
        let listener: String
        let family: String
        let worker: Int
    }

    private let probes = Mutex<[Probe]>([])

    func add(_ l: Listener, worker: Int) {
        guard let duplicate = try? l.socket.descriptor.duplicate() else { return }  // no metrics for it; never fatal
        let probe = Probe(descriptor: duplicate, listener: l.kind == .inbound ? "inbound" : "outbound",
                          family: l.family == AddressFamily.ipv6 ? "ipv6" : "ipv4", worker: worker)
        probes.withLock { $0.append(probe) }
    }

    /// Closes every duplicate (each closes itself as the list lets it go).
    func closeAll() {
        probes.withLock { $0.removeAll() }
    }

    func read() -> [ListenerStats] {
        probes.withLock { list in
            list.compactMap { p in
                guard let q = ListenQueue(of: p.descriptor.rawValue) else { return nil }
                return ListenerStats(listener: p.listener, family: p.family, worker: p.worker,
                                     queueLength: q.length, queueLimit: q.limit, drops: q.drops)
            }
        }
    }
}
