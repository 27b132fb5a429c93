import Synchronization
import WeirCore
import WeirSystem

/// A failure to start the proxy (bind refused, no capability, ...), already worded for the operator.
public struct ProxyStartError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

/// The data plane: binds the capture ports, runs one worker thread per usable CPU, drains when stopped.
///
/// Its life has three steps so that a caller can acquire everything that can fail before it changes the node:
/// `bind()` opens every listener (nothing is accepted yet that could be lost: connections wait in the backlog),
/// `start()` runs the workers, `stop()` drains within --drain-timeout and joins them. `run()` is `weir proxy`.
public final class ProxyServer {
    public private(set) var config: ProxyConfig
    public let counters: ProxyCounters
    /// Worker threads: --workers, or one per CPU this process may really use.
    public let workerCount: Int
    /// The backlog every listener gets: net.core.somaxconn of this network namespace.
    public var backlog: Int { Int(WeirProxy.listenBacklog()) }
    var workers: [Worker] = []
    private var threads: [ThreadID] = []
    private var shared: SharedState?
    private var stopped = false
    private let probes = ListenerProbes()
    /// When the drain began and when its --drain-timeout ends (Unix seconds); zeros until `beginStop()`. Written by
    /// the thread that stops the server, read by the admin thread.
    private let drainWall = Mutex<(started: Int64, deadline: Int64)>((0, 0))
    public var drainStartedWall: Int64 { drainWall.withLock { $0.started } }
    public var drainDeadlineWall: Int64 { drainWall.withLock { $0.deadline } }

    /// Whether the server listens in its own namespace (host mode). Pod mode without the node's own capture has
    /// only pods' listeners (`attach`).
    public let nodeListeners: Bool

    /// `counters`: a retiring server's, to keep counting in the same series across a reload (used only when it has
    /// a slot for each of this server's workers).
    public init(config: ProxyConfig, counters existing: ProxyCounters? = nil, nodeListeners: Bool = true) {
        self.config = config
        self.nodeListeners = nodeListeners
        workerCount = config.workers > 0 ? config.workers : SystemInfo.usableCPUs
        if let existing, existing.workerSlots >= workerCount {
            counters = existing
        } else {
            counters = ProxyCounters(workers: workerCount)
        }
    }

    /// True once every worker's loop has ended (after `retire()` or `stop()`).
    public var finished: Bool { shared.map { $0.liveWorkers.load() == 0 } ?? true }

    /// Why a worker stopped on its own, if one did; the caller decides (the agent exits 1).
    public var failure: String? { shared?.failure.withLock { $0 } }

    /// When each worker's loop last ran (CLOCK_MONOTONIC ms); a worker wakes at least once a second.
    public func heartbeats() -> [Int64] { shared?.heartbeatValues() ?? [] }

    /// Listening sockets handed over by the process this one replaces (systemd's store, or a live handover), used by
    /// `bind()` and `attach` before any new socket is opened.
    private var inherited: [InheritedListener] = []

    /// Called (on the thread that binds or attaches) for every capture listener this server starts with, opened or
    /// inherited: the agent keeps each in systemd's file-descriptor store, so that a restart, even after `kill -9`,
    /// finds it there and no connection is refused meanwhile.
    public var onListenerOpened: ((HandoverListener, Int32) -> Void)?
    /// Names this server's sockets in systemd's store (set by the agent).
    public var storeGeneration = ""

    static func record(of l: Listener) -> HandoverListener {
        let key = Inheritance.key(of: l.fd) ?? (0, 0)
        return HandoverListener(kind: l.kind == .inbound ? .inbound : .outbound, port: l.port, family: UInt8(l.family),
                                pod: l.pod?.key ?? "", key: DescriptorKey(inode: key.inode, accessMode: key.accessMode))
    }

    /// Sockets of the process this one replaces: `bind()` and `attach` take those that match a capture port and
    /// family (the pod's, for a pod) before they open new ones. Call before `bind()`.
    public func inherit(_ listeners: [InheritedListener]) { inherited += listeners }

