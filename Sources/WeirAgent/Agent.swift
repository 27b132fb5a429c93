import CWeirLinux
import Glibc
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
public final class Agent {
    private var settings: AgentSettings
    private let reloadSettings: () throws -> AgentSettings
    private let onReady: () -> Void
    private let state: Mutex<AgentState>
    private let wake: Int32
    /// Data planes a reload replaced (or started and then gave up), finishing their open connections.
    private var retired: [ProxyServer] = []
    /// Netlink events that say something may have changed behind weir's back; nil when they cannot be had.
    private var watcher: ChangeWatcher?
    /// Set when another process committed nftables while weir's own apply had the events muted: reconcile soon.
    private var checkSoon = false

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
        /// The data plane serving the capture ports now (a reload that changes the proxy settings replaces it).
        var server: ProxyServer?

        /// A capture install changed the kernel at `wall` (Unix seconds).
        mutating func recordApply(at wall: Int64) {
            applies += 1
            lastApplyWall = wall
        }
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
        wake = weir_eventfd()
    }

    /// Runs until SIGTERM or SIGINT; returns after the drain. Throws `AgentError` when it cannot start (nothing on
    /// the node changed then) or when a worker fails.
    public func run() throws {
        // Signals are read from a signalfd by this thread; the threads it starts inherit the mask.
        Signals.block()
        let signals = weir_signalfd()
        guard signals >= 0, wake >= 0 else { throw AgentError("signalfd: \(errnoName(errno))") }
        defer { close(signals) }

        // 1. Acquire. The admin socket is bound where weir was started (the node, where probes and scrapes come
        // from); with --network-namespace everything after it (the lock, listeners, netlink, the threads) lives in
        // the target namespace.
        // CaptureCheck opens its sockets on first use, on the admin thread, which starts in the target namespace.
        let check = CaptureCheck()
        let admin = try AdminServer(host: settings.adminHost, port: settings.adminPort) { [unowned self] request in
            self.respond(request, check: check)
        }
        // /metrics on a port of its own (Prometheus reaches the node's address; probes stay on loopback).
        let metricsServer = try settings.metrics.map { m in
            try AdminServer(host: m.host, port: m.port) { [unowned self] request in
                self.respondMetrics(request, token: m.token)
            }
        }
        if let path = settings.networkNamespace {
            do {
                try NetworkNamespace.enter(path)
            } catch {
                throw AgentError("--network-namespace \(quotedValue(path)) \(error)")
            }
        }
        let lock: DataPlaneLock
        var server = ProxyServer(config: settings.proxy)
        do {
            lock = try DataPlaneLock.acquire()
        } catch let e as ProxyStartError {
            throw AgentError(e.description)
        }
        state.withLock { $0.server = server }
        do {
            try server.bind()
        } catch let e as ProxyStartError {
            throw AgentError("proxy: \(e.description)")
        }
        let installer = try CaptureInstaller()
        do {
            watcher = try ChangeWatcher()
        } catch {
            agentLog("warning", ["reason": "no netlink events, reconciling on the interval only", "error": "\(error)"])
        }

        // 2. Serve.
        do {
            try server.start()
        } catch let e as ProxyStartError {
            throw AgentError("proxy: \(e.description)")
        }
        try admin.start()
        agentLog("admin_listening", ["address": admin.address])
        if let metricsServer {
            try metricsServer.start()
            agentLog("metrics_listening", ["address": metricsServer.address,
                                           "token": settings.metrics?.token == nil ? "none" : "required"])
        }

        // 3. Change the node.
        var tuned = false
        if let (tuner, plan) = settings.tuning {
            do {
                let results = try tuner.apply(plan)
                tuned = true
                agentLog("tuned", ["profile": plan.profile, "changed": results.count,
                                   "failed": results.filter { $0.failure != nil }.count])
            } catch {
                server.stop()
                admin.stop()
            metricsServer?.stop()
                metricsServer?.stop()
                throw AgentError("applying profile \(plan.profile): \(error)")
            }
        }
        do {
            let changes = try applyCapture(installer, settings.capture, settings.table)
            if changes.isEmpty { print("table \(settings.table.family.rawValue) \(settings.table.name): unchanged") }
            changes.forEach { print($0) }
            if installer.ownershipUnsupported {
                print("note: this kernel has no nftables persist flag (needs >= 6.9); the table is not owned")
            }
            fflush(stdout)
            state.withLock { $0.recordApply(at: weir_wall_seconds()) }
            agentLog("capture_installed", ["table": "\(settings.table.family.rawValue) \(settings.table.name)",
                                           "changes": changes.count])
        } catch {
            state.withLock { $0.applyFailures += 1 }
            server.stop()
            admin.stop()
            metricsServer?.stop()
            // The table was new (nothing of weir's was there before) but a later step failed: take it all out again,
            // so the failed start leaves the node as it found it. A table that was already there stays.
            let partial = (error as? AgentError)?.partialChanges ?? []
            if partial.contains(where: { $0.kind == .table && $0.action == .created }) {
                _ = try? installer.removeAll()
            }
            if tuned, let (tuner, _) = settings.tuning { _ = try? tuner.revert() }
            throw error
        }

        // 4. Ready.
        state.withLock { $0.ready = true }
        let watchdog = Watchdog.fromEnvironment()
        SystemdNotify.send("READY=1\nSTATUS=\(status(server))")
        Memory.releaseStartupPages()
        onReady()
        agentLog("ready", ["table": "\(settings.table.family.rawValue) \(settings.table.name)",
                           "workers": server.workerCount, "watchdog_ms": watchdog?.intervalMs ?? 0,
                           "reconcile_interval_ms": settings.reconcileIntervalMs])

        // 5. Keep it right.
        var now = weir_now_ms()
        var nextReconcile = now + settings.reconcileIntervalMs
        var eventReconcile: Int64? = nil
        var lastReconcile = now
        var nextWatchdog = now
        var withheld = false
        var stopSignal: Int32 = 0
        var fds = [pollfd(fd: signals, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
        for fd in watcher?.descriptors ?? [] { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
        loop: while true {
            var deadline = min(nextReconcile, eventReconcile ?? Int64.max)
            if watchdog != nil { deadline = min(deadline, nextWatchdog) }
            deadline = min(deadline, now + 1000)  // a worker's failure is noticed within a second
            _ = poll(&fds, nfds_t(fds.count), Int32(max(0, deadline - weir_now_ms())))
            now = weir_now_ms()
            while true {
                let sig = weir_signalfd_read(signals)
                if sig == 0 { break }
                if sig == SIGHUP {
                    // systemd shows the unit reloading until READY=1, whether the reload was applied or refused.
                    SystemdNotify.reloading()
                    if let replaced = reload(installer, server: server) {
                        retired.append(server)
                        server = replaced
                        state.withLock { $0.server = replaced }
                    }
                    SystemdNotify.send("READY=1\nSTATUS=\(status(server))")
                } else {
                    stopSignal = sig
                    break loop
                }
            }
            if fds[1].revents != 0 {
                var value: UInt64 = 0
                _ = read(wake, &value, 8)
                eventReconcile = max(now, lastReconcile + 1000)
            }
            if checkSoon {
                checkSoon = false
                if eventReconcile == nil { eventReconcile = max(now + 100, lastReconcile + 1000) }
            }
            if watcher?.drain() == true, eventReconcile == nil {
                // Events come in bursts (our own apply makes some): reconcile once, soon, at most once a second.
                eventReconcile = max(now + 100, lastReconcile + 1000)
            }
            if now >= nextReconcile || (eventReconcile.map { now >= $0 } ?? false) {
                reconcile(installer)
                watcher?.drain()  // what our own repair caused
                lastReconcile = weir_now_ms()
                eventReconcile = nil
                nextReconcile = lastReconcile + settings.reconcileIntervalMs
            }
            retired.removeAll { old in
                guard old.finished else { return false }
                old.stop()  // joins at once: every loop has ended
                agentLog("retired", ["workers": old.workerCount])
                return true
            }
            if let failure = server.failure {
                agentLog("worker_failed", ["reason": failure])
                state.withLock { $0.ready = false }
                SystemdNotify.send("STATUS=worker failed: \(failure)")
                server.stop()
                admin.stop()
            metricsServer?.stop()
                metricsServer?.stop()
                throw AgentError("proxy: \(failure)")
            }
            if let watchdog, now >= nextWatchdog {
                nextWatchdog = now + watchdog.intervalMs
                let stale = Self.staleLoops(workers: server.heartbeats(), admin: admin.heartbeat, now: now)
                if stale.isEmpty {
                    SystemdNotify.send("WATCHDOG=1\nSTATUS=\(status(server))")
                    if withheld { agentLog("watchdog_resumed") }
                    withheld = false
                } else if !withheld {
                    withheld = true
                    agentLog("watchdog_withheld", ["stale": stale.joined(separator: ",")])
                }
            }
        }

        // 6. Stop.
        state.withLock { $0.ready = false }
        SystemdNotify.send("STOPPING=1\nSTATUS=draining")
        agentLog("signal", ["signal": stopSignal == SIGTERM ? "SIGTERM" : "SIGINT",
                            "active": server.counters.snapshot().active])
        // One --drain-timeout for all: every data plane starts draining before any is waited for.
        server.beginStop()
        retired.forEach { $0.beginStop() }
        server.stop()
        retired.forEach { $0.stop() }
        admin.stop()
        metricsServer?.stop()
        if settings.cleanupOnExit {
            do {
                let removed = try installer.removeAll()
                agentLog("stopped", ["table": "removed (--cleanup-on-exit)", "removed": removed.count])
            } catch {
                agentLog("cleanup_failed", ["error": "\(error)"])
                throw error
            }
        } else {
            agentLog("stopped", ["table": "kept (persist)"])
        }
        withExtendedLifetime((lock, installer, watcher)) {}
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
                                    + "the interval only", "errno": errnoName(errno)])
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
                $0.lastReconcileWall = weir_wall_seconds()
                $0.problem = nil
                if !changes.isEmpty { $0.recordApply(at: $0.lastReconcileWall) }
            }
        }
    }

    /// Re-reads the configuration and applies what changed. Changed proxy settings (ports, mode, UID/GID, mark,
    /// limits) get a new data plane: it binds and starts first, then the rules move to it in one batch, then the old
    /// one retires (its listeners close, its open connections go on until they end). Returns the new server then.
    private func reload(_ installer: CaptureInstaller, server: ProxyServer) -> ProxyServer? {
        func refuse(_ reason: String, applyFailed: Bool = false) -> ProxyServer? {
            agentLog("reload_failed", ["reason": reason, "kept": "running configuration"])
            state.withLock {
                $0.reloadFailures += 1
                if applyFailed { $0.applyFailures += 1 }
            }
            return nil
        }
        let next: AgentSettings
        do {
            next = try reloadSettings()
        } catch {
            return refuse((error as? ConfigError)?.message ?? "\(error)")
        }
        let restart = settings.needsRestart(next)
        if !restart.isEmpty {
            return refuse("changed settings need a restart: \(restart.joined(separator: ","))")
        }
        var fresh: ProxyServer?
        if next.proxy != settings.proxy {
            let candidate = ProxyServer(config: next.proxy, counters: server.counters)
            do {
                try candidate.bind()
                try candidate.start()
            } catch {
                candidate.stop()  // nothing was accepted: its listeners never had rules pointing at them
                return refuse("new proxy listeners: \(error)")
            }
            fresh = candidate
        }
        let rulesChanged = next.capture != settings.capture
        var changes: [CaptureChange] = []
        if rulesChanged {
            do {
                changes = try applyCapture(installer, next.capture, next.table)
            } catch {
                // The table may already be the new one while a later step (routing) failed: put the running
                // configuration back before the new data plane goes, so no rule points at ports nobody serves.
                _ = try? applyCapture(installer, settings.capture, settings.table)
                if let fresh {
                    fresh.retire()  // it may already hold connections: let them finish, never block this loop
                    retired.append(fresh)
                }
                return refuse("\(error)", applyFailed: true)
            }
        }
        fresh.map { _ in server.retire() }
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
            if rulesChanged { $0.recordApply(at: weir_wall_seconds()) }
        }
        changes.forEach { agentLog("reload_applied", ["change": $0.description]) }
        agentLog("reloaded", ["rules": rulesChanged ? "changed" : "unchanged", "changes": changes.count,
                              "proxy": fresh == nil ? "unchanged" : "replaced"])
        return fresh
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

    private func status(_ server: ProxyServer) -> String {
        let s = state.withLock { $0 }
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
            let now = weir_now_ms()
            let workers = state.withLock { $0.server }?.heartbeats() ?? []
            return Self.health(Self.staleLoops(workers: workers, admin: now, now: now))
        case "/readyz":
            if let reason = notReady(check) { return .init(status: 503, body: "not ready\(reason)\n") }
            return .init(status: 200, body: "ready\n")
        case "/status":
            // For `weir status`: readiness exactly as /readyz decides it, and what the agent has done.
            let reason = notReady(check)
            let s = state.withLock { $0 }
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
            return .init(status: 404, body: "not found: try /healthz, /readyz, /metrics, /config, /status\n")
        }
    }

    /// Why the agent is not ready (": reason", or "" while starting or draining), nil when it is: what `/readyz`
    /// and `/status` say.
    private func notReady(_ check: CaptureCheck?) -> String? {
        let s = state.withLock { ($0.ready, $0.problem, $0.settings.capture, $0.settings.table) }
        guard s.0 else { return "" }
        if let problem = s.1 { return ": \(problem)" }
        let missing = check?.missing(s.2, s.3) ?? []
        if !missing.isEmpty {
            poke()
            return ": capture incomplete: \(missing.joined(separator: "; "))"
        }
        return nil
    }

    /// Asks the main loop to reconcile now (the admin thread saw something missing).
    private func poke() {
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
    }

    private func metrics(_ server: ProxyServer) -> String {
        let s = state.withLock { $0 }
        var samples = proxyMetricSamples(server.counters.snapshot(), config: s.settings.proxy)
        samples.append(MetricSample(name: "weir_ready", value: s.ready ? 1 : 0))
        samples.append(MetricSample(name: "weir_build_info",
                                    labels: ["version": BuildInfo.version, "commit": BuildInfo.commit], value: 1))
        samples.append(MetricSample(name: "weir_capture_applies_total", value: Double(s.applies)))
        samples.append(MetricSample(name: "weir_capture_apply_failures_total", value: Double(s.applyFailures)))
        samples.append(MetricSample(name: "weir_capture_last_apply_timestamp_seconds", value: Double(s.lastApplyWall)))
        for object in ["table", "owner", "rule", "route", "address"] {
            samples.append(MetricSample(name: "weir_reconcile_repairs_total", labels: ["object": object],
                                        value: Double(s.repairs[object] ?? 0)))
        }
        samples.append(MetricSample(name: "weir_reconcile_runs_total", value: Double(s.reconciles)))
        samples.append(MetricSample(name: "weir_reconcile_last_timestamp_seconds", value: Double(s.lastReconcileWall)))
        samples.append(MetricSample(name: "weir_config_reloads_total", value: Double(s.reloads)))
        samples.append(MetricSample(name: "weir_config_reload_failures_total", value: Double(s.reloadFailures)))
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
        guard let usec = getenv("WATCHDOG_USEC").flatMap({ Int64(String(cString: $0)) }), usec > 0 else { return nil }
        if let pid = getenv("WATCHDOG_PID").flatMap({ Int32(String(cString: $0)) }), pid != getpid() { return nil }
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
