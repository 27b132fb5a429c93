// The data path. One worker per usable CPU, each with its own SO_REUSEPORT listeners and an edge-triggered epoll
// loop; a connection lives and dies on the worker that accepted it, so nothing on the data path is shared or locked.
//
// Bytes move with splice: source socket -> pipe -> destination socket. A pipe is borrowed from the worker's pool
// only while a direction has bytes in flight and goes back only when empty (drain before pump: the pipe is emptied
// into the destination before the source is read again), so idle connections hold no pipe and no buffer. When a pipe
// cannot be had (descriptors exhausted) or splice refuses the socket, the direction falls back to a copy through a
// buffer of --buffer-limit bytes, freed again as soon as it is empty. Small messages (a read that does not fill the
// worker's 16 KiB scratch buffer) are copied through that scratch buffer instead: for a request or a reply, one read
// and one write are cheaper than two splices. The first read that fills it marks the direction bulk: splice from then.
//
// Every event goes through `ProxyConnectionState` (WeirCore), which returns the actions to perform: shutdown to
// propagate half-close, SO_LINGER 0 to propagate a reset, close. Deadlines of one duration are FIFO lists
// (connecting, active), so timeouts cost O(1) per connection without timers in the kernel.
//
// Which calls stay raw: the per-connection sockets and pipes are Int32s in the connection objects (no `Socket` or
// `Descriptor` per connection: that would be an allocation and reference counting per connection), and every call
// made per event or per connection (accept, read, send, splice, socket, connect, shutdown, setsockopt, close) goes
// through WeirSystem's inline non-throwing functions on those numbers (SocketIO.swift, `SocketOption.apply`,
// `closeDescriptor`, `Poller.add`/`wait`). Listeners, the poller, the ctnetlink socket and the probes' duplicates are
// objects that close themselves.
import Synchronization
import WeirCore
import WeirSystem

/// What the server asks of its workers, read by each after its wake handle fires.
enum DrainMode: Int64 {
    case serving = 0
    /// SIGTERM: stop accepting and drain within --drain-timeout.
    case draining = 1
    /// A reload gave the ports to a new server: stop accepting and let open connections end on their own, bounded
    /// by the idle timeout (a later stop drains within --drain-timeout).
    case retiring = 2
}

/// State shared by all workers and the main thread.
final class SharedState: @unchecked Sendable {
    let config: ProxyConfig
    let counters: ProxyCounters
    private let drainWord = AtomicWord(DrainMode.serving.rawValue)
    /// Workers whose loop has not ended yet.
    let liveWorkers = AtomicWord()
    /// When each worker's loop last ran (CLOCK_MONOTONIC ms), one cache line per worker; per server, so a retiring
    /// server's workers never vouch for a new server's.
    let heartbeats: UnsafeMutablePointer<Int64>
    let workerCount: Int
    /// `--no-splice`: never splice, always use the bounded copy.
    let copyOnly: Bool
    /// Set by a worker that cannot go on; the server decides what follows (a worker never exits the process).
    let failure = Mutex<String?>(nil)

    init(config: ProxyConfig, counters: ProxyCounters, copyOnly: Bool, workers: Int) {
        self.config = config
        self.counters = counters
        self.copyOnly = copyOnly
        workerCount = workers
        heartbeats = UnsafeMutableRawPointer.allocate(byteCount: max(1, workers) * 64, alignment: 64)
            .bindMemory(to: Int64.self, capacity: max(1, workers) * 8)
        heartbeats.initialize(repeating: 0, count: max(1, workers) * 8)  // ProxyServer.start() sets them
    }

    deinit { heartbeats.deallocate() }

    var drainMode: DrainMode {
        get { DrainMode(rawValue: drainWord.load()) ?? .serving }
        set { drainWord.store(newValue.rawValue) }
    }

    @inline(__always) func beat(worker: Int, nowMs: Int64) { AtomicWords.store(heartbeats + worker * 8, nowMs) }

    func heartbeatValues() -> [Int64] { (0..<workerCount).map { AtomicWords.load(heartbeats + $0 * 8) } }

    func fail(_ reason: String) {
        failure.withLock { if $0 == nil { $0 = reason } }
    }
}