    /// How many inherited sockets `bind()` and `attach` took so far.
    public private(set) var inheritedTaken = 0

    /// Closes the inherited sockets nobody took (a pod that is gone, a port no longer configured): left open, they
    /// would stay in their port's SO_REUSEPORT group and get connections nobody accepts. Returns how many.
    @discardableResult
    public func closeUnclaimedInherited() -> Int {
        let n = inherited.count
        inherited.removeAll()
        return n
    }

    /// Opens every listener and prepares the workers; throws `ProxyStartError` (port in use, no capability).
    public func bind() throws {
        let descriptors = SystemInfo.raiseDescriptorLimit()
        // Each proxied connection needs two sockets and, while bytes are in flight, a pipe.
        if config.maxConnections * 2 + 64 > descriptors {
            log("warning", ["reason": "--max-connections needs more descriptors than the limit; past it new "
                                + "connections are refused as descriptors run out",
                            "max_connections": config.maxConnections, "descriptor_limit": descriptors])
        }
        let backlog = listenBacklog()
        let copyOnly = !config.splice
        config.tproxySourcePorts = resolvedSourcePorts()
        let shared = SharedState(config: config, counters: counters, copyOnly: copyOnly, workers: workerCount)
        self.shared = shared
        let ipv6 = nodeListeners && Socket.ipv6Available()
        var perWorker: [[Listener]] = Array(repeating: [], count: workerCount)
        do {
            if nodeListeners {
                perWorker = try captureListeners(ipv6: ipv6, backlog: backlog, pod: nil)
            }
        } catch {
            throw ProxyStartError(description: "\(error)")
        }
        for i in 0..<workerCount {
            var listeners = perWorker[i]
            do {
                workers.append(try Worker(index: i, shared: shared, listeners: listeners))
                for l in listeners { probes.add(l, worker: i) }
            } catch {
                // Listeners and workers close what they hold as they go.
                listeners.removeAll()
                workers.removeAll()
                probes.closeAll()
                throw ProxyStartError(description: "\(error)")
            }
        }
        log("listening", ["workers": workerCount, "node_listeners": nodeListeners, "outbound_port": config.proxyPort,
                          "inbound_port": config.inboundCapturePort, "mode": config.mode.rawValue,
                          "backlog": backlog, "ipv6": ipv6, "proxy_uid": config.proxyUID,
                          "proxy_gid": config.proxyGID, "connect_timeout_ms": config.connectTimeoutMs,
                          "idle_timeout_ms": config.idleTimeoutMs, "max_connections": config.maxConnections,
                          "buffer_limit": config.bufferLimit, "descriptor_limit": descriptors,
                          "copy_only": copyOnly, "drain_timeout_ms": config.drainTimeoutMs,
                          "tproxy_source_ports": config.mode == .tproxy ? config.tproxySourcePorts.text : "-"])
    }

    /// `--tproxy-source-ports` as the workers use it: `auto` becomes the ports above this namespace's
    /// ip_local_port_range, or the kernel's choice (said once) when too few are left there. Pods use the same range:
    /// the clients whose ports it must avoid are outside the pod either way.
    private func resolvedSourcePorts() -> SourcePorts {
        guard config.mode == .tproxy, config.tproxySourcePorts == .auto else { return config.tproxySourcePorts }
        let path = "/proc/sys/net/ipv4/ip_local_port_range"
        guard case .success(let bytes) = readSmallFile(path, limit: 64),
              let value = SysctlValue(parsing: String(decoding: bytes, as: UTF8.self)), value.components.count == 2,
              case let (low, high) = (value.components[0], value.components[1]) else {
            log("warning", ["reason": "cannot read \(path): TPROXY upstream source ports are the kernel's choice"])
            return .kernel
        }
        guard let range = SourcePorts.above(localRange: low, high) else {
            log("warning", ["reason": "fewer than \(SourcePorts.minimumSpan) ports above ip_local_port_range: TPROXY "
                                + "upstream source ports are the kernel's choice, and may be a client's (set "
                                + "--tproxy-source-ports)", "ip_local_port_range": "\(low)-\(high)"])
            return .kernel
        }
        return .range(range)
    }

