import Synchronization
import WeirCore
import WeirNetfilter
import WeirProxy
import WeirSystem
import WeirTuning

/// `weir run`: the node agent's whole life in one place.
///
/// 1. **Acquire** everything that can fail, before the node is changed: the namespace's data-plane lock, the admin
///    socket, every proxy listener, the netlink sockets. A failure here exits 1 and leaves the node as it was.
/// 2. **Serve**: start the proxy workers and the admin loop (listeners are bound, so no connection is refused).
/// 3. **Change the node**: apply the profile, then install the capture (table, TPROXY routing, `::6`). If the capture
///    fails, the profile is reverted and the process exits 1.
/// 4. **Ready**: `READY=1` and `/readyz` 200.
/// 5. **Keep it right**: reconcile every `--reconcile-interval` and soon after any nftables or rtnetlink event;
///    SIGHUP re-reads `--config` and applies what changed; `WATCHDOG=1` while every worker and the admin loop beat.
/// 6. **Stop** on SIGTERM: `STOPPING=1`, drain within `--drain-timeout`, keep the table (persist) unless
///    `--cleanup-on-exit`.
///
/// `start` does 1 to 4, `loop` 5 (its deadlines are an `AgentSchedule`), `stop` 6.
public final class Agent {
    var settings: AgentSettings
    private let reloadSettings: () throws -> AgentSettings
    private let onReady: () -> Void
    let state: Mutex<AgentState>
    /// What the main loop waits on (signals, netlink events), and its wake handle, with which the admin thread asks
    /// for a reconcile (`poke`). Made with the agent, so the admin thread never sees it change; a failure to make it
    /// stops `run` before anything else.
    private let poller: Result<Poller, Error>
    /// Data planes a reload replaced (or started and then gave up), finishing their open connections.
    private var retired: [ProxyServer] = []
    /// Netlink events that say something may have changed behind weir's back; nil when they cannot be had.
    private var watcher: ChangeWatcher?
    /// Set when another process committed nftables while weir's own apply had the events muted: reconcile soon.
    private var checkSoon = false
    /// Pod mode: the pods the agent serves (nil in host mode).
    var podManager: PodManager?
    static let podSocketToken: UInt64 = 2
    static let handoverSocketToken: UInt64 = 3
    /// What `loop` returns when a successor took everything over (no signal: exit without a drain).
    static let handedOver: Int32 = -1
    /// Data planes made so far (names their sockets in systemd's store).
    var serverGeneration = 0
    /// Sockets opened during start, kept in systemd's store once the predecessor's names are let go (then new ones
    /// go there as they open): duplicates, so a socket closed meanwhile is never mistaken for another.
    var pendingStore: [(String, Descriptor)] = []
    var storeLive = false

    /// What the admin thread reads and the main thread writes.
    struct AgentState {
        var ready = false
        var settings: AgentSettings
        /// What reconcile could not repair, for `/readyz`.
        var problem: String?
        var applies: Int64 = 0
        var applyFailures: Int64 = 0
        var lastApplyWall: Int64 = 0
        var repairs: [String: Int64] = [:]
        var reconciles: Int64 = 0
        var lastReconcileWall: Int64 = 0
        var reloads: Int64 = 0
        var reloadFailures: Int64 = 0
        /// Stale upstream conntrack entries deleted at start and at pod re-attaches (`StaleConntrack`).
        var staleConntrackDeleted: Int64 = 0
        /// Undo steps that failed after another failure, by step (`weir_rollback_failures_total`).
        var rollbackFailures: [RollbackStep: Int64] = [:]
        /// The data plane serving the capture ports now (a reload that changes the proxy settings replaces it).
        var server: ProxyServer?
        /// Pod mode's pods (set once at start).
        var pods: PodManager?

        /// A capture install changed the kernel at `wall` (Unix seconds).
        mutating func recordApply(at wall: Int64) {
            applies += 1
            lastApplyWall = wall
        }
    }

    /// A step that undoes a change after a failure: its own failure is logged and counted, never dropped.
    enum RollbackStep: String, CaseIterable {
        /// A start that failed after creating the table takes the table out again.
        case captureRemove = "capture_remove"
        /// A start that failed after applying the profile puts the saved sysctl values back.
        case tuningRevert = "tuning_revert"
        /// A reload whose new rules failed puts the running configuration's rules back.
        case captureRestore = "capture_restore"
    }

    /// `reload` re-reads the configuration (the file and the flags given at start) for SIGHUP; it throws
    /// `ConfigError` for a bad file.
    /// `onReady` runs once, when the capture is in and the proxy serves (the fail-open history is reset there).
    public init(settings: AgentSettings, reload: @escaping () throws -> AgentSettings,
                onReady: @escaping () -> Void = {}) {
        self.settings = settings
        self.reloadSettings = reload
        self.onReady = onReady
        state = Mutex(AgentState(settings: settings))
        poller = Result { try Poller(capacity: 8) }
    }

