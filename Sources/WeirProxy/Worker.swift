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
import CWeirLinux
import Glibc
import Synchronization
import WeirCore
import WeirSystem

/// State shared by all workers and the main thread.
final class SharedState: @unchecked Sendable {
    let config: ProxyConfig
    let counters: ProxyCounters
    /// 0 while serving; 1 to drain within --drain-timeout (SIGTERM); 2 to retire (a reload gave the ports to a new
    /// server): stop accepting and let open connections end on their own, bounded by the idle timeout. Read by
    /// workers after their eventfd fires.
    let draining: UnsafeMutablePointer<Int64>
    /// Workers whose loop has not ended yet.
    let liveWorkers: UnsafeMutablePointer<Int64>
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
        draining = .allocate(capacity: 1)
        draining.initialize(to: 0)
        liveWorkers = .allocate(capacity: 1)
        liveWorkers.initialize(to: 0)
    }

    deinit {
        draining.deallocate()
        liveWorkers.deallocate()
        heartbeats.deallocate()
    }

    @inline(__always) func beat(worker: Int, nowMs: Int64) { weir_atomic_store(heartbeats + worker * 8, nowMs) }

    func heartbeatValues() -> [Int64] { (0..<workerCount).map { weir_atomic_load(heartbeats + $0 * 8) } }

    func fail(_ reason: String) {
        failure.withLock { if $0 == nil { $0 = reason } }
    }
}

// epoll cookies: 1 is the wake eventfd, 16 + i is listener i; anything else is a Connection's address (aligned, so
// far above these) with bit 0 telling the side: 0 client, 1 upstream.
private let tagWake: UInt64 = 1
private let tagListenerBase: UInt64 = 16
private let tagListenerLimit: UInt64 = 4096
let maxPooledPipes = 16

final class Worker {
    let index: Int
    /// Per-connection event lines, rate-limited per event.
    let eventLog = EventLogLimiter()
    let shared: SharedState
    let config: ProxyConfig
    let counters: ProxyCounters
    let epoll: Int32
    let wake: Int32
    var listeners: [Listener]
    var pipePool: [(Int32, Int32)] = []
    var connecting = ConnectionList()
    var active = ConnectionList()
    /// Connections closed during the current batch of events; freed after it, as later events may name them.
    var graveyard: [Connection] = []
    var now: Int64 = weir_now_ms()
    var acceptPausedUntil: Int64 = 0
    var listenersRegistered = false
    var reserveFd: Int32 = -1
    /// ctnetlink socket for `forgetUpstreamFlow`, opened by the thread that made the worker (its capabilities are
    /// the ones the kernel checks); -1 if it could not be opened (counted as failures, never fatal).
    var conntrack: Int32 = -1
    var draining = false
    var drainDeadline: Int64 = 0
    /// When the connecting/idle/draining gauges are published next, and the values last published.
    var nextGauges: Int64 = 0
    var published = (connecting: Int64(0), idle: Int64(0), draining: Int64(0))
    let pipeSize: Int32
    /// Scratch buffer for small messages, shared by all connections of this worker (only used within one call).
    let scratch: UnsafeMutableRawPointer
    let scratchSize = 16 * 1024
    let touchGranularity: Int64

    init(index: Int, shared: SharedState, listeners: [Listener]) throws {
        self.index = index
        self.shared = shared
        self.config = shared.config
        self.counters = shared.counters
        self.listeners = listeners
        epoll = weir_epoll_create()
        wake = weir_eventfd()
        guard epoll >= 0, wake >= 0 else { throw ListenError(description: "epoll/eventfd: \(errnoName(errno))") }
        pipeSize = Int32(shared.config.bufferLimit)
        scratch = UnsafeMutableRawPointer.allocate(byteCount: scratchSize, alignment: 16)
        let idle = shared.config.idleTimeoutMs
        // Without an idle timeout the list is still kept in order of activity, at one move per second at most: the
        // idle gauge reads it.
        touchGranularity = idle > 0 ? max(1, min(1000, idle / 10)) : 1000
        guard weir_epoll_add(epoll, wake, WEIR_EPOLLIN, tagWake) == 0, registerListeners() else {
            let e = errno
            closeLoop()
            scratch.deallocate()
            throw ListenError(description: "epoll_ctl: \(errnoName(e))")
        }
        reserveFd = open("/dev/null", O_RDONLY | O_CLOEXEC)
        conntrack = weir_ct_socket()
        if conntrack < 0 {
            log("warning", ["worker": index, "reason": "no ctnetlink socket: conntrack entries of failed upstream "
                                + "flows stay, and a new connection on the same 4-tuple may go around the capture",
                            "errno": errnoName(errno)])
        }
    }

    /// Releases what `init` took, for a worker that never runs (a later listener of the server failed to bind).
    func closeAll() {
        for l in listeners { close(l.fd) }
        listeners.removeAll()
        scratch.deallocate()
        closeLoop()
        if reserveFd >= 0 { close(reserveFd) }
        if conntrack >= 0 { close(conntrack) }
    }