    /// Every worker's listeners: first the inherited sockets of `pod` ("" for the node) that match a capture port
    /// and family, spread over the workers (a worker may get two when the old process had more workers: every socket
    /// of the SO_REUSEPORT group must have someone accepting), then new sockets for the workers still lacking one.
    /// Runs inside the pod's namespace for a pod.
    private func captureListeners(ipv6: Bool, backlog: Int32, pod: PodContext?) throws -> [[Listener]] {
        var out: [[Listener]] = Array(repeating: [], count: workerCount)
        let podKey = pod?.key ?? ""
        let storedKey = HandoverListener.storeSafe(podKey)
        for (kind, port) in [(ListenerKind.outbound, config.proxyPort), (.inbound, config.inboundCapturePort)] {
            let transparent = kind == .inbound && config.mode == .tproxy
            for family in ipv6 ? [AddressFamily.ipv4, AddressFamily.ipv6] : [AddressFamily.ipv4] {
                let wanted: HandoverListener.Kind = kind == .inbound ? .inbound : .outbound
                var taken: [Listener] = []
                inherited.removeAll { l in
                    guard l.record.kind == wanted, l.record.port == port, Int32(l.record.family) == family,
                          l.record.pod == podKey || l.record.pod == storedKey else { return false }
                    taken.append(Listener(socket: Socket(owning: l.descriptor.take(), family: family), kind: kind,
                                          port: port, pod: pod))
                    return true
                }
                for (i, l) in taken.enumerated() {
                    // The predecessor's mode may have been REDIRECT: a TPROXY listener must be transparent, or the
                    // kernel's tproxy lookup passes it by. (A transparent one left under REDIRECT does no harm.)
                    if transparent {
                        let e = SocketOption.transparent.apply(to: l.fd, family: family)
                        if e != 0 {
                            throw ProxyStartError(description: "inherited port \(port) listener: IP_TRANSPARENT: "
                                                      + errnoName(e))
                        }
                    }
                    out[i % workerCount].append(l)
                    inheritedTaken += 1
                    onListenerOpened?(Self.record(of: l), l.fd)
                }
                for w in taken.count..<max(taken.count, workerCount) {
                    let l = try openListener(kind: kind, family: family, port: port, transparent: transparent,
                                             backlog: backlog, pod: pod)
                    out[w].append(l)
                    onListenerOpened?(Self.record(of: l), l.fd)
                }
            }
        }
        return out
    }

    /// Pod mode: opens the capture listeners inside `pod`'s namespace (one SO_REUSEPORT socket per worker, family
    /// and port, each with the pod's own somaxconn as backlog) and hands them to the workers. Once this returns the
    /// pod is served: connections wait in the listeners' queues until a worker takes them. Throws naming the port
    /// (in use inside the pod, no capability); nothing of the pod is kept then.
    public func attach(_ pod: PodContext) throws {
        guard let shared, !stopped, shared.drainMode == .serving else {
            throw ProxyStartError(description: "the data plane is stopping")
        }
        var perWorker: [[Listener]] = []
        do {
            try pod.namespace.perform {
                perWorker = try captureListeners(ipv6: Socket.ipv6Available(), backlog: listenBacklog(), pod: pod)
            }
        } catch {
            throw ProxyStartError(description: "\(error)")
        }
        // No metrics duplicates of pods' listeners: a pod's queue overflows are its namespace's
        // TcpExtListenOverflows, and a duplicate per listener would double the pod's descriptors.
        for (w, listeners) in zip(workers, perWorker) { w.post(.add(listeners)) }
    }

    /// Pod mode: the pod's listeners close (each worker lets go of them at its next wake); its open connections go
    /// on until they end.
    public func detach(_ pod: PodContext) {
        for w in workers { w.post(.removePod(pod)) }
    }

    // MARK: handover

