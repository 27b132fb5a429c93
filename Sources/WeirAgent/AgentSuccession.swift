import WeirCore
import WeirProxy
import WeirSystem

// How an agent replaces another without closing anything: at start it takes what the predecessor handed over
// (systemd's file-descriptor store after a restart; the running agent itself with --takeover), keeps its own
// listening sockets in systemd's store, and hands everything over in turn (to a successor that asks on
// handover.sock, or to the store on a restart). See Takeover.swift for the exchange and docs/proxy.md for why it is
// safe.
extension Agent {
    /// What the predecessor hands over: systemd's `LISTEN_FDS` (after a restart or a crash), else with --takeover
    /// the running agent's listeners. Nil when there is none.
    func inheritance() throws -> HandedOver? {
        if let handed = FDStore.inherited(proxyPort: settings.proxy.proxyPort,
                                          inboundPort: settings.proxy.inboundCapturePort) {
            agentLog("inherited", ["from": "systemd", "listeners": handed.listeners.count,
                                   "connections": handed.connections.count])
            return handed
        }
        guard settings.takeover else { return nil }
        return try TakeoverSession.begin(runDirectory: settings.runDirectory)
    }

    /// A data plane whose new listening sockets go to systemd's store as they are opened (named after this server,
    /// so that a reload replacing it can take exactly its sockets out again).
    func makeServer(_ config: ProxyConfig, counters: ProxyCounters? = nil) -> ProxyServer {
        let server = ProxyServer(config: config, counters: counters, nodeListeners: settings.capturesNode)
        serverGeneration += 1
        let generation = "g\(ProcessEnvironment.pid)n\(serverGeneration)"
        server.storeGeneration = generation
        server.onListenerOpened = { [unowned self] record, fd in
            let name = Agent.storeName(record.pod, generation: generation)
            if storeLive {
                _ = FDStore.keep(name, [fd])
            } else if FDStore.enabled, let copy = try? Descriptor.duplicating(fd) {
                pendingStore.append((name, copy))
            }
        }
        return server
    }

    /// Takes a data plane's listeners out of systemd's store once it no longer serves (a reload replaced it). Left
    /// there, a socket only the store still holds would stay in its port's SO_REUSEPORT group, and the kernel would
    /// queue new connections on it that nobody accepts; a socket the new data plane took over is in the store under
    /// the new data plane's name as well.
    func forgetStored(_ server: ProxyServer) {
        guard FDStore.enabled, !server.storeGeneration.isEmpty else { return }
        FDStore.forget(Agent.storeName("", generation: server.storeGeneration))
        for key in podManager?.keys ?? [] {
            FDStore.forget(Agent.storeName(key, generation: server.storeGeneration))
        }
    }

    /// The store's name of a listener of the node ("") or of a pod, opened by the server of `generation`.
    static func storeName(_ pod: String, generation: String) -> String {
        pod.isEmpty ? "weir-listen.\(generation)" : "weir-pod.\(generation).\(HandoverListener.storeSafe(pod))"
    }

    /// The store's name of a pod's listeners on the serving data plane.
    func storeName(pod: String) -> String {
        Agent.storeName(pod, generation: state.withLock { $0.server?.storeGeneration } ?? "")
    }

