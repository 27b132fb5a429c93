import WeirCore

/// Bytes in flight in one direction: a pipe borrowed from the worker's pool while data moves (splice), or a
/// bounded buffer when splice cannot be used. Idle directions hold neither.
struct Flight {
    var pipeRead: Int32 = -1
    var pipeWrite: Int32 = -1
    /// Bytes read from the source and not yet written to the destination.
    var pending = 0
    /// Copy fallback: buffer of --buffer-limit bytes and the offset of the first pending byte.
    var buffer: UnsafeMutableRawPointer? = nil
    var offset = 0
    /// Splice failed on this direction once (EINVAL): copy from now on.
    var copyOnly = false
    /// A read once filled the worker's scratch buffer: this direction carries bulk data and splices from now on.
    var bulk = false

    var hasPipe: Bool { pipeRead >= 0 }
}

/// One proxied connection, owned by the worker that accepted it. Kept small: 10,000 idle connections must cost
/// under 2 KiB each, so nothing here grows with traffic.
final class Connection {
    var client: Int32
    var upstream: Int32 = -1
    var state = ProxyConnectionState()
    /// Bytes on their way to the upstream (read from the client), and to the client (read from the upstream): the
    /// same words as the metrics' `client_to_upstream` and `upstream_to_client`.
    var toUpstream = Flight()
    var toClient = Flight()
    var clientReadable = false, clientWritable = false
    var upstreamReadable = false, upstreamWritable = false
    /// The peer's FIN (or hang-up) was signalled: read until end of stream even after a short read.
    var clientHangup = false, upstreamHangup = false
    /// Position in the worker's deadline list (connecting or active), ordered by `listTime`.
    var next: Connection?
    unowned(unsafe) var prev: Connection?
    var listTime: Int64
    var inConnectingList = true
    /// Urgent data was signalled on a side: a short read may then have stopped at its mark (see `relaySmall`).
    var urgent = false
    /// Accepted on the inbound capture port (-z), else the outbound one (-p): the metrics' direction.
    var inbound = false
    /// Taken off the worker for another process (`export`): events already fetched in the same epoll batch are
    /// stale and must not touch it (its state was recorded; the other process serves it from that state).
    var handedOff = false
    /// Its sockets came from another process (a handover, systemd's store, or back from a successor that failed),
    /// which may still hold them open for a while. Closing a descriptor removes its epoll registration only when no
    /// descriptor of the socket is left anywhere: this worker must unwatch them itself before it closes them, or
    /// the socket's next event (an ACK, the peer's data) comes back with the address of a freed connection.
    var sharedDescriptors = false
    /// The pod it belongs to (pod mode): its upstream socket was made in the pod's namespace, and it counts there.
    var pod: PodContext?
    /// CLOCK_MONOTONIC when connect() was called (µs), and when the connection was accepted (ms).
    var dialedUs: Int64 = 0
    let createdMs: Int64

    init(client: Int32, now: Int64) {
        self.client = client
        self.listTime = now
        self.createdMs = now
    }

    func fd(_ side: ProxySide) -> Int32 { side == .client ? client : upstream }
}

/// Intrusive doubly linked list of connections ordered by `listTime` (oldest first): deadlines of one duration.
struct ConnectionList {
    var head: Connection?
    unowned(unsafe) var tail: Connection?
    var count = 0

    mutating func append(_ c: Connection) {
        c.next = nil
        c.prev = tail
        if let t = tail { t.next = c } else { head = c }
        tail = c
        count += 1
    }

    mutating func remove(_ c: Connection) {
        let n = c.next
        if let p = c.prev { p.next = n } else { head = n }
        if let n { n.prev = c.prev } else { tail = c.prev }
        c.prev = nil
        c.next = nil
        count -= 1
    }
}