    /// Runs until SIGTERM or SIGINT; returns after the drain. Throws `AgentError` when it cannot start (nothing on
    /// the node changed then) or when a worker fails.
    /// Returns true when a successor took everything over (`--takeover`, or systemd's store on a restart).
    @discardableResult
    public func run() throws -> Bool {
        var running = try start()
        // The data-plane lock and the installer's sockets are held until the drain is over.
        defer { withExtendedLifetime(running) {} }
        let signal = try loop(&running)
        return try stop(running, after: signal)
    }

    /// What the agent holds from start to stop.
    struct Running {
        let signals: SignalQueue
        let poller: Poller
        let endpoints: Endpoints
        /// Never read: held so that no other data plane starts in this namespace until `run` returns (nil: pod mode
        /// without the node's own capture).
        let lock: DataPlaneLock?
        /// The node's own capture (nil: pod mode without `--capture-node`).
        let installer: CaptureInstaller?
        /// The data plane serving now (a reload may replace it).
        var server: ProxyServer
        let watchdog: Watchdog?
        /// The run directory: its lock, the successor's socket.
        let run: RunDirectory
        /// A stale loop holds back the watchdog's pings (logged once when it starts and once when it ends).
        var watchdogWithheld = false
    }

    /// The admin endpoint, and the `/metrics`-only one of `--metrics-address`.
    struct Endpoints {
        let admin: AdminServer
        let metrics: AdminServer?

        func stop() {
            admin.stop()
            metrics?.stop()
        }
    }

    // MARK: start (1 to 4)

    /// Acquires, serves, changes the node and says ready; returns what the loop and the stop need. A failure throws
    /// with the node as it was.
    private func start() throws -> Running {
        // Signals are read from a signalfd by this thread; the threads it starts inherit the mask.
        Signals.block()
        let signals: SignalQueue, poller: Poller
        do {
            signals = try SignalQueue()
            poller = try self.poller.get()
        } catch {
            throw AgentError("\(error)")
        }
        // 0. What the process this one replaces hands over: systemd's store after a restart, or the running agent
        // itself with --takeover (its listeners now, its connections once this process serves).
        let handed = try inheritance()
        let session = handed?.session
        // Live connections come over (a takeover, or systemd's store after a clean stop): their upstreams' entries
        // are not stale, and nothing is swept.
        let sweeps = handed.map { $0.session == nil && $0.connections.isEmpty } ?? true
        let endpoints = try openEndpoints(handed)
        try enterNetworkNamespace()
        let run = try RunDirectory(settings.runDirectory, inheritedHandover: handed?.takeDescriptor(.handover),
                                   deferLock: session != nil)
        if let pods = settings.pods {
            let manager = try PodManager(settings: pods, inherited: handed?.takeDescriptor(.cni))
            manager.deferClaims = session != nil
            manager.sweepsStaleConntrack = sweeps
            manager.onStaleConntrackDeleted = { [unowned self] n in
                self.state.withLock { $0.staleConntrackDeleted += Int64(n) }
            }
            manager.inheritedNamespaces = handed?.namespaces ?? [:]
            manager.onDetach = { [unowned self] pod in FDStore.forget(self.storeName(pod: pod.key)) }
            podManager = manager
            state.withLock { $0.pods = manager }
        }
        let (lock, server) = try acquireDataPlane(handed, deferLock: session != nil)
        // Before anything is served (this namespace's lock is held: no other data plane runs here).
        if settings.capturesNode && sweeps {
            let n = StaleConntrack.sweep()
            state.withLock { $0.staleConntrackDeleted += Int64(n) }
        }
        let installer = settings.capturesNode ? try CaptureInstaller() : nil
        do {
            watcher = try ChangeWatcher()
        } catch {
            agentLog("warning", ["reason": "no netlink events, reconciling on the interval only", "error": "\(error)"])
        }
        try serve(server, endpoints)
        podManager?.restore(server, settings.capture, settings.table)
        var dataPlaneLock = lock
        if let handed { dataPlaneLock = try adoptConnections(handed, server, run) ?? lock }
        try changeNode(installer, server, endpoints)
        if session != nil { podManager?.claimAll(server, settings.capture, settings.table) }
        keepInStore(endpoints, run, handed: handed)
        let watchdog = announceReady(server)
        return Running(signals: signals, poller: poller, endpoints: endpoints, lock: dataPlaneLock,
                       installer: installer, server: server, watchdog: watchdog, run: run)
    }