// Poller tokens: `Poller.wakeToken` is the wake handle, 16 + i is listener i; anything else is a Connection's
// address (aligned, so far above these) with bit 0 telling the side: 0 client, 1 upstream.
let tagListenerBase: UInt64 = 16
let tagListenerLimit: UInt64 = 4096
let maxPooledPipes = 16
/// Connections taken from one listener per readiness event. Listeners are watched level-triggered, so one with more
/// waiting is reported again at the next wait, after the others that are ready: a connection storm on one pod's
/// listener cannot starve another pod's (ztunnel#24).
let acceptsPerTurn = 32

/// A change the server asks of a worker: its listeners (pod mode), or a handover.
enum ListenerChange {
    case add([Listener])
    case removePod(PodContext)
    /// Stop accepting and take every connection off this worker; the result goes into the request.
    case export(WorkerReply<ExportedConnections>)
    /// Serve these connections (handed in, or given back after a failed handover).
    case adopt([Connection])
    /// A failed handover: the listeners and connections taken off by `export` are this worker's again.
    case resume(ExportedConnections)
    /// Duplicates of every listener, with its record, for a reload's new data plane (`ProxyServer.lendListeners`).
    case lend(WorkerReply<[InheritedListener]>)
}

/// One worker's answer to a request (`.export`, `.lend`), waited for by the thread that asked
/// (`ProxyServer.askWorkers`). A late answer stays here, and goes with the reply.
final class WorkerReply<Value>: @unchecked Sendable {
    let result = Mutex<Value?>(nil)
}

final class Worker {
    let index: Int
    /// Per-connection event lines, rate-limited per event.
    let eventLog = EventLogLimiter()
    let shared: SharedState
    let config: ProxyConfig
    let counters: ProxyCounters
    /// Closed when the worker is freed: after the server joined its thread, so a `notify()` racing with the end of
    /// the loop never writes into a descriptor number reused by a live socket.
    let poller: Poller
    /// Listener slots: a slot's index is its poller token (see `listenerTokens`), so a pod's listeners can come and
    /// go while the others keep theirs. Nil: a free slot.
    var listeners: [Listener?]
    /// Listener changes the server asks for (a pod attached or detached), taken when the wake handle fires.
    let inbox = Mutex<[ListenerChange]>([])
    /// The namespace the worker's thread lives in, to come back to after making a pod's upstream socket.
    let home: NetworkNamespace.Handle?
    var accepting = AcceptGate()
    var pipePool: [(Int32, Int32)] = []
    var connecting = ConnectionList()
    var active = ConnectionList()
    /// Connections closed during the current batch of events; freed after it, as later events may name them.
    var graveyard: [Connection] = []
    var now: Int64 = Clock.nowMs()
    var reserveFd: Int32 = -1
    /// ctnetlink socket for `forget`, opened by the thread that made the worker (its capabilities are the ones the
    /// kernel checks); nil if it could not be opened (counted as failures, never fatal).
    var conntrack: Conntrack?
    /// The same inside each pod's namespace (`podConntrack`); nil values remember a handle that could not be opened.
    var podConntracks: [ObjectIdentifier: Conntrack?] = [:]
    var draining = false
    /// The listeners went to another process (a handover): accepting never resumes.
    var surrendered = false
    /// Pods at their ceiling whose listeners this worker does not watch for now.
    var pausedPods: [PodContext] = []
    /// When the paused pods are looked at again (`resumePods`).
    var resumeAtMs = Int64.max
    var drainDeadline: Int64 = 0
    /// When the connecting/idle/draining gauges are published next, and the values last published.
    var nextGauges: Int64 = 0
    var published = (connecting: Int64(0), idle: Int64(0), draining: Int64(0))
    let pipeSize: Int32
    /// Scratch buffer for small messages, shared by all connections of this worker (only used within one call).
    let scratch: UnsafeMutableRawPointer
    let scratchSize = 16 * 1024
    let touchGranularity: Int64
    private var released = false
    /// `--tproxy-source-ports` as a range (nil: the kernel chooses), and where this worker takes the next port: each
    /// worker starts at its own share of the range, so workers rarely try the same port at once.
    var sourcePortCursor: SourcePortCursor?
    var sourcePorts: ClosedRange<UInt16>? { sourcePortCursor?.ports }
    /// Source ports tried for one upstream connection before it is refused, at bind and at connect together (a
    /// connect that found the 4-tuple taken costs a new socket: a few microseconds each, and only while ports near
    /// the cursor are in use). Long-lived connections hold runs of neighbouring ports, so a handful of tries is not
    /// enough on a small range.
    static let sourcePortAttempts = 64