    /// Every worker stops accepting and lets go of its connections (`Worker.export`); waits at most `timeoutMs`.
    /// Nil when a worker did not answer in time: then every worker that did answer is resumed, and nothing moved.
    public func exportAll(timeoutMs: Int64) -> [ExportedConnections]? {
        let (replies, answers) = askWorkers(ListenerChange.export, timeoutMs: timeoutMs)
        if let answers { return answers }
        // A worker that never answered: give back what the others exported; a late answer is given back too.
        for (w, r) in zip(workers, replies) {
            if let e = r.result.withLock({ $0 }) { w.post(.resume(e)) }
        }
        log("warning", ["reason": "handover export timed out: every connection stays here"])
        return nil
    }

    /// Duplicates of every capture listener this server accepts on, the node's and the pods', each with its record.
    /// A reload's new data plane `inherit`s them before `bind()` and `attach`, so the sockets are never closed: what
    /// waits in their queues, and every SYN meanwhile, is accepted by one data plane or the other. Empty when a
    /// worker did not answer within `timeoutMs`; the new data plane then opens sockets of its own in the same
    /// SO_REUSEPORT groups, as before.
    public func lendListeners(timeoutMs: Int64 = 1000) -> [InheritedListener] {
        guard let shared, !stopped, shared.drainMode == .serving else { return [] }
        if let answers = askWorkers(ListenerChange.lend, timeoutMs: timeoutMs).answers { return answers.flatMap { $0 } }
        log("warning", ["reason": "a worker did not lend its listeners in time: the new data plane opens its own"])
        return []
    }

    /// Posts a request to every worker and waits at most `timeoutMs` for all their answers, in worker order; nil
    /// answers when one did not come in time (the replies keep what did, and what comes late).
    private func askWorkers<Value>(_ request: (WorkerReply<Value>) -> ListenerChange, timeoutMs: Int64)
        -> (replies: [WorkerReply<Value>], answers: [Value]?)
    {
        let replies = workers.map { _ in WorkerReply<Value>() }
        for (w, r) in zip(workers, replies) { w.post(request(r)) }
        let deadline = Clock.nowMs() + timeoutMs
        while Clock.nowMs() < deadline {
            let answers = replies.compactMap { $0.result.withLock { $0 } }
            if answers.count == replies.count { return (replies, answers) }
            Clock.sleepMs(1)
        }
        return (replies, nil)
    }

    /// A failed handover: every worker serves again what it exported.
    public func resume(_ exported: [ExportedConnections]) {
        for e in exported where e.worker < workers.count { workers[e.worker].post(.resume(e)) }
    }

    /// Takes in connections handed over by another process. `descriptors` are the handed-over descriptors by key;
    /// those a connection uses are taken (the rest close with the map). `pods` finds a pod connection's pod by its
    /// key. Connections are spread over the workers. Returns how many were adopted and how many could not be (a
    /// descriptor missing: their descriptors close, which ends them).
    public func adopt(_ records: [HandoverConnection], descriptors: [DescriptorKey: Descriptor],
                      pods: [String: PodContext]) -> (adopted: Int, failed: Int) {
        let raw = descriptors.mapValues { $0.rawValue }
        let now = Clock.nowMs()
        var perWorker: [[Connection]] = Array(repeating: [], count: max(1, workers.count))
        var adopted = 0, failed = 0
        for (i, r) in records.enumerated() {
            let pod = r.pod.isEmpty ? nil : pods[r.pod]
            guard (r.pod.isEmpty || pod != nil),
                  let c = Connection.adopted(r, descriptors: raw, now: now, pod: pod, bufferLimit: config.bufferLimit)
            else {
                failed += 1
                continue
            }
            for key in r.keys { _ = descriptors[key]?.take() }  // the connection owns them now
            perWorker[i % perWorker.count].append(c)
            adopted += 1
        }
        for (w, list) in zip(workers, perWorker) where !list.isEmpty { w.post(.adopt(list)) }
        return (adopted, failed)
    }

    /// Descriptors one attached pod holds in the data plane: a listener per worker, family and capture port.
    public var descriptorsPerPod: Int { workerCount * 4 }