    /// 1. Acquire, first the admin socket, bound where weir was started (the node, where probes and scrapes come
    /// from); with --network-namespace everything after it (the lock, listeners, netlink, the threads) lives in the
    /// target namespace.
    private func openEndpoints(_ handed: HandedOver?) throws -> Endpoints {
        // CaptureCheck opens its sockets on first use, on the admin thread, which starts in the target namespace.
        let check = CaptureCheck()
        let admin = try AdminServer(host: settings.adminHost, port: settings.adminPort,
                                    inherited: handed?.take(.admin)) { [unowned self] request in
            self.respond(request, check: check)
        }
        // /metrics on a port of its own (Prometheus reaches the node's address; probes stay on loopback).
        let inheritedMetrics = handed?.take(.metrics)
        let metrics = try settings.metrics.map { m in
            try AdminServer(host: m.host, port: m.port, inherited: inheritedMetrics) { [unowned self] request in
                self.respondMetrics(request, token: m.token)
            }
        }
        return Endpoints(admin: admin, metrics: metrics)
    }

    private func enterNetworkNamespace() throws {
        guard let path = settings.networkNamespace else { return }
        do {
            try NetworkNamespace.enter(path)
        } catch {
            throw AgentError("--network-namespace \(quotedValue(path)) \(error)")
        }
    }

    /// The namespace's data-plane lock, then the proxy's listeners, bound. Pod mode without the node's capture
    /// takes no lock and opens no listener here: each pod's are taken in its own namespace.
    private func acquireDataPlane(_ handed: HandedOver?, deferLock: Bool) throws -> (DataPlaneLock?, ProxyServer) {
        let server = makeServer(settings.proxy)
        if let handed {
            server.inherit(handed.listeners)
            handed.listeners.removeAll()
        }
        var lock: DataPlaneLock?
        do {
            if settings.capturesNode && !deferLock {
                lock = try DataPlaneLock.acquire()
            }
        } catch let e as ProxyStartError {
            throw AgentError(e.description)
        }
        state.withLock { $0.server = server }
        do {
            try server.bind()
        } catch let e as ProxyStartError {
            throw AgentError("proxy: \(e.description)")
        }
        return (lock, server)
    }

    /// 2. Serve: the workers and the admin loops start before the node changes.
    private func serve(_ server: ProxyServer, _ endpoints: Endpoints) throws {
        do {
            try server.start()
        } catch let e as ProxyStartError {
            throw AgentError("proxy: \(e.description)")
        }
        try endpoints.admin.start()
        agentLog("admin_listening", ["address": endpoints.admin.address])
        if let metrics = endpoints.metrics {
            try metrics.start()
            agentLog("metrics_listening", ["address": metrics.address,
                                           "token": settings.metrics?.token == nil ? "none" : "required"])
        }
    }

    /// 3. Change the node: the profile, then the capture. When either fails, the data plane and the endpoints stop,
    /// what this start changed is undone, and the error is thrown.
    private func changeNode(_ installer: CaptureInstaller?, _ server: ProxyServer, _ endpoints: Endpoints) throws {
        var tuned = false
        if let (tuner, plan) = settings.tuning {
            do {
                let results = try tuner.apply(plan)
                tuned = true
                agentLog("tuned", ["profile": plan.profile, "changed": results.count,
                                   "failed": results.filter { $0.failure != nil }.count])
            } catch {
                server.stop()
                endpoints.stop()
                throw AgentError("applying profile \(plan.profile): \(error)")
            }
        }
        guard let installer else { return }
        do {
            try installCapture(installer)
        } catch {
            state.withLock { $0.applyFailures += 1 }
            server.stop()
            endpoints.stop()
            undoStart(installer, tuned: tuned, after: error)
            throw error
        }
    }

    private func installCapture(_ installer: CaptureInstaller) throws {
        let changes = try applyCapture(installer, settings.capture, settings.table)
        if changes.isEmpty { print("table \(settings.table.family.rawValue) \(settings.table.name): unchanged") }
        changes.forEach { print($0) }
        if installer.ownershipUnsupported {
            print("note: this kernel has no nftables persist flag (needs >= 6.9); the table is not owned")
        }
        ProcessEnvironment.flushStandardOutput()
        state.withLock { $0.recordApply(at: Clock.wallSeconds()) }
        agentLog("capture_installed", ["table": "\(settings.table.family.rawValue) \(settings.table.name)",
                                       "changes": changes.count])
    }

    /// A failed start leaves the node as it found it.
    private func undoStart(_ installer: CaptureInstaller, tuned: Bool, after error: Error) {
        // The table was new (nothing of weir's was there before) but a later step failed: take it all out again,
        // so the failed start leaves the node as it found it. A table that was already there stays.
        let partial = (error as? AgentError)?.partialChanges ?? []
        if partial.contains(where: { $0.kind == .table && $0.action == .created }) {
            rollback(.captureRemove) { _ = try installer.removeAll() }
        }
        if tuned, let (tuner, _) = settings.tuning {
            rollback(.tuningRevert) {
                // A key that could not be written back is a failed revert too, though revert does not throw for it.
                let failed = (try tuner.revert() ?? []).filter { $0.failure != nil }
                if !failed.isEmpty {
                    throw TuningFailure(failed.map { "\($0.key): \($0.failure ?? "")" }.joined(separator: "; "))
                }
            }
        }
    }

