import WeirCore
import WeirSystem

/// Why an upstream connect failed, as the metrics label it: `weir_proxy_upstream_failures_total{reason}` is the
/// one family that counts them.
public enum UpstreamFailure: Int, CaseIterable, Sendable {
    /// `connectTimeout`: --connect-timeout passed before the handshake completed (weir gave up); `timeout`: the
    /// kernel gave up (ETIMEDOUT, its SYN retries exhausted).
    case refused, timeout, connectTimeout, unreachable, reset, other

    public var label: String {
        switch self {
        case .refused: "refused"
        case .timeout: "timeout"
        case .connectTimeout: "connect_timeout"
        case .unreachable: "unreachable"
        case .reset: "reset"
        case .other: "other"
        }
    }

    static func of(errno e: Int32) -> UpstreamFailure {
        switch e {
        case Errno.ECONNREFUSED: .refused
        case Errno.ETIMEDOUT: .timeout
        case Errno.ENETUNREACH, Errno.EHOSTUNREACH, Errno.EADDRNOTAVAIL, Errno.ENETDOWN, Errno.EHOSTDOWN: .unreachable
        case Errno.ECONNRESET, Errno.ECONNABORTED, Errno.EPIPE: .reset
        default: .other
        }
    }
}

/// Counters of the proxy. Events of the whole proxy (accepted, refused, ...) are relaxed atomics shared by all
/// workers. Everything written per byte or per connection (bytes, connections by direction, failures by reason, the
/// connect and lifetime histograms) lives in a block per worker, on cache lines of its own: only that
/// worker writes it, so counting never bounces a line between CPUs and needs no lock. A snapshot sums the blocks.
public final class ProxyCounters: @unchecked Sendable {
    enum Index: Int, CaseIterable {
        case accepted, active, closed, notRedirected, refusedMaxConnections
        case idleTimeouts, resets, fdExhausted, bufferFull, copyFallbacks, drainClosed
        case conntrackDeleted, conntrackDeleteFailures, conntrackSpared
    }

    /// Slots of a worker's block.
    enum Slot {
        static let bytesToUpstream = 0, bytesToClient = 1
        static let inboundTotal = 2, outboundTotal = 3, inboundActive = 4, outboundActive = 5
        static let failures = 6  // one per UpstreamFailure
        static let connectSumUs = failures + UpstreamFailure.allCases.count
        static let connectBuckets = connectSumUs + 1  // HistogramBounds.connect.count + 1 slots
        static let durationSumMs = connectBuckets + HistogramBounds.connect.count + 1
        static let durationBuckets = durationSumMs + 1
        /// Gauges each worker publishes about once a second, as deltas of its own last values: a retiring server
        /// and its successor may share these counters and a worker index.
        static let connecting = durationBuckets + HistogramBounds.duration.count + 1
        static let idle = connecting + 1, draining = connecting + 2
        static let count = draining + 1
        /// Whole cache lines per worker.
        static let stride = (count + 7) / 8 * 8
    }

    private let words: UnsafeMutablePointer<Int64>
    private let blocks: UnsafeMutablePointer<Int64>
    public let workerSlots: Int

    init(workers: Int) {
        words = .allocate(capacity: Index.allCases.count)
        words.initialize(repeating: 0, count: Index.allCases.count)
        workerSlots = max(1, workers)
        // Cache-line aligned, so no block shares a line with another worker's or with `words`.
        blocks = UnsafeMutableRawPointer.allocate(byteCount: workerSlots * Slot.stride * 8, alignment: 64)
            .bindMemory(to: Int64.self, capacity: workerSlots * Slot.stride)
        blocks.initialize(repeating: 0, count: workerSlots * Slot.stride)
    }

    deinit {
        words.deallocate()
        blocks.deallocate()
    }

    @inline(__always) private func slot(_ worker: Int, _ s: Int) -> UnsafeMutablePointer<Int64> {
        blocks + worker * Slot.stride + s
    }

    @inline(__always) func addWorker(_ worker: Int, _ s: Int, _ v: Int64 = 1) {
        AtomicWords.add(slot(worker, s), v)
    }