    /// Wakes the worker from another thread (drain).
    func notify() {
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
    }

    /// Watches every listener again; false (errno set) if the kernel refused one (the rest stay watched).
    @discardableResult
    func registerListeners() -> Bool {
        var ok = true
        for (i, l) in listeners.enumerated() where weir_epoll_add(epoll, l.fd, WEIR_EPOLLIN, tagListenerBase + UInt64(i)) != 0 {
            ok = false
        }
        listenersRegistered = true
        return ok
    }

    func unregisterListeners() {
        for l in listeners { _ = weir_epoll_del(epoll, l.fd) }
        listenersRegistered = false
    }

    // MARK: loop

    func run() {
        let uid = config.proxyUID, gid = config.proxyGID
        if weir_set_thread_fs_ids(uid, gid) != 0 {
            shared.fail("worker \(index) cannot own upstream sockets as uid \(uid) gid \(gid): run as root or as "
                        + "that user")
            return
        }
        let events = UnsafeMutablePointer<weir_event>.allocate(capacity: 256)
        defer { events.deallocate() }
        while true {
            let n = weir_epoll_wait(epoll, events, 256, nextTimeout())
            now = weir_now_ms()
            shared.beat(worker: index, nowMs: now)
            if n < 0 && errno != EINTR {
                shared.fail("worker \(index): epoll_wait: \(errnoName(errno))")
                break
            }
            for i in 0..<max(0, Int(n)) {
                let e = events[i]
                if e.data == tagWake {
                    var value: UInt64 = 0
                    _ = read(wake, &value, 8)
                    let mode = weir_atomic_load(shared.draining)
                    if mode != 0 && !draining {
                        startDrain(retiring: mode == 2)
                    } else if mode == 1 && draining {
                        // Retiring, then stopped: the usual bounded drain from now on.
                        drainDeadline = min(drainDeadline, now + config.drainTimeoutMs)
                    }
                } else if e.data < tagListenerLimit {
                    // A drain or retire earlier in this batch closed the listeners: their later events are stale.
                    let i = Int(e.data - tagListenerBase)
                    if i < listeners.count { acceptAll(listeners[i]) }
                } else {
                    let side: ProxySide = e.data & 1 == 0 ? .client : .upstream
                    let c = Unmanaged<Connection>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(e.data & ~1))!)
                        .takeUnretainedValue()
                    handleIO(c, side: side, events: e.events)
                }
            }
            expireDeadlines()
            graveyard.removeAll(keepingCapacity: true)
            if draining && connecting.count == 0 && active.count == 0 { break }
            if now >= nextGauges {
                nextGauges = now + 1000
                publishGauges()
            }
        }
        publishGauges(ended: true)
        for (r, w) in pipePool { close(r); close(w) }
        pipePool.removeAll()
        scratch.deallocate()
        if reserveFd >= 0 { close(reserveFd) }
        reserveFd = -1
        if conntrack >= 0 { close(conntrack) }
        conntrack = -1
        // epoll and the wake eventfd stay open until the server has joined this thread (`closeLoop`): a notify()
        // racing with the end of the loop must never write into a descriptor number reused by a live socket.
        _ = weir_atomic_add(shared.liveWorkers, -1)
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

    /// Closes the loop's own descriptors once the thread has been joined.
    func closeLoop() {
        close(epoll)
        close(wake)
    }

    func nextTimeout() -> Int32 {
        var deadline = now + 1000
        if let c = connecting.head { deadline = min(deadline, c.listTime + config.connectTimeoutMs) }
        if config.idleTimeoutMs > 0, let c = active.head { deadline = min(deadline, c.listTime + config.idleTimeoutMs) }
        if !listenersRegistered && !draining { deadline = min(deadline, acceptPausedUntil) }
        if draining { deadline = min(deadline, drainDeadline) }
        return Int32(max(0, min(1000, deadline - weir_now_ms())))
    }

    func expireDeadlines() {
        while let c = connecting.head, c.listTime + config.connectTimeoutMs <= now {
            counters.upstreamFailed(worker: index, .connectTimeout)
            eventLog.log("connect_timeout", ["worker": index, "after_ms": config.connectTimeoutMs])
            apply(c, c.state.handle(.connectTimeout))
        }
        if config.idleTimeoutMs > 0 {
            while let c = active.head, c.listTime + config.idleTimeoutMs <= now {
                counters.add(.idleTimeouts)
                apply(c, c.state.handle(.idleTimeout))
            }
        }
        if !listenersRegistered && !draining && now >= acceptPausedUntil {
            if reserveFd < 0 { reserveFd = open("/dev/null", O_RDONLY | O_CLOEXEC) }
            registerListeners()
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
        if listenersRegistered { for l in listeners { acceptAll(l) } }
        for l in listeners { close(l.fd) }
        listeners.removeAll()
        listenersRegistered = false
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