    init(index: Int, shared: SharedState, listeners: [Listener]) throws {
        self.index = index
        self.shared = shared
        self.config = shared.config
        self.counters = shared.counters
        self.listeners = listeners
        home = try? NetworkNamespace.Handle.current()
        poller = try Poller(capacity: 256)
        pipeSize = Int32(shared.config.bufferLimit)
        scratch = UnsafeMutableRawPointer.allocate(byteCount: scratchSize, alignment: 16)
        let idle = shared.config.idleTimeoutMs
        // Without an idle timeout the list is still kept in order of activity, at one move per second at most: the
        // idle gauge reads it.
        touchGranularity = idle > 0 ? max(1, min(1000, idle / 10)) : 1000
        if case .range(let r) = shared.config.tproxySourcePorts {
            sourcePortCursor = SourcePortCursor(ports: r, start: (r.count / max(1, shared.workerCount)) * index,
                                                attempts: Self.sourcePortAttempts)
        }
        let refused = accepting.open(poller, listenerTokens)
        guard refused == 0 else { throw SystemError("epoll_ctl", errno: refused) }
        reserveFd = openReserveDescriptor()
        do {
            conntrack = try Conntrack.open()
        } catch let e as SystemError {
            log("warning", ["worker": index, "reason": "no ctnetlink socket: conntrack entries of failed upstream "
                                + "flows stay, and a new connection on the same 4-tuple may go around the capture",
                            "errno": errnoName(e.errno)])
        }
    }

    deinit { release() }

    /// The one teardown: closes the listeners, pooled pipes, the reserve descriptor and the ctnetlink socket, and
    /// frees the scratch buffer. Run when the loop ends (a retired server's workers hold nothing while the server
    /// waits to be stopped), or when a worker that never ran is freed. The poller goes with the worker itself.
    private func release() {
        guard !released else { return }
        released = true
        listeners.removeAll()
        for (r, w) in pipePool { closeDescriptor(r); closeDescriptor(w) }
        pipePool.removeAll()
        closeDescriptor(reserveFd)
        reserveFd = -1
        conntrack = nil
        podConntracks.removeAll()
        scratch.deallocate()
    }

    /// Wakes the worker from another thread (drain).
    func notify() { poller.wake() }

    /// The listeners accepting watches, with their poller tokens: all but those of pods paused at a ceiling, which
    /// `resumePods` watches again. Watched while their pod is paused (accepting opening again after a descriptor
    /// pause or a failed handover), a level-triggered listener with a connection waiting would wake the loop on
    /// every turn until the pod resumed.
    var listenerTokens: [(fd: Int32, token: UInt64)] {
        listeners.enumerated().compactMap { i, l in
            guard let l else { return nil }
            if let pod = l.pod, pausedPods.contains(where: { $0 === pod }) { return nil }
            return (l.fd, tagListenerBase + UInt64(i))
        }
    }

    /// Hands the worker a change of its listeners and wakes it (any thread).
    func post(_ change: ListenerChange) {
        inbox.withLock { $0.append(change) }
        poller.wake()
    }