    /// Bytes written toward `side` by worker `worker`: toward the upstream they came from the client, and back.
    @inline(__always) func addBytes(worker: Int, toward side: ProxySide, _ n: Int) {
        addWorker(worker, side == .upstream ? Slot.bytesToUpstream : Slot.bytesToClient, Int64(n))
    }

    /// A connection that will be forwarded (its destination is known), by direction.
    @inline(__always) func opened(worker: Int, inbound: Bool) {
        addWorker(worker, inbound ? Slot.inboundTotal : Slot.outboundTotal)
        addWorker(worker, inbound ? Slot.inboundActive : Slot.outboundActive)
    }

    /// A forwarded connection closed after `lifetimeMs`.
    @inline(__always) func closedForwarded(worker: Int, inbound: Bool, lifetimeMs: Int64) {
        addWorker(worker, inbound ? Slot.inboundActive : Slot.outboundActive, -1)
        addWorker(worker, Slot.durationSumMs, lifetimeMs)
        let seconds = Double(lifetimeMs) / 1000
        addWorker(worker, Slot.durationBuckets + HistogramSnapshot.slot(of: seconds, bounds: HistogramBounds.duration))
    }

    @inline(__always) func connected(worker: Int, afterUs us: Int64) {
        addWorker(worker, Slot.connectSumUs, us)
        let seconds = Double(us) / 1_000_000
        addWorker(worker, Slot.connectBuckets + HistogramSnapshot.slot(of: seconds, bounds: HistogramBounds.connect))
    }

    @inline(__always) func upstreamFailed(worker: Int, _ reason: UpstreamFailure) {
        addWorker(worker, Slot.failures + reason.rawValue)
    }

    private func sum(_ s: Int) -> Int64 {
        (0..<workerSlots).reduce(0) { $0 + AtomicWords.load(slot($1, s)) }
    }

    @inline(__always) func add(_ i: Index, _ v: Int64 = 1) { AtomicWords.add(words + i.rawValue, v) }
    /// Adds and returns the new value.
    @inline(__always) func addFetch(_ i: Index, _ v: Int64) -> Int64 { AtomicWords.add(words + i.rawValue, v) }
    @inline(__always) func load(_ i: Index) -> Int64 { AtomicWords.load(words + i.rawValue) }

    /// A consistent-enough copy of every counter.
    public func snapshot() -> ProxyCountersSnapshot {
        ProxyCountersSnapshot(
            accepted: load(.accepted), active: load(.active), closed: load(.closed),
            notRedirected: load(.notRedirected), refusedMaxConnections: load(.refusedMaxConnections),
            connecting: sum(Slot.connecting), idle: sum(Slot.idle), draining: sum(Slot.draining),
            idleTimeouts: load(.idleTimeouts), resets: load(.resets), fdExhausted: load(.fdExhausted),
            bufferFull: load(.bufferFull), copyFallbacks: load(.copyFallbacks), drainClosed: load(.drainClosed),
            conntrackDeleted: load(.conntrackDeleted), conntrackDeleteFailures: load(.conntrackDeleteFailures),
            conntrackSpared: load(.conntrackSpared),
            bytesFromClient: sum(Slot.bytesToUpstream), bytesFromUpstream: sum(Slot.bytesToClient),
            inboundTotal: sum(Slot.inboundTotal), outboundTotal: sum(Slot.outboundTotal),
            inboundActive: sum(Slot.inboundActive), outboundActive: sum(Slot.outboundActive),
            failures: UpstreamFailure.allCases.map { sum(Slot.failures + $0.rawValue) }
        )
    }

    /// Slots that are gauges (what is open now): never carried over, the connections that are moved count again.
    private static func isGauge(_ slot: Int) -> Bool {
        [Slot.inboundActive, Slot.outboundActive, Slot.connecting, Slot.idle, Slot.draining].contains(slot)
    }