    /// Runs the workers. Call `bind()` first.
    public func start() throws {
        guard let shared else { return }
        shared.liveWorkers.store(Int64(workers.count))
        // Alive from the start, before each thread's first turn: the watchdog may look at once.
        for w in workers { shared.beat(worker: w.index, nowMs: Clock.nowMs()) }
        for (i, w) in workers.enumerated() {
            do {
                threads.append(try startThread(name: "weir-worker-\(w.index)", stackSize: 256 * 1024) { w.run() })
            } catch let e as ThreadStartError {
                // The workers that did not start give their listeners back, so none sits in the SO_REUSEPORT
                // group with nobody accepting from it.
                probes.closeAll()
                workers.removeSubrange(i...)
                shared.liveWorkers.store(Int64(threads.count))
                throw ProxyStartError(description: e.description)
            }
        }
        log("started", ["workers": workers.count])
    }

    /// Tells every worker to stop accepting and drain within --drain-timeout, without waiting (see `stop()`).
    public func beginStop() {
        guard !stopped else { return }
        let timeout = (config.drainTimeoutMs + 999) / 1000
        drainWall.withLock { w in
            if w.started == 0 {
                let now = Clock.wallSeconds()
                w = (now, now + timeout)
            }
        }
        signalWorkers(.draining)
    }

    /// Accept queue and drops of every listener, per worker; empty once the server drains or retires.
    public func listenerStats() -> [ListenerStats] { probes.read() }

    /// Stops accepting, drains open connections for at most --drain-timeout, and joins the workers. Once only.
    public func stop() {
        guard shared != nil, !stopped else { return }
        beginStop()
        stopped = true
        for thread in threads { joinThread(thread) }
        threads.removeAll()
        // Joined: each worker's poller can close now, with the worker.
        workers.removeAll()
        log("stopped", ["counters": counters.snapshot()])
    }

    /// Stops accepting (the listeners close) and lets open connections finish on their own; they are still closed
    /// by the idle timeout. Call `stop()` later to join the workers (at once once `finished`).
    public func retire() {
        signalWorkers(.retiring)
        log("retiring", ["active": counters.load(.active)])
    }

    /// Sets the drain mode and wakes every worker to read it.
    private func signalWorkers(_ mode: DrainMode) {
        guard let shared else { return }
        probes.closeAll()  // before the workers close their own descriptors of the same sockets
        shared.drainMode = mode
        for w in workers { w.notify() }
    }

    /// `weir proxy`: takes the namespace's data-plane lock, binds, runs until SIGTERM or SIGINT, then drains and
    /// returns (the process should exit 0). Throws when it cannot start, or when a worker failed.
    /// `whenLocked` runs once the namespace's data-plane lock is held, before anything is served (`weir proxy`: the
    /// clean-up of a killed predecessor's upstream conntrack entries).
    public func run(whenLocked: () -> Void = {}) throws {
        // Signals are taken synchronously by this thread; workers inherit the mask and never see them.
        Signals.block()
        let lock = try DataPlaneLock.acquire()
        whenLocked()
        try bind()
        try start()
        Memory.releaseStartupPages()
        var signal: Int32 = 0
        var housekeeping = MemoryHousekeeping()
        while signal != Signals.SIGTERM && signal != Signals.SIGINT {
            if let failure { stop(); throw ProxyStartError(description: failure) }
            if housekeeping.due(open: Int(counters.load(.active))) { Memory.giveBack() }
            signal = Signals.wait(timeoutMs: 1000)
            if signal == Signals.SIGHUP { log("signal", ["signal": "SIGHUP", "action": "ignored (weir proxy has no config)"]) }
        }
        log("signal", ["signal": signal == Signals.SIGTERM ? "SIGTERM" : "SIGINT", "active": counters.load(.active)])
        stop()
        withExtendedLifetime(lock) {}
    }
}

/// A listening socket handed over by the process this one replaces.
public struct InheritedListener {
    public let record: HandoverListener
    public let descriptor: Descriptor

    public init(record: HandoverListener, descriptor: Descriptor) {
        self.record = record
        self.descriptor = descriptor
    }
}
