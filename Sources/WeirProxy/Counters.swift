import CWeirLinux
import WeirCore

/// Counters of the proxy, shared by all workers (relaxed atomics). A later issue exports them to Prometheus.
public final class ProxyCounters: @unchecked Sendable {
    enum Index: Int, CaseIterable {
        case accepted, active, closed, notRedirected, refusedMaxConnections, connectFailures, connectTimeouts
        case idleTimeouts, resets, fdExhausted, bufferFull, copyFallbacks, drainClosed
    }

    private let words: UnsafeMutablePointer<Int64>
    /// Bytes forwarded, per worker and direction: each worker adds to its own 64-byte line only (written on every
    /// write, so never shared between CPUs); a snapshot sums them.
    private let bytes: UnsafeMutablePointer<Int64>
    private let workerSlots: Int
    private static let slotStride = 8

    init(workers: Int) {
        words = .allocate(capacity: Index.allCases.count)
        words.initialize(repeating: 0, count: Index.allCases.count)
        workerSlots = max(1, workers)
        // Cache-line aligned, so no slot shares a line with another worker's or with `words`.
        bytes = UnsafeMutableRawPointer.allocate(byteCount: workerSlots * Self.slotStride * 8, alignment: 64)
            .bindMemory(to: Int64.self, capacity: workerSlots * Self.slotStride)
        bytes.initialize(repeating: 0, count: workerSlots * Self.slotStride)
    }

    deinit {
        words.deallocate()
        bytes.deallocate()
    }

    /// Bytes written toward `side` by worker `worker`: toward the upstream they came from the client, and back.
    @inline(__always) func addBytes(worker: Int, toward side: ProxySide, _ n: Int) {
        _ = weir_atomic_add(byteSlot(worker, side), Int64(n))
    }

    private func bytesTotal(toward side: ProxySide) -> Int64 {
        (0..<workerSlots).reduce(0) { $0 + weir_atomic_load(byteSlot($1, side)) }
    }

    @inline(__always) private func byteSlot(_ worker: Int, _ side: ProxySide) -> UnsafeMutablePointer<Int64> {
        bytes + worker * Self.slotStride + (side == .upstream ? 0 : 1)
    }

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
            bufferFull: load(.bufferFull), copyFallbacks: load(.copyFallbacks), drainClosed: load(.drainClosed),
            bytesFromClient: bytesTotal(toward: .upstream), bytesFromUpstream: bytesTotal(toward: .client)
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
    /// Bytes forwarded from clients to upstreams, and from upstreams back to clients (written, not just read).
    public var bytesFromClient: Int64
    public var bytesFromUpstream: Int64

    public var description: String {
        "accepted=\(accepted) active=\(active) closed=\(closed) not_redirected=\(notRedirected) "
            + "refused_max_connections=\(refusedMaxConnections) connect_failures=\(connectFailures) "
            + "connect_timeouts=\(connectTimeouts) idle_timeouts=\(idleTimeouts) resets=\(resets) "
            + "fd_exhausted=\(fdExhausted) buffer_full=\(bufferFull) copy_fallbacks=\(copyFallbacks) "
            + "drain_closed=\(drainClosed) bytes_from_client=\(bytesFromClient) "
            + "bytes_from_upstream=\(bytesFromUpstream)"
    }
}