    /// Runs a step that undoes a change after a failure. The failure that made it necessary is what the caller
    /// throws; should the step fail too, that is logged (`rollback_failed`, an error for journald) and counted
    /// (`weir_rollback_failures_total{step}`): the node may then hold something nobody asked for.
    func rollback(_ step: RollbackStep, _ body: () throws -> Void) {
        do {
            try body()
        } catch {
            agentLog("rollback_failed", ["step": step.rawValue, "error": "\(error)"])
            state.withLock { $0.rollbackFailures[step, default: 0] += 1 }
        }
    }

    /// 4. Ready: `READY=1`, `/readyz` 200. Returns systemd's watchdog, if it has one for this process.
    private func announceReady(_ server: ProxyServer) -> Watchdog? {
        state.withLock { $0.ready = true }
        let watchdog = Watchdog.fromEnvironment()
        SystemdNotify.send("READY=1\nSTATUS=\(status(server))")
        Memory.releaseStartupPages()
        onReady()
        agentLog("ready", ["pid": ProcessEnvironment.pid, "table": "\(settings.table.family.rawValue) \(settings.table.name)",
                           "workers": server.workerCount, "watchdog_ms": watchdog?.intervalMs ?? 0,
                           "reconcile_interval_ms": settings.reconcileIntervalMs])
        return watchdog
    }

    // MARK: loop (5)

    /// 5. Keep it right until SIGTERM or SIGINT, which is returned. Throws when a worker fails.
    private func loop(_ running: inout Running) throws -> Int32 {
        var now = Clock.nowMs()
        var schedule = AgentSchedule(now: now, reconcileIntervalMs: settings.reconcileIntervalMs,
                                     watchdogIntervalMs: running.watchdog?.intervalMs)
        var housekeeping = MemoryHousekeeping()
        // Signals and the netlink subscriptions are read whenever the loop wakes; only the wake handle's event (the
        // admin thread's request) needs telling apart.
        let poller = running.poller
        for fd in [running.signals.descriptor.rawValue] + (watcher?.descriptors ?? []) {
            let e = poller.add(fd, .readable, token: 0)
            if e != 0 { throw SystemError("epoll_ctl", errno: e) }
        }
        if let podManager {
            let e = poller.add(podManager.socket.rawValue, .readable, token: Self.podSocketToken)
            if e != 0 { throw SystemError("epoll_ctl", errno: e) }
        }
        let e = poller.add(running.run.handoverSocket.rawValue, .readable, token: Self.handoverSocketToken)
        if e != 0 { throw SystemError("epoll_ctl", errno: e) }
        while true {
            let ready = try poller.wait(timeoutMs: Poller.timeout(until: schedule.deadline(now: now),
                                                                  now: Clock.nowMs(), maxMs: Int64(Int32.max)))
            now = Clock.nowMs()
            if let stop = takeSignals(&running, &schedule, now: now) { return stop }
            if let podManager, (0..<ready).contains(where: { poller[$0].token == Self.podSocketToken }) {
                podManager.serveRequests(running.server, settings.capture, settings.table)
                schedule.controlPlaneWorked(now: now)
            }
            if (0..<ready).contains(where: { poller[$0].token == Self.handoverSocketToken }) {
                switch serveSuccessor(running) {
                case .handedOver: return Self.handedOver
                case .drainThenExit: return Signals.SIGTERM
                case .stayed: break
                }
            }
            if (0..<ready).contains(where: { poller[$0].token == Poller.wakeToken }) {
                poller.acknowledgeWake()
                schedule.reconcileRequested(now: now)
            }
            if checkSoon {
                checkSoon = false
                schedule.changeSuspected(now: now)
            }
            if watcher?.drain() == true { schedule.changeSuspected(now: now) }
            let due = schedule.due(now: now)
            if due.contains(.reconcile) {
                if let installer = running.installer { reconcile(installer) }
                podManager?.reconcile(running.server, settings.capture, settings.table)
                watcher?.drain()  // what our own repair caused
                schedule.reconciled(at: Clock.nowMs(), intervalMs: settings.reconcileIntervalMs)
            }
            releaseRetired()
            try checkWorkers(running)
            if due.contains(.watchdog) {
                schedule.watchdogHandled(now: now)
                feedWatchdog(&running, now: now)
            }
            // After a burst of connections, or of control-plane work (a pod's attach or a reload ran netlink, JSON,
            // the registry: not what serving runs), the heap it freed goes back to the kernel, and its code pages to
            // the page cache, as the start's do (announceReady); they fault in again on the next burst. Serving's own
            // pages come straight back. One release covers both, so a pending one is done with it.
            let connectionsFell = housekeeping.due(open: openConnections(running))
            if connectionsFell || due.contains(.releasePages) {
                schedule.pagesReleased()
                Memory.giveBack()
            }
        }
    }