    /// Applies the changes posted since the last wake: new listeners take free slots and are watched at once (when
    /// accepting is paused, they are watched when the pause ends); a detached pod's listeners stop being watched and
    /// close. A draining worker closes new listeners at once.
    private func takeInbox() {
        let changes = inbox.withLock { list -> [ListenerChange] in
            let taken = list
            list.removeAll()
            return taken
        }
        for change in changes {
            switch change {
            case .add(let added):
                guard !draining else { continue }  // the listeners close as `added` goes
                for l in added {
                    let slot = listeners.firstIndex { $0 == nil } ?? listeners.count
                    guard slot < Int(tagListenerLimit - tagListenerBase) else {
                        log("warning", ["worker": index, "reason": "listener slots full", "pod": l.pod?.label ?? ""])
                        continue
                    }
                    if slot == listeners.count { listeners.append(l) } else { listeners[slot] = l }
                    if accepting.isOpen {
                        let e = poller.add(l.fd, .readable, token: tagListenerBase + UInt64(slot))
                        if e != 0 { log("warning", ["worker": index, "reason": "cannot watch a pod listener",
                                                   "errno": errnoName(e), "pod": l.pod?.label ?? ""]) }
                    }
                }
            case .export(let request):
                let exported = export()
                request.result.withLock { $0 = exported }
            case .adopt(let connections):
                adopt(connections)
            case .lend(let request):
                var lent: [InheritedListener] = []
                if !draining && !surrendered {
                    for case let l? in listeners {
                        guard let copy = try? Descriptor.duplicating(l.fd) else { continue }  // that one opens anew
                        lent.append(InheritedListener(record: ProxyServer.record(of: l), descriptor: copy))
                    }
                }
                request.result.withLock { $0 = lent }
            case .resume(let exported):
                surrendered = false
                listeners = exported.listeners.map { Optional($0) }
                exported.listeners = []
                if !draining { accepting.open(poller, listenerTokens) }
                adopt(exported.connections)
                exported.connections = []
                log("handover_resumed", ["worker": index, "connections": exported.records.count])
            case .removePod(let pod):
                for (i, l) in listeners.enumerated() where l?.pod === pod {
                    // A duplicate (the metrics probe) may keep the socket open past this close: unwatch it first.
                    poller.remove(l!.fd)
                    listeners[i] = nil
                }
                while let last = listeners.last, last == nil { listeners.removeLast() }
                pausedPods.removeAll { $0 === pod }
                podConntracks[ObjectIdentifier(pod)] = nil
            }
        }
    }

    // MARK: loop

    func run() {
        let uid = config.proxyUID, gid = config.proxyGID
        guard setThreadFileSystemIDs(uid: uid, gid: gid) else {
            shared.fail("worker \(index) cannot own upstream sockets as uid \(uid) gid \(gid): run as root or as "
                        + "that user")
            release()
            return
        }
        while true {
            var failure: SystemError?
            let n: Int
            do { n = try poller.wait(timeoutMs: nextTimeout()) } catch {
                n = 0
                failure = error as? SystemError
            }
            now = Clock.nowMs()
            shared.beat(worker: index, nowMs: now)
            if let failure {
                shared.fail("worker \(index): \(failure)")
                break
            }
            for i in 0..<n { dispatch(poller[i]) }
            expireDeadlines()
            if !pausedPods.isEmpty { resumePods() }
            graveyard.removeAll(keepingCapacity: true)
            if draining && connecting.count == 0 && active.count == 0 { break }
            if now >= nextGauges {
                nextGauges = now + 1000
                publishGauges()
            }
        }
        publishGauges(ended: true)
        release()
        shared.liveWorkers.add(-1)
    }