    /// Takes in the predecessor's connections. A live takeover: they come now, batch by batch, then this process
    /// waits for the predecessor to exit and takes the locks it held (returned: the data-plane lock). After a
    /// restart: they came from systemd's store with their state.
    func adoptConnections(_ handed: HandedOver, _ server: ProxyServer, _ run: RunDirectory) throws -> DataPlaneLock? {
        server.closeUnclaimedInherited()
        let pods = podManager?.contexts ?? [:]
        guard let session = handed.session else {
            let r = server.adopt(handed.connections, descriptors: handed.descriptors, pods: pods)
            if !handed.counters.isEmpty { server.counters.carryOver(handed.counters) }
            handed.descriptors.removeAll()
            FDStore.forget("weir-conn")
            FDStore.forget("weir-state")
            agentLog("adopted", ["from": "systemd", "connections": r.adopted, "lost": r.failed])
            return nil
        }
        let started = Clock.nowMs()
        let r = try session.finish(server, pods: pods)
        // The predecessor exits after BYE (or once it drained, when it kept its connections): its locks and its
        // ownership of the tables go with it.
        let limit = session.full ? 10_000 : settings.proxy.drainTimeoutMs + 10_000
        var waited: Int64 = 0
        while true {
            do {
                try run.takeLock(waitMs: limit)
                break
            } catch {
                waited += limit
                // Every connection is served here now: giving up would end them all. The predecessor has nothing
                // left to serve, so keep serving and keep waiting, loudly.
                guard session.full else {
                    throw AgentError("--takeover: pid \(session.predecessor) did not let go of \(run.lockPath) "
                                     + "within \(limit / 1000) s")
                }
                agentLog("warning", ["reason": "the predecessor still holds the run directory's lock after handing "
                                     + "everything over", "predecessor": "pid \(session.predecessor)",
                                     "waited_ms": waited])
            }
        }
        agentLog("takeover_done", ["from": "pid \(session.predecessor)", "connections": r.adopted, "lost": r.failed,
                                   "predecessor_exit_ms": Clock.nowMs() - started])
        guard settings.capturesNode else { return nil }
        do {
            return try DataPlaneLock.acquire()
        } catch let e as ProxyStartError {
            throw AgentError(e.description)
        }
    }

    /// Keeps this process's sockets in systemd's store (capture listeners went there as they were opened), and lets
    /// go of the names the predecessor's listeners were kept under: this process keeps its own.
    func keepInStore(_ endpoints: Endpoints, _ run: RunDirectory, handed: HandedOver?) {
        guard FDStore.enabled else { return }
        for name in handed?.storeNames ?? [] { FDStore.forget(name) }
        // The sockets handed over from the store are the same sockets this process listens on: kept again under this
        // generation's names, now that the old names are gone (systemd would drop them as duplicates before).
        for (name, copy) in pendingStore { _ = FDStore.keep(name, [copy.rawValue]) }
        pendingStore.removeAll()
        storeLive = true
        for (name, fd) in [("weir-admin", endpoints.admin.listenerDescriptor),
                           ("weir-metrics", endpoints.metrics?.listenerDescriptor ?? -1),
                           ("weir-handover", run.handoverSocket.rawValue),
                           ("weir-cni", podManager?.socket.rawValue ?? -1)] where fd >= 0 {
            _ = FDStore.keep(name, [fd])
        }
    }

    /// A successor asks on handover.sock: hand everything over. `.handedOver` ends the loop (exit without a drain);
    /// `.drainThenExit` ends it too, with the usual drain of what stayed here.
    func serveSuccessor(_ running: Running) -> Succession.Outcome {
        let connection: Descriptor
        do {
            guard let c = try UnixSeqpacket.accept(running.run.handoverSocket, timeoutMs: 10_000) else { return .stayed }
            connection = c
        } catch {
            agentLog("warning", ["reason": "handover socket accept failed", "error": "\(error)"])
            return .stayed
        }
        var sockets: [(HandoverListener.Kind, Int32)] = [(.admin, running.endpoints.admin.listenerDescriptor),
                                                         (.handover, running.run.handoverSocket.rawValue)]
        if let m = running.endpoints.metrics { sockets.append((.metrics, m.listenerDescriptor)) }
        if let p = podManager { sockets.append((.cni, p.socket.rawValue)) }
        let outcome = Succession.handOver(on: connection, SuccessionSources(
            server: running.server, sockets: sockets, pods: podManager?.namespaceDescriptors ?? []))
        if outcome != .stayed { state.withLock { $0.ready = false } }
        return outcome
    }
}