    /// Takes the queued signals: SIGHUP reloads; SIGTERM or SIGINT is returned, to stop.
    private func takeSignals(_ running: inout Running, _ schedule: inout AgentSchedule, now: Int64) -> Int32? {
        while let signal = running.signals.next() {
            guard signal == Signals.SIGHUP else { return signal }
            schedule.controlPlaneWorked(now: now)
            // systemd shows the unit reloading until READY=1, whether the reload was applied or refused.
            SystemdNotify.reloading()
            let rulesBefore = settings.capture
            if let replaced = reload(running.installer, server: running.server) {
                retired.append(running.server)
                running.server = replaced
                state.withLock { $0.server = replaced }
            } else if settings.capture != rulesBefore {
                podManager?.reapply(settings.capture, settings.table)
            }
            SystemdNotify.send("READY=1\nSTATUS=\(status(running.server))")
        }
        return nil
    }

    /// Stops the retired data planes whose last connection has ended.
    private func releaseRetired() {
        retired.removeAll { old in
            guard old.finished else { return false }
            old.stop()  // joins at once: every loop has ended
            agentLog("retired", ["workers": old.workerCount])
            return true
        }
    }

    /// A worker that failed ends the agent: not ready, the data plane and the endpoints stopped, the error thrown.
    private func checkWorkers(_ running: Running) throws {
        guard let failure = running.server.failure else { return }
        agentLog("worker_failed", ["reason": failure])
        state.withLock { $0.ready = false }
        SystemdNotify.send("STATUS=worker failed: \(failure)")
        running.server.stop()
        running.endpoints.stop()
        throw AgentError("proxy: \(failure)")
    }

    /// `WATCHDOG=1` while every loop makes progress; withheld (once logged) while any is stale.
    private func feedWatchdog(_ running: inout Running, now: Int64) {
        let stale = Self.staleLoops(workers: running.server.heartbeats(), admin: running.endpoints.admin.heartbeat,
                                    now: now)
        if stale.isEmpty {
            SystemdNotify.send("WATCHDOG=1\nSTATUS=\(status(running.server))")
            if running.watchdogWithheld { agentLog("watchdog_resumed") }
            running.watchdogWithheld = false
        } else if !running.watchdogWithheld {
            running.watchdogWithheld = true
            agentLog("watchdog_withheld", ["stale": stale.joined(separator: ",")])
        }
    }

    // MARK: stop (6)

    /// 6. Stop: `STOPPING=1`, every data plane drains within one --drain-timeout, the endpoints close, and the table
    /// stays (persist) unless --cleanup-on-exit.
    @discardableResult
    private func stop(_ running: Running, after signal: Int32) throws -> Bool {
        state.withLock { $0.ready = false }
        var handedOver = signal == Self.handedOver
        if !handedOver {
            SystemdNotify.send("STOPPING=1\nSTATUS=draining")
            agentLog("signal", ["signal": signal == Signals.SIGTERM ? "SIGTERM" : "SIGINT",
                                "active": running.server.counters.snapshot().active])
            // Under systemd, with a restart queued: the connections wait in the store for the next process.
            if signal == Signals.SIGTERM && FDStore.enabled { handedOver = Succession.handOverToSystemd(running.server) }
        }
        if handedOver {
            SystemdNotify.send("STOPPING=1\nSTATUS=handed over")
            // Nothing is left on the serving data plane; retired ones (a reload's) drain as usual.
            running.server.beginStop()
            retired.forEach { $0.beginStop() }
            running.server.stop()
            retired.forEach { $0.stop() }
            running.endpoints.stop()
            agentLog("stopped", ["table": "kept (persist)", "connections": "handed over"])
            return true
        }
        // One --drain-timeout for all: every data plane starts draining before any is waited for.
        running.server.beginStop()
        retired.forEach { $0.beginStop() }
        running.server.stop()
        retired.forEach { $0.stop() }
        running.endpoints.stop()
        guard settings.cleanupOnExit else {
            agentLog("stopped", ["table": "kept (persist)"])
            return false
        }
        if let podManager { agentLog("pods_cleaned", ["pods": podManager.removeAllCaptures()]) }
        guard let installer = running.installer else {
            agentLog("stopped", ["table": "none in the node's namespace (pod mode)"])
            return false
        }
        do {
            let removed = try installer.removeAll()
            agentLog("stopped", ["table": "removed (--cleanup-on-exit)", "removed": removed.count])
        } catch {
            agentLog("cleanup_failed", ["error": "\(error)"])
            throw error
        }
        return false
    }

    // MARK: keeping the node right

