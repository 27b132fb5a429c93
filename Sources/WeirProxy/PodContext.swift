import WeirCore
import WeirSystem

/// One pod the data plane serves (pod mode): its network namespace, where its listeners live and its upstream
/// sockets are made, its connection ceiling and its counters. A pod is a label on listeners and connections, never a
/// thread: the same workers serve every pod.
///
/// The counters are relaxed atomics in one block per pod; several workers write them (a pod's connections are spread
/// over the workers by SO_REUSEPORT). Per-pod series are bounded by the number of attached pods.
public final class PodContext: @unchecked Sendable {
    /// `namespace/name`: the metrics' `pod` label.
    public let label: String
    /// The registry's key (the pod's UID, or its container id): how a handed-over connection finds its pod.
    public let key: String
    public let namespace: NetworkNamespace.Handle
    /// --max-connections-per-pod (0: no ceiling of its own; --max-connections still holds).
    public let maxConnections: Int
    /// --max-connection-rate-per-pod (disabled: no rate ceiling).
    public let rate: ConnectionRate
    private let words: UnsafeMutablePointer<Int64>

    enum Slot: Int, CaseIterable {
        case acceptedOutbound, acceptedInbound, activeOutbound, activeInbound, failedOutbound, failedInbound
        case bytesToUpstream, bytesToClient, ceilingPauses, ratePauses
        /// The rate ceiling's theoretical arrival time (`ConnectionRate`), in CLOCK_MONOTONIC microseconds.
        case rateTAT
    }

    public init(key: String, label: String, namespace: NetworkNamespace.Handle, maxConnections: Int,
                rate: ConnectionRate = ConnectionRate(perSecond: 0)) {
        self.key = key
        self.label = label
        self.namespace = namespace
        self.maxConnections = maxConnections
        self.rate = rate
        // A cache line of its own, so two pods' counters never share one.
        words = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 64)
            .bindMemory(to: Int64.self, capacity: 16)
        words.initialize(repeating: 0, count: 16)
    }

    deinit { words.deallocate() }

    @inline(__always) func add(_ s: Slot, _ v: Int64 = 1) { AtomicWords.add(words + s.rawValue, v) }
    @inline(__always) func load(_ s: Slot) -> Int64 { AtomicWords.load(words + s.rawValue) }

    /// Open connections of this pod, both directions.
    @inline(__always) var active: Int64 { load(.activeOutbound) + load(.activeInbound) }

    /// At its ceiling: the workers stop accepting on the pod's listeners until it is below again (counted as
    /// `ceilingPauses`); new connections wait in the pod's own accept queues meanwhile, as HAProxy's maxconn makes
    /// them wait, and cost the shared workers nothing.
    @inline(__always) var full: Bool { maxConnections > 0 && active >= Int64(maxConnections) }

    /// Past its rate ceiling at `nowUs`: the workers stop accepting for the pod until `rate.allowedAt` (counted as
    /// `ratePauses`), as at the open-connection ceiling.
    @inline(__always) func rateLimited(nowUs: Int64) -> Bool {
        rate.enabled && rate.limited(tat: load(.rateTAT), nowUs: nowUs)
    }

    /// When the rate ceiling allows the pod's next connection (CLOCK_MONOTONIC microseconds).
    var rateAllowedAtUs: Int64 { rate.allowedAt(tat: load(.rateTAT)) }

    /// One connection taken at `nowUs`, against the rate ceiling.
    @inline(__always) func charge(nowUs: Int64) {
        if rate.enabled { AtomicWords.maxAdd(words + Slot.rateTAT.rawValue, floor: nowUs, rate.intervalUs) }
    }

    public var snapshot: PodCounters {
        PodCounters(acceptedOutbound: load(.acceptedOutbound), acceptedInbound: load(.acceptedInbound),
                    activeOutbound: load(.activeOutbound), activeInbound: load(.activeInbound),
                    failedOutbound: load(.failedOutbound), failedInbound: load(.failedInbound),
                    bytesToUpstream: load(.bytesToUpstream), bytesToClient: load(.bytesToClient),
                    ceilingPauses: load(.ceilingPauses), ratePauses: load(.ratePauses))
    }
}

/// A pod's counters at one moment.
public struct PodCounters: Equatable, Sendable {
    public var acceptedOutbound: Int64, acceptedInbound: Int64
    public var activeOutbound: Int64, activeInbound: Int64
    public var failedOutbound: Int64, failedInbound: Int64
    public var bytesToUpstream: Int64, bytesToClient: Int64
    /// Times a worker stopped accepting for the pod because it reached --max-connections-per-pod.
    public var ceilingPauses: Int64
    /// Times a worker stopped accepting for the pod because it reached --max-connection-rate-per-pod.
    public var ratePauses: Int64 = 0
    public var active: Int64 { activeOutbound + activeInbound }
}
