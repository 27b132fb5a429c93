/// When the agent's loop must act next, as a value: the reconcile of every `--reconcile-interval`, a reconcile brought
/// forward (a netlink event, weir's own apply overlapping someone else's commit, `/readyz` finding something
/// missing), the watchdog ping, the look at the workers at least once a second, and the release of the pages a burst
/// of control-plane work touched once it has been quiet for a second. The loop sleeps until
/// `deadline(now:)`, then asks what is `due(now:)` and reports back what it did. Times are CLOCK_MONOTONIC
/// milliseconds.
struct AgentSchedule: Equatable {
    struct Due: OptionSet {
        let rawValue: Int
        static let reconcile = Due(rawValue: 1)
        static let watchdog = Due(rawValue: 2)
        static let releasePages = Due(rawValue: 4)
    }

    /// The loop wakes at least this often, so a worker's failure is noticed within a second.
    static let maxSleepMs: Int64 = 1000
    /// Reconciles are at least this far apart, however many events arrive.
    static let minReconcileGapMs: Int64 = 1000
    /// An event waits this long before its reconcile: events come in bursts (weir's own apply makes some).
    static let eventDelayMs: Int64 = 100
    /// Control-plane work (pod attaches and detaches, a reload) must have been quiet this long before the heap it
    /// freed and the code pages it touched are given back (`Memory.giveBack`): once per burst, however many pods it
    /// brought.
    static let pageReleaseDelayMs: Int64 = 1000

    /// The reconcile of the interval.
    private(set) var nextReconcile: Int64
    /// A reconcile brought forward, nil when none is pending.
    private(set) var earlyReconcile: Int64?
    private(set) var lastReconcile: Int64
    /// The next watchdog ping (or the next look at whether to withhold it); nil without a watchdog.
    private(set) var nextWatchdog: Int64?
    let watchdogIntervalMs: Int64?
    /// When the pages the last control-plane burst touched are released; nil when no release is pending.
    private(set) var pageRelease: Int64?

    /// The schedule of a loop starting at `now`: the first reconcile one interval later, the first ping at once.
    init(now: Int64, reconcileIntervalMs: Int64, watchdogIntervalMs: Int64?) {
        nextReconcile = now + reconcileIntervalMs
        lastReconcile = now
        nextWatchdog = watchdogIntervalMs == nil ? nil : now
        self.watchdogIntervalMs = watchdogIntervalMs
    }

    /// The latest time the loop may sleep until, `now` being when it last woke.
    func deadline(now: Int64) -> Int64 {
        min(nextReconcile, earlyReconcile ?? .max, nextWatchdog ?? .max, pageRelease ?? .max, now + Self.maxSleepMs)
    }

    func due(now: Int64) -> Due {
        var due: Due = []
        if now >= nextReconcile || earlyReconcile.map({ now >= $0 }) == true { due.insert(.reconcile) }
        if let nextWatchdog, now >= nextWatchdog { due.insert(.watchdog) }
        if let pageRelease, now >= pageRelease { due.insert(.releasePages) }
        return due
    }

    /// `/readyz` found something missing: reconcile as soon as the gap since the last one allows (this replaces a
    /// later plan an event made).
    mutating func reconcileRequested(now: Int64) {
        earlyReconcile = max(now, lastReconcile + Self.minReconcileGapMs)
    }

    /// Something may have changed behind weir's back: reconcile soon, unless a reconcile is already planned.
    mutating func changeSuspected(now: Int64) {
        if earlyReconcile == nil { earlyReconcile = max(now + Self.eventDelayMs, lastReconcile + Self.minReconcileGapMs) }
    }

    /// A reconcile ended at `time`; the next one of the interval is `intervalMs` later (a reload may change it).
    mutating func reconciled(at time: Int64, intervalMs: Int64) {
        lastReconcile = time
        earlyReconcile = nil
        nextReconcile = time + intervalMs
    }

    /// The watchdog was looked at `now` (pinged, or withheld because a loop is stale).
    mutating func watchdogHandled(now: Int64) {
        if let watchdogIntervalMs { nextWatchdog = now + watchdogIntervalMs }
    }

    /// The control plane worked at `now` (a pod request served, a reload): the release moves to a quiet second later.
    mutating func controlPlaneWorked(now: Int64) {
        pageRelease = now + Self.pageReleaseDelayMs
    }

    /// The pages were released.
    mutating func pagesReleased() {
        pageRelease = nil
    }
}