    /// `installer.apply` with the nftables events muted (`ChangeWatcher.muteTables`): weir's own commit wakes
    /// nobody and costs the kernel no notification per set element. If anyone else committed meanwhile, the
    /// generation says so and reconcile looks soon.
    private func applyCapture(_ installer: CaptureInstaller, _ capture: CaptureConfig, _ table: Table) throws
        -> [CaptureChange]
    {
        guard let watcher else { return try installer.apply(capture, table, claim: true) }
        watcher.muteTables()
        let changes: [CaptureChange]
        do {
            changes = try installer.apply(capture, table, claim: true)
        } catch {
            unmute(watcher)
            throw error
        }
        unmute(watcher)
        if installer.tablesChangedSinceVerified() { checkSoon = true }
        return changes
    }

    private func unmute(_ watcher: ChangeWatcher) {
        if !watcher.unmuteTables() {
            agentLog("warning", ["reason": "nftables events cannot be subscribed again: reconciling the table on "
                                    + "the interval only", "errno": errnoName(Errno.current)])
        }
    }

    private func reconcile(_ installer: CaptureInstaller) {
        var changes: [CaptureChange]
        var failure: Error?
        do {
            changes = try applyCapture(installer, settings.capture, settings.table)
        } catch {
            // What was repaired before the failure still counts.
            changes = (error as? AgentError)?.partialChanges ?? []
            failure = error
        }
        for c in changes { agentLog("reconcile_repaired", ["object": c.object, "change": c.description]) }
        if let failure { agentLog("reconcile_failed", ["error": "\(failure)"]) }
        state.withLock {
            $0.reconciles += 1
            for c in changes { $0.repairs[c.object, default: 0] += 1 }
            if let failure {
                $0.applyFailures += 1
                $0.problem = "reconcile failed: \(failure)"
            } else {
                $0.lastReconcileWall = Clock.wallSeconds()
                $0.problem = nil
                if !changes.isEmpty { $0.recordApply(at: $0.lastReconcileWall) }
            }
        }
    }

    /// Re-reads the configuration and applies what changed. Changed proxy settings (ports, mode, UID/GID, mark,
    /// limits) get a new data plane: it binds and starts first, then the rules move to it in one batch, then the old
    /// one retires (its listeners close, its open connections go on until they end). Returns the new server then.
    private func reload(_ installer: CaptureInstaller?, server: ProxyServer) -> ProxyServer? {
        let next: AgentSettings
        do {
            next = try reloadSettings()
        } catch {
            return refuseReload((error as? ConfigError)?.message ?? "\(error)")
        }
        let restart = settings.needsRestart(next)
        if !restart.isEmpty {
            return refuseReload("changed settings need a restart: \(restart.joined(separator: ","))")
        }
        var fresh: ProxyServer?
        if next.proxy != settings.proxy {
            let candidate = makeServer(next.proxy, counters: server.counters)
            // The same listening sockets go on serving, now on the new data plane: those of a port the reload keeps
            // are never closed, so nothing queued on them is reset (see `lendListeners`).
            candidate.inherit(server.lendListeners())
            do {
                try candidate.bind()
                try candidate.start()
            } catch {
                candidate.stop()  // its own new sockets never had rules pointing at them; the lent ones stay open here
                candidate.closeUnclaimedInherited()
                forgetStored(candidate)
                return refuseReload("new proxy listeners: \(error)")
            }
            fresh = candidate
            // Pods' listeners go on the new data plane (and their capture follows the new settings) before the
            // old one lets go of its own.
            podManager?.move(to: candidate, from: nil, next.capture, next.table)
            let unclaimed = candidate.closeUnclaimedInherited()
            agentLog("reload_listeners", ["kept": "\(candidate.inheritedTaken)", "closed": unclaimed])
        }
        let rulesChanged = next.capture != settings.capture
        var changes: [CaptureChange] = []
        if rulesChanged, let installer {
            do {
                changes = try applyCapture(installer, next.capture, next.table)
            } catch {
                // The table may already be the new one while a later step (routing) failed: put the running
                // configuration back before the new data plane goes, so no rule points at ports nobody serves.
                rollback(.captureRestore) { _ = try applyCapture(installer, settings.capture, settings.table) }
                if let fresh {
                    podManager?.move(to: server, from: fresh, settings.capture, settings.table)
                    fresh.retire()  // it may already hold connections: let them finish, never block this loop
                    forgetStored(fresh)
                    retired.append(fresh)
                }
                return refuseReload("\(error)", applyFailed: true)
            }
        }
        if fresh != nil {
            server.retire()
            forgetStored(server)
        }
        adopt(next, rulesChanged: rulesChanged)
        changes.forEach { agentLog("reload_applied", ["change": $0.description]) }
        agentLog("reloaded", ["rules": rulesChanged ? "changed" : "unchanged", "changes": changes.count,
                              "proxy": fresh == nil ? "unchanged" : "replaced"])
        return fresh
    }

    /// A reload that keeps the running configuration: logged and counted. Returns nil (no new data plane).
    private func refuseReload(_ reason: String, applyFailed: Bool = false) -> ProxyServer? {
        agentLog("reload_failed", ["reason": reason, "kept": "running configuration"])
        state.withLock {
            $0.reloadFailures += 1
            if applyFailed { $0.applyFailures += 1 }
        }
        return nil
    }

