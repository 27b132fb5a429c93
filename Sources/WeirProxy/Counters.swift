import CWeirLinux

/// Counters of the proxy, shared by all workers (relaxed atomics). A later issue exports them to Prometheus.
public final class ProxyCounters: @unchecked Sendable {
    enum Index: Int, CaseIterable {
        case accepted, active, closed, notRedirected, refusedMaxConnections, connectFailures, connectTimeouts
        case idleTimeouts, resets, fdExhausted, bufferFull, copyFallbacks, drainClosed
    }

    private let words: UnsafeMutablePointer<Int64>

    init() {
        words = .allocate(capacity: Index.allCases.count)
        words.initialize(repeating: 0, count: Index.allCases.count)
    }

    deinit { words.deallocate() }

    @inline(__always) func add(_ i: Index, _ v: Int64 = 1) { _ = weir_atomic_add(words + i.rawValue, v) }
    /// Adds and returns the new value.
    @inline(__always) func addFetch(_ i: Index, _ v: Int64) -> Int64 { weir_atomic_add(words + i.rawValue, v) }
    @inline(__always) func load(_ i: Index) -> Int64 { weir_atomic_load(words + i.rawValue) }

    /// A consistent-enough copy of every counter.
    public func snapshot() -> ProxyCountersSnapshot {
        ProxyCountersSnapshot(
            accepted: load(.accepted), active: load(.active), closed: load(.closed),
            notRedirected: load(.notRedirected), refusedMaxConnections: load(.refusedMaxConnections),
            connectFailures: load(.connectFailures), connectTimeouts: load(.connectTimeouts),
            idleTimeouts: load(.idleTimeouts), resets: load(.resets), fdExhausted: load(.fdExhausted),
            bufferFull: load(.bufferFull), copyFallbacks: load(.copyFallbacks), drainClosed: load(.drainClosed)
        )
    }
}

/// Values of the proxy counters at one moment. Names follow the Prometheus metrics they will become
/// (`weir_proxy_<name>_total`, `weir_proxy_connections_active`).
public struct ProxyCountersSnapshot: Equatable, Sendable, CustomStringConvertible {
    public var accepted: Int64
    /// Connections open now (gauge).
    public var active: Int64
    public var closed: Int64
    /// Connections to a capture port that were not redirected (loop prevention); closed, never forwarded.
    public var notRedirected: Int64
    /// Refused because --max-connections was reached.
    public var refusedMaxConnections: Int64
    public var connectFailures: Int64
    /// Upstream connects that exceeded --connect-timeout.
    public var connectTimeouts: Int64
    /// Closed by --idle-timeout.
    public var idleTimeouts: Int64
    /// Resets propagated from one side to the other.
    public var resets: Int64
    /// EMFILE/ENFILE seen while accepting or connecting.
    public var fdExhausted: Int64
    /// Times a direction stopped reading because its --buffer-limit was full and the receiver was slow.
    public var bufferFull: Int64
    /// Directions that moved bytes with the bounded copy because splice or a pipe was unavailable.
    public var copyFallbacks: Int64
    /// Connections closed at the --drain-timeout deadline.
    public var drainClosed: Int64

    public var description: String {
        "accepted=\(accepted) active=\(active) closed=\(closed) not_redirected=\(notRedirected) "
            + "refused_max_connections=\(refusedMaxConnections) connect_failures=\(connectFailures) "
            + "connect_timeouts=\(connectTimeouts) idle_timeouts=\(idleTimeouts) resets=\(resets) "
            + "fd_exhausted=\(fdExhausted) buffer_full=\(bufferFull) copy_fallbacks=\(copyFallbacks) "
            + "drain_closed=\(drainClosed)"
    }
}