    /// Every total (not the gauges) in a fixed order, for the process that replaces this one (handover): its metric
    /// series go on from these instead of from zero.
    public func totals() -> [Int64] {
        Index.allCases.map { $0 == .active ? 0 : load($0) } + (0..<Slot.count).map { Self.isGauge($0) ? 0 : sum($0) }
    }

    /// Adds a predecessor's `totals()`; ignored (false) when they come from a build with another layout.
    @discardableResult
    public func carryOver(_ totals: [Int64]) -> Bool {
        guard totals.count == Index.allCases.count + Slot.count else { return false }
        for (i, index) in Index.allCases.enumerated() where index != .active { add(index, totals[i]) }
        for s in 0..<Slot.count where !Self.isGauge(s) { addWorker(0, s, totals[Index.allCases.count + s]) }
        return true
    }

    /// The upstream connect and connection lifetime histograms, summed over workers.
    public func histograms() -> (connect: HistogramSnapshot, duration: HistogramSnapshot) {
        let c = (0...HistogramBounds.connect.count).map { sum(Slot.connectBuckets + $0) }
        let d = (0...HistogramBounds.duration.count).map { sum(Slot.durationBuckets + $0) }
        return (HistogramSnapshot(name: "weir_proxy_upstream_connect_seconds", bounds: HistogramBounds.connect,
                                  counts: c, sum: Double(sum(Slot.connectSumUs)) / 1_000_000),
                HistogramSnapshot(name: "weir_proxy_connection_duration_seconds", bounds: HistogramBounds.duration,
                                  counts: d, sum: Double(sum(Slot.durationSumMs)) / 1000))
    }
}

/// Values of the proxy counters at one moment. Names follow the Prometheus metrics they become
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
    /// Gauges, as the workers last published them (about once a second): connections whose upstream connect is in
    /// progress; established connections that moved no bytes for `idleAfterMs`; connections still open on a worker
    /// that drains (SIGTERM) or retires (a reload).
    public var connecting: Int64
    public var idle: Int64
    public var draining: Int64
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
    /// Conntrack entries of upstream flows that ended without the proxy's own FIN or RST, deleted so that no new
    /// connection on the same 4-tuple reuses them around the capture; and deletions the kernel refused (not ENOENT).
    public var conntrackDeleted: Int64
    public var conntrackDeleteFailures: Int64
    /// Deletes not made because an application's connection, redirected to the proxy, had taken the 4-tuple by then.
    public var conntrackSpared: Int64
    /// Bytes forwarded from clients to upstreams, and from upstreams back to clients (written, not just read).
    public var bytesFromClient: Int64
    public var bytesFromUpstream: Int64
    /// Connections forwarded (destination known, upstream dialled), by direction, and those open now.
    public var inboundTotal: Int64
    public var outboundTotal: Int64
    public var inboundActive: Int64
    public var outboundActive: Int64
    /// Upstream connect failures by `UpstreamFailure` (indexed by its raw value).
    public var failures: [Int64]

    /// An established connection counts as idle once it moved no bytes for this long.
    public static let idleAfterMs: Int64 = 10_000

    public func failures(_ reason: UpstreamFailure) -> Int64 { failures[reason.rawValue] }

    public var description: String {
        "accepted=\(accepted) active=\(active) closed=\(closed) not_redirected=\(notRedirected) "
            + "refused_max_connections=\(refusedMaxConnections) "
            + UpstreamFailure.allCases.map { "upstream_failures_\($0.label)=\(failures($0)) " }.joined()
            + "idle_timeouts=\(idleTimeouts) resets=\(resets) "
            + "fd_exhausted=\(fdExhausted) buffer_full=\(bufferFull) copy_fallbacks=\(copyFallbacks) "
            + "drain_closed=\(drainClosed) conntrack_deleted=\(conntrackDeleted) "
            + "conntrack_delete_failures=\(conntrackDeleteFailures) conntrack_spared=\(conntrackSpared) "
            + "bytes_from_client=\(bytesFromClient) "
            + "bytes_from_upstream=\(bytesFromUpstream) inbound=\(inboundTotal) outbound=\(outboundTotal)"
    }
}