    /// The reloaded settings become the running ones (what a reload may change; the rest needs a restart).
    private func adopt(_ next: AgentSettings, rulesChanged: Bool) {
        settings.capture = next.capture
        settings.table = next.table
        settings.proxy = next.proxy
        settings.reconcileIntervalMs = next.reconcileIntervalMs
        settings.cleanupOnExit = next.cleanupOnExit
        let current = settings
        state.withLock {
            $0.reloads += 1
            $0.settings = current
            $0.problem = nil
            if rulesChanged { $0.recordApply(at: Clock.wallSeconds()) }
        }
    }

    /// Loops that have not run for 3 s (each wakes at least once a second when healthy): while any is stale, the
    /// watchdog is not fed, and systemd restarts the process.
    static func staleLoops(workers: [Int64], admin: Int64, now: Int64) -> [String] {
        var out: [String] = []
        for (i, beat) in workers.enumerated() where now - beat > 3000 { out.append("worker-\(i)") }
        if now - admin > 3000 { out.append("admin") }
        return out
    }

    /// `/healthz`: 200 while every loop makes progress, 503 naming the stale ones (the kubelet then restarts weir,
    /// as systemd's watchdog does).
    static func health(_ stale: [String]) -> AdminServer.Response {
        stale.isEmpty ? .init(status: 200, body: "ok\n")
                      : .init(status: 503, body: "unhealthy: no progress in \(stale.joined(separator: ", "))\n")
    }

    /// A copy of the state, for what reads several fields (status lines, /status, /metrics).
    var current: AgentState { state.withLock { $0 } }

    /// Connections open in every data plane, the retired ones too (`MemoryHousekeeping`).
    private func openConnections(_ running: Running) -> Int {
        ([running.server] + retired).reduce(0) { $0 + Int($1.counters.snapshot().active) }
    }

    private func status(_ server: ProxyServer) -> String {
        let s = current
        let open = server.counters.snapshot().active
        let last = s.lastReconcileWall > 0 ? "last reconcile \(Self.clock(s.lastReconcileWall)) UTC"
                                           : "no reconcile yet"
        let repairs = s.repairs.values.reduce(0, +)
        return "proxying \(open) connections; \(last); \(repairs) repairs"
    }

    static func clock(_ wall: Int64) -> String {
        let day = wall % 86400
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(two(day / 3600)):\(two(day / 60 % 60)):\(two(day % 60))"
    }

    // MARK: admin endpoints

    /// The metrics port: `/metrics` only, with the bearer token when one is configured (compared in constant time).
    private func respondMetrics(_ request: AdminServer.Request, token: String?) -> AdminServer.Response {
        guard request.path == "/metrics" else { return .init(status: 404, body: "not found: try /metrics\n") }
        if let token, !Self.sameToken(request.bearerToken, token) {
            return .init(status: 401, body: "unauthorized: expected Authorization: Bearer TOKEN\n")
        }
        return respond(request, check: nil)
    }

    /// Whether `given` equals `expected`, in time that depends on `expected`'s length only.
    static func sameToken(_ given: String?, _ expected: String) -> Bool {
        let a = Array((given ?? "").utf8), b = Array(expected.utf8)
        var difference = a.count == b.count ? 0 : 1
        for i in 0..<b.count { difference |= Int((i < a.count ? a[i] : 0) ^ b[i]) }
        return difference == 0
    }

    private func respond(_ request: AdminServer.Request, check: CaptureCheck?) -> AdminServer.Response {
        switch request.path {
        case "/healthz":
            // The watchdog's rule: this thread answering proves the admin loop; the workers' heartbeats prove theirs.
            let now = Clock.nowMs()
            let workers = state.withLock { $0.server }?.heartbeats() ?? []
            return Self.health(Self.staleLoops(workers: workers, admin: now, now: now))
        case "/pods":
            guard let pods = state.withLock({ $0.pods }) else {
                return .init(status: 404, body: "not found: /pods needs weir run --pod-mode\n")
            }
            return .init(status: 200, contentType: "application/json", body: PodStatus.renderList(pods.statuses()))
        case "/readyz":
            if let reason = notReady(check) { return .init(status: 503, body: "not ready\(reason)\n") }
            return .init(status: 200, body: "ready\n")
        case "/status":
            // For `weir status`: readiness exactly as /readyz decides it, and what the agent has done.
            let reason = notReady(check)
            let s = current
            let counters = s.server?.counters.snapshot()
            let status = AgentStatus(
                version: BuildInfo.version, ready: reason == nil,
                problem: reason.map { $0.hasPrefix(": ") ? String($0.dropFirst(2)) : "starting or draining" },
                connectionsActive: counters?.active ?? 0, connectionsAccepted: counters?.accepted ?? 0,
                lastReconcile: s.lastReconcileWall, reconciles: s.reconciles, repairs: s.repairs.values.reduce(0, +),
                reloads: s.reloads, reloadFailures: s.reloadFailures)
            return .init(status: 200, contentType: "application/json", body: status.json.rendered)
        case "/metrics":
            guard let server = state.withLock({ $0.server }) else { return .init(status: 503, body: "starting\n") }
            return .init(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8",
                         body: metrics(server))
        case "/config":
            // A map of how to avoid capture: for the node itself only.
            guard request.peerIsLoopback else {
                return .init(status: 403, body: "forbidden: /config answers loopback clients only\n")
            }
            let s = state.withLock { $0.settings }
            return .init(status: 200, contentType: "application/json",
                         body: AgentConfigJSON.render(capture: s.capture, proxy: s.proxy, agent: s.agentJSON))
        default:
            return .init(status: 404, body: "not found: try /healthz, /readyz, /metrics, /config, /status, /pods\n")
        }
    }