    @inline(__always) private func dispatch(_ e: PollEvent) {
        if e.token == Poller.wakeToken {
            poller.acknowledgeWake()
            takeInbox()
            let mode = shared.drainMode
            if mode != .serving && !draining {
                startDrain(retiring: mode == .retiring)
            } else if mode == .draining && draining {
                // Retiring, then stopped: the usual bounded drain from now on.
                drainDeadline = min(drainDeadline, now + config.drainTimeoutMs)
            }
        } else if e.token < tagListenerLimit {
            // A drain or retire earlier in this batch closed the listeners: their later events are stale.
            let i = Int(e.token - tagListenerBase)
            if i < listeners.count, let l = listeners[i] { acceptAll(l, limit: acceptsPerTurn) }
        } else {
            let side: ProxySide = e.token & 1 == 0 ? .client : .upstream
            let c = Unmanaged<Connection>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(e.token & ~1))!)
                .takeUnretainedValue()
            // An export earlier in this batch took it (still alive: the export holds it). Serving this event would
            // move it between lists that no longer hold it, or move bytes its recorded state does not know of.
            if c.handedOff { return }
            handleIO(c, side: side, events: e.events)
        }
    }

    /// Publishes the connecting, idle and draining gauges as deltas of this worker's last values (zeros once its
    /// loop has ended). Idle connections are the oldest of the `active` list (ordered by last activity), so
    /// counting them walks only those.
    func publishGauges(ended: Bool = false) {
        var idle: Int64 = 0
        if !ended {
            var c = active.head
            let before = now - ProxyCountersSnapshot.idleAfterMs
            while let current = c, current.listTime <= before {
                idle += 1
                c = current.next
            }
        }
        let open = Int64(connecting.count + active.count)
        let next = ended ? (Int64(0), Int64(0), Int64(0))
                         : (Int64(connecting.count), idle, draining ? open : 0)
        typealias Slot = ProxyCounters.Slot
        if next.0 != published.connecting { counters.addWorker(index, Slot.connecting, next.0 - published.connecting) }
        if next.1 != published.idle { counters.addWorker(index, Slot.idle, next.1 - published.idle) }
        if next.2 != published.draining { counters.addWorker(index, Slot.draining, next.2 - published.draining) }
        published = (next.0, next.1, next.2)
    }

    func nextTimeout() -> Int32 {
        var deadline = now + 1000
        if let c = connecting.head { deadline = min(deadline, c.listTime + config.connectTimeoutMs) }
        if config.idleTimeoutMs > 0, let c = active.head { deadline = min(deadline, c.listTime + config.idleTimeoutMs) }
        if accepting.isPaused && !draining { deadline = min(deadline, accepting.pausedUntil) }
        if !pausedPods.isEmpty { deadline = min(deadline, resumeAtMs) }
        if draining { deadline = min(deadline, drainDeadline) }
        return Poller.timeout(until: deadline, now: Clock.nowMs(), maxMs: 1000)
    }

    func expireDeadlines() {
        while let c = connecting.head, c.listTime + config.connectTimeoutMs <= now {
            counters.upstreamFailed(worker: index, .connectTimeout)
            c.pod?.add(c.inbound ? .failedInbound : .failedOutbound)
            eventLog.log("connect_timeout", ["worker": index, "after_ms": config.connectTimeoutMs])
            apply(c, c.state.handle(.connectTimeout))
        }
        if config.idleTimeoutMs > 0 {
            while let c = active.head, c.listTime + config.idleTimeoutMs <= now {
                counters.add(.idleTimeouts)
                apply(c, c.state.handle(.idleTimeout))
            }
        }
        if !draining && !surrendered && accepting.pauseEnded(now: now) {
            if reserveFd < 0 { reserveFd = openReserveDescriptor() }
            accepting.open(poller, listenerTokens)
        }
        if draining && now >= drainDeadline {
            for list in [connecting, active] {
                var c = list.head
                while let current = c {
                    c = current.next
                    counters.add(.drainClosed)
                    apply(current, current.state.handle(.drainDeadline))
                }
            }
        }
    }

    func startDrain(retiring: Bool) {
        draining = true
        nextGauges = 0  // the draining gauge shows the drain from its first moment
        // Retiring keeps open connections as long as they are in use, with no deadline: the idle timeout still
        // closes idle ones (each connection's own), and a later stop drains within --drain-timeout.
        drainDeadline = retiring ? Int64.max / 4 : now + config.drainTimeoutMs
        // The listen queues hold connections whose handshake the kernel completed: their clients count them as
        // established, and closing a listener resets them. Take them first; they are served like the others.
        if accepting.isOpen { for case let l? in listeners { acceptAll(l, limit: Int.max, draining: true) } }
        // A reload's new data plane may hold the same sockets (`lendListeners`): this close then leaves them open,
        // and a socket still open keeps its epoll registration. Unwatched first, or its connections for the new
        // data plane would wake this worker on every turn (level-triggered) for ever.
        for case let l? in listeners { poller.remove(l.fd) }
        listeners.removeAll()  // closes them
        accepting.close()
        let open = connecting.count + active.count
        if retiring {
            log("retire_started", ["worker": index, "connections": open, "idle_timeout_ms": config.idleTimeoutMs])
        } else {
            log("drain_started", ["worker": index, "connections": open, "deadline_ms": config.drainTimeoutMs])
        }
        for list in [connecting, active] {
            var c = list.head
            while let current = c {
                c = current.next
                apply(current, current.state.handle(.drainStarted))
            }
        }
    }
}