    /// Why the agent is not ready (": reason", or "" while starting or draining), nil when it is: what `/readyz`
    /// and `/status` say.
    private func notReady(_ check: CaptureCheck?) -> String? {
        let s = state.withLock { ($0.ready, $0.problem, $0.settings.capture, $0.settings.table, $0.pods,
                                  $0.settings.capturesNode) }
        guard s.0 else { return "" }
        if let problem = s.1 { return ": \(problem)" }
        if let pods = s.4, let reason = pods.notServed() { return ": \(reason)" }
        let missing = s.5 ? check?.missing(s.2, s.3) ?? [] : []
        if !missing.isEmpty {
            poke()
            return ": capture incomplete: \(missing.joined(separator: "; "))"
        }
        return nil
    }

    /// Each attached pod's TcpExtListenOverflows, read from its namespace's /proc/net/netstat by this thread.
    static func podOverflows(_ views: [PodManager.PodView]) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for v in views {
            guard let context = v.context,
                  let text = try? context.namespace.perform({ () -> String? in
                      guard case .success(let bytes) = readSmallFile("/proc/thread-self/net/netstat", limit: 1 << 16)
                      else { return nil }
                      return String(decoding: bytes, as: UTF8.self)
                  }),
                  let value = NetstatCounters.parse(text)["TcpExt"]?["ListenOverflows"] else { continue }
            out[v.record.label] = value
        }
        return out
    }

    /// Asks the main loop to reconcile now (the admin thread saw something missing).
    private func poke() {
        if case .success(let poller) = poller { poller.wake() }
    }

    private func metrics(_ server: ProxyServer) -> String {
        let s = current
        var samples = proxyMetricSamples(server.counters.snapshot(), config: s.settings.proxy)
        samples += agentMetricSamples(s)
        if let pods = s.pods {
            let views = pods.views
            samples += podMetricSamples(views, overflows: Self.podOverflows(views))
        }
        samples += NodeStatus.collect(netlink: nodeStatusReaders, proxyBacklog: server.backlog).metricSamples
        samples += listenerMetricSamples(server.listenerStats())
        samples += drainMetricSamples(startedWall: server.drainStartedWall, deadlineWall: server.drainDeadlineWall)
        samples += processStats()?.metricSamples ?? []
        let (connect, duration) = server.counters.histograms()
        return MetricsText.render(samples, histograms: [connect, duration], help: metricHelp)
    }
}

/// `$WATCHDOG_USEC` (and `$WATCHDOG_PID`, when set, naming this process): systemd's watchdog, pinged at half its
/// timeout as sd_watchdog_enabled(3) advises.
struct Watchdog {
    let intervalMs: Int64

    static func fromEnvironment() -> Watchdog? {
        guard let usec = ProcessEnvironment.get("WATCHDOG_USEC").flatMap({ Int64($0) }), usec > 0 else { return nil }
        if let pid = ProcessEnvironment.get("WATCHDOG_PID").flatMap({ Int32($0) }), pid != ProcessEnvironment.pid {
            return nil
        }
        return Watchdog(intervalMs: max(1, usec / 2000))
    }
}

/// The netlink readers of the node status on a real node (ctnetlink, nftables).
public let nodeStatusReaders = StatusNetlinkReaders(
    conntrackUsage: NodeStatusNetlink.conntrackUsage, conntrackCPUStats: NodeStatusNetlink.conntrackCPUStats,
    table: { try NodeStatusNetlink.table(named: CaptureRuleset.tableName) }, generation: NodeStatusNetlink.generation)

/// One line per event, key=value, on stderr; under journald with the event's priority (`EventLine.level`).
public func agentLog(_ event: String, _ fields: KeyValuePairs<String, CustomStringConvertible> = [:]) {
    JournalStream.writeLine(EventLine.format("weir run", event, fields), priority: EventLine.level(of: event).rawValue)
}
