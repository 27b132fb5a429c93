import Synchronization
import WeirCore
import WeirNetfilter
import WeirProxy
import WeirSystem
import WeirTuning

/// `weir run --pod-mode`: what the agent knows of `--pod-run-dir`, read by `PodManager`.
public struct PodSettings: Equatable, Sendable {
    /// `--run-dir`: `cni.sock` (0600), `pods.json` (the registry) and `agent.lock`.
    public var runDirectory: String
    /// `--capture-node`: also capture the agent's own namespace (host mode) besides the pods. Off by default.
    public var captureNode: Bool
    /// `--max-connections-per-pod` (0: none; --max-connections holds for all pods together).
    public var maxConnectionsPerPod: Int
    /// `--max-connection-rate-per-pod`: new connections per second (0: none).
    public var maxConnectionRatePerPod: Int

    public init(runDirectory: String, captureNode: Bool = false, maxConnectionsPerPod: Int = 0,
                maxConnectionRatePerPod: Int = 0) {
        self.runDirectory = runDirectory
        self.captureNode = captureNode
        self.maxConnectionsPerPod = maxConnectionsPerPod
        self.maxConnectionRatePerPod = maxConnectionRatePerPod
    }

    public var socketPath: String { runDirectory + "/cni.sock" }
    public var registryPath: String { runDirectory + "/pods.json" }
    public var lockPath: String { runDirectory + "/agent.lock" }
}

/// Every pod the agent serves (pod mode), owned by the agent's main thread.
///
/// Attaching a pod, in this order, so that a pod is never reported served before it is: take the pod namespace's
/// data-plane lock (no second weir serves it), open the installer's netlink sockets inside the namespace, open the
/// listeners inside it and hand them to the shared workers, then install the capture (the same owned, persistent
/// table as host mode) over those sockets, and record the pod. A failure undoes what this attach did and says why.
///
/// The registry (`pods.json`) survives a restart: a new agent re-opens each pod's namespace by its path, checks it is
/// still the namespace it attached (device and inode), and attaches it again; a pod whose namespace is gone is
/// dropped. Until then the pod's persistent table keeps its traffic captured: connections to the capture ports are
/// refused, never sent around the proxy (fail closed).
final class PodManager {
    let settings: PodSettings
    /// The CNI plugin's socket; its requests are served by the main loop, one at a time.
    let socket: Descriptor
    private var pods: [String: Pod] = [:]
    /// While a predecessor still runs (a live takeover), pods are attached without their locks and their capture is
    /// not claimed: `claimAll` does both once it has exited.
    var deferClaims = false
    /// Whether a pod's namespace is swept of stale upstream conntrack entries as the agent takes its lock
    /// (`StaleConntrack`): not when live connections were handed over. `onStaleConntrackDeleted` gets each count.
    var sweepsStaleConntrack = true
    var onStaleConntrackDeleted: ((Int) -> Void)?
    /// Pods' namespaces handed over by the predecessor, by pod key (live takeover).
    var inheritedNamespaces: [String: Descriptor] = [:]
    /// Told whenever a pod's listeners go away (the file-descriptor store lets go of them).
    var onDetach: ((PodContext) -> Void)?
    /// What the admin thread reads (`/pods`, `/readyz`, `/metrics`).
    private let published = Mutex<[PodView]>([])
    /// Pods' repairs by pod label, counted by reconcile (`weir_pod_repairs_total`).
    private var repairs: [String: Int64] = [:]

    /// One attached (or known but not served) pod.
    final class Pod {
        var record: PodRecord
        var state: PodState
        var namespace: NetworkNamespace.Handle?
        var lock: DataPlaneLock?
        var installer: CaptureInstaller?
        var context: PodContext?

        init(record: PodRecord, state: PodState) {
            self.record = record
            self.state = state
        }
    }

    /// A pod as the admin thread sees it.
    struct PodView {
        let record: PodRecord
        let state: PodState
        let context: PodContext?
        let repairs: Int64
    }

    /// The CNI socket: `inherited` (the predecessor's), else made in the run directory (the caller holds the run
    /// directory's lock). Throws `AgentError` naming the path: before anything on the node changed.
    init(settings: PodSettings, inherited: Descriptor?) throws {
        self.settings = settings
        if let inherited {
            socket = inherited
            return
        }
        do {
            socket = try UnixSeqpacket.listen(at: settings.socketPath, permissions: 0o600)
        } catch let e as SystemError {
            throw AgentError("--run-dir \(quotedValue(settings.runDirectory)): \(e)")
        }
    }

    // MARK: the registry

    /// Re-attaches every pod of the registry whose namespace still exists (same device and inode); drops the rest.
    /// Pods that cannot be served now stay `failed` with the reason, and reconcile tries them again.
    func restore(_ server: ProxyServer, _ capture: CaptureConfig, _ table: Table) {
        let started = Clock.nowUs()
        let records: [PodRecord]
        switch readSmallFile(settings.registryPath, limit: 16 << 20) {
        case .success(let bytes):
            do {
                records = try PodRegistryFile.parse(bytes)
            } catch {
                agentLog("warning", ["reason": "pod registry unreadable: starting with no pods", "file":
                                        settings.registryPath, "error": "\(error)"])
                return
            }
        case .failure:
            records = []  // no file yet: a first start
        }
        var kept = 0, dropped = 0
        var reopened: [Pod] = []
        for record in records {
            let pod = Pod(record: record, state: .pending)
            pods[record.key] = pod
            if reopen(pod) {
                reopened.append(pod)
                kept += 1
            } else {
                pods[record.key] = nil
                dropped += 1
                agentLog("pod_dropped", ["pod": record.label, "netns": record.netns,
                                         "reason": "namespace gone or replaced"])
            }
        }
        for pod in reopened { attach(pod, server, capture, table) }
        if !deferClaims && sweepsStaleConntrack { sweepInBackground(reopened) }
        if !records.isEmpty { agentLog("pods_restored", ["attached": kept, "dropped": dropped,
                                                          "took_ms": (Clock.nowUs() - started) / 1000]) }
        save()
        publish()
    }

    /// Opens the pod's namespace: the predecessor's descriptor of it when it handed one over, else by its path, if
    /// that path still names the namespace attached before.
    private func reopen(_ pod: Pod) -> Bool {
        if let d = inheritedNamespaces.removeValue(forKey: pod.record.key),
           let handle = try? NetworkNamespace.Handle(adopting: d, path: pod.record.netns),
           handle.identity.map({ "\($0)" }) == pod.record.netnsIdentity {
            pod.namespace = handle
            return true
        }
        guard let handle = try? NetworkNamespace.Handle(path: pod.record.netns),
              handle.identity.map({ "\($0)" }) == pod.record.netnsIdentity else { return false }
        pod.namespace = handle
        return true
    }

    private func save() {
        let text = PodRegistryFile.render(pods.values.map(\.record))
        do {
            try SysctlFiles.writeAtomically(settings.registryPath, text)
        } catch {
            agentLog("warning", ["reason": "pod registry not saved: a restart would not re-attach the latest pods",
                                 "file": settings.registryPath, "error": "\(error)"])
        }
    }

    private func publish() {
        let views = pods.values.map { PodView(record: $0.record, state: $0.state, context: $0.context,
                                              repairs: repairs[$0.record.label] ?? 0) }
        published.withLock { $0 = views }
    }

    // MARK: requests of the CNI plugin

    /// Serves every request waiting on the CNI socket (the main loop calls this when it is readable).
    func serveRequests(_ server: ProxyServer, _ capture: CaptureConfig, _ table: Table) {
        while true {
            let connection: Descriptor
            do {
                guard let c = try UnixSeqpacket.accept(socket, timeoutMs: 5000) else { return }
                connection = c
            } catch {
                agentLog("warning", ["reason": "cni socket accept failed", "error": "\(error)"])
                return
            }
            let reply = serve(connection, server, capture, table)
            do {
                try UnixSeqpacket.send(reply.encoded, on: connection)
            } catch {
                agentLog("warning", ["reason": "cni reply not sent", "error": "\(error)"])
            }
        }
    }

    private func serve(_ connection: Descriptor, _ server: ProxyServer, _ capture: CaptureConfig,
                       _ table: Table) -> PodReply {
        // The socket is 0600 and root's; the peer's uid is checked again in case the directory was opened up.
        guard UnixSeqpacket.peerUID(connection) == 0 else {
            return PodReply(ok: false, state: "refused", message: "only root may attach pods")
        }
        let message: UnixSeqpacket.Message
        do {
            message = try UnixSeqpacket.receive(on: connection, limit: PodWire.maxMessage, maxDescriptors: 1)
        } catch {
            return PodReply(ok: false, state: "failed", message: "request not received: \(error)")
        }
        guard !message.truncated else {
            return PodReply(ok: false, state: "failed", message: "request larger than \(PodWire.maxMessage) bytes")
        }
        let request: PodRequest
        do {
            request = try PodRequest.decode(message.bytes)
        } catch {
            return PodReply(ok: false, state: "failed", message: "\(error)")
        }
        switch request.operation {
        case .add:
            guard let fd = message.descriptors.first else {
                return PodReply(ok: false, state: "failed", message: "add came without the namespace descriptor")
            }
            return add(request, fd, server, capture, table)
        case .del: return delete(request, server)
        case .check: return check(request)
        case .status: return PodReply(ok: true, state: "serving")
        }
    }

    /// ADD: captured and served before the reply, or refused with the reason (the runtime retries the sandbox).
    private func add(_ request: PodRequest, _ fd: Descriptor, _ server: ProxyServer, _ capture: CaptureConfig,
                     _ table: Table) -> PodReply {
        let started = Clock.nowUs()
        let handle: NetworkNamespace.Handle
        do {
            handle = try NetworkNamespace.Handle(adopting: fd, path: request.netns)
        } catch {
            return PodReply(ok: false, state: "failed", message: "CNI_NETNS \(quotedValue(request.netns)) \(error)")
        }
        guard let identity = handle.identity else {
            return PodReply(ok: false, state: "failed", message: "CNI_NETNS \(quotedValue(request.netns)): no identity")
        }
        if let existing = pods[request.key] {
            if existing.record.netnsIdentity == "\(identity)", existing.state == .up {
                return PodReply(ok: true, state: "up")  // attached twice: nothing to do
            }
            // The sandbox was recreated (a new namespace for the same pod), or an earlier attach failed: the old
            // listeners retire, and the pod is attached anew in the namespace the runtime names now.
            agentLog("pod_replaced", ["pod": existing.record.label, "old_netns": existing.record.netnsIdentity,
                                      "new_netns": "\(identity)"])
            release(existing, server, removeCapture: false)
            pods[request.key] = nil
        }
        if let refusal = budgetRefusal(server) {
            agentLog("pod_refused", ["pod": request.pod.label, "reason": refusal])
            return PodReply(ok: false, state: "failed", message: refusal)
        }
        let record = PodRecord(key: request.key, containerID: request.containerID, pod: request.pod,
                               netns: request.netns, netnsIdentity: "\(identity)")
        let pod = Pod(record: record, state: .pending)
        pod.namespace = handle
        attach(pod, server, capture, table)
        guard pod.state == .up else {
            let reason = if case .failed(let r) = pod.state { r } else { "not served" }
            release(pod, server, removeCapture: true)
            publish()
            return PodReply(ok: false, state: "failed", message: reason)
        }
        pods[record.key] = pod
        save()
        publish()
        agentLog("pod_attached", ["pod": record.label, "netns": record.netns, "container": record.containerID,
                                  "took_us": Clock.nowUs() - started])
        return PodReply(ok: true, state: "up")
    }

    /// Attaches `pod` (its namespace is open): `up`, or `failed` with the reason and nothing of this attach left
    /// but what `release` takes away.
    private func attach(_ pod: Pod, _ server: ProxyServer, _ capture: CaptureConfig, _ table: Table) {
        guard let namespace = pod.namespace else { pod.state = .failed(reason: "namespace not open"); return }
        do {
            try namespace.perform {
                if pod.lock == nil && !deferClaims { pod.lock = try DataPlaneLock.acquire() }
                if pod.installer == nil { pod.installer = try CaptureInstaller() }
            }
        } catch {
            pod.state = .failed(reason: "\(error)")
            return
        }
        if pod.context == nil {
            let context = PodContext(key: pod.record.key, label: pod.record.label, namespace: namespace,
                                     maxConnections: settings.maxConnectionsPerPod,
                                     rate: ConnectionRate(perSecond: settings.maxConnectionRatePerPod))
            do {
                try server.attach(context)
            } catch {
                pod.state = .failed(reason: "listeners: \(error)")
                return
            }
            pod.context = context
        }
        if deferClaims {
            pod.state = .pending  // served; its table is claimed once the predecessor has gone
            return
        }
        do {
            _ = try pod.installer!.apply(capture, table, claim: true)
        } catch {
            pod.state = .failed(reason: "capture: \(error)")
            return
        }
        pod.state = .up
    }

    /// Deletes the stale upstream entries a killed predecessor may have left in the namespaces of `restored` pods
    /// (`StaleConntrack`), after they are served: each pod's sweep is one walk of the kernel's whole conntrack hash
    /// (~6 ms with 262,144 buckets, more with many entries on the node), which before serving made a re-attach of 250
    /// pods take seconds. An entry is deleted only when no socket has its 4-tuple (`StaleConntrack.sweep(serving:)`),
    /// so this agent's own connecting upstreams keep theirs. Until a pod's sweep, an application's new connection on a
    /// stale entry's exact 4-tuple would still go around the capture, as it would between the kill and this start.
    /// Runs on half the usable CPUs (at least one), so serving keeps the rest; logs `pods_swept` at the end.
    private func sweepInBackground(_ restored: [Pod]) {
        let namespaces = restored.compactMap { p in p.namespace.map { ($0, p.record.label) } }
        if namespaces.isEmpty { return }
        let started = Clock.nowUs()
        let deleted = Mutex(0)
        let report = onStaleConntrackDeleted
        runInBackground(namespaces.count, threads: max(1, SystemInfo.usableCPUs / 2), name: "weir-sweep", { i in
            let (namespace, label) = namespaces[i]
            let n = (try? namespace.perform { StaleConntrack.sweep(pod: label, serving: true) }) ?? 0
            deleted.withLock { $0 += n }
            report?(n)
        }, done: {
            agentLog("pods_swept", ["pods": namespaces.count, "deleted": deleted.withLock { $0 },
                                    "took_ms": (Clock.nowUs() - started) / 1000])
        })
    }

    /// Lets go of what the agent holds for `pod`: listeners (its open connections end on their own), the netlink
    /// sockets, the namespace's lock and descriptor. `removeCapture` takes weir's table and routing out of the
    /// namespace first (DEL; a failed ADD).
    private func release(_ pod: Pod, _ server: ProxyServer, removeCapture: Bool) {
        if let context = pod.context {
            server.detach(context)
            onDetach?(context)
        }
        if removeCapture, let installer = pod.installer {
            do { _ = try installer.removeAll() } catch {
                agentLog("warning", ["pod": pod.record.label, "reason": "capture not removed", "error": "\(error)"])
            }
        }
        pod.context = nil
        pod.installer = nil
        pod.lock = nil
        pod.namespace = nil
    }

    /// Why a new pod cannot be served: its descriptors would eat into what connections need. Pods may use the
    /// descriptor limit less two per allowed connection (and 64 for the agent), or half the limit, whichever is more.
    private func budgetRefusal(_ server: ProxyServer) -> String? {
        let limit = SystemInfo.openFilesLimit ?? 1024
        let perPod = server.descriptorsPerPod + 4  // + namespace, lock, nftables and rtnetlink sockets
        let forConnections = 2 * server.config.maxConnections + 64
        let budget = max(limit - forConnections, limit / 2)
        let attached = pods.values.filter { $0.context != nil }.count
        guard (attached + 1) * perPod > budget else { return nil }
        return "descriptor budget spent: \(attached) pods attached at \(perPod) descriptors each, budget \(budget) "
            + "of RLIMIT_NOFILE \(limit) (2 per --max-connections kept for connections); raise LimitNOFILE"
    }

    /// DEL: idempotent; the namespace may be gone already.
    private func delete(_ request: PodRequest, _ server: ProxyServer) -> PodReply {
        guard let pod = pods[request.key] ?? pods.values.first(where: { $0.record.containerID == request.containerID })
        else { return PodReply(ok: true, state: "absent") }
        // A DEL for an older sandbox of the same pod (its container id differs) leaves the current one alone.
        if !request.containerID.isEmpty, pod.record.containerID != request.containerID {
            return PodReply(ok: true, state: "absent")
        }
        release(pod, server, removeCapture: true)
        pods[pod.record.key] = nil
        save()
        publish()
        agentLog("pod_detached", ["pod": pod.record.label, "container": pod.record.containerID])
        return PodReply(ok: true, state: "absent")
    }

    /// CHECK: served, with its table in place.
    private func check(_ request: PodRequest) -> PodReply {
        guard let pod = pods[request.key], pod.record.containerID == request.containerID else {
            return PodReply(ok: false, state: "absent", message: "pod is not attached to this agent")
        }
        guard pod.state == .up else {
            let reason = if case .failed(let r) = pod.state { r } else { "pending" }
            return PodReply(ok: false, state: pod.state.name, message: reason)
        }
        return PodReply(ok: true, state: "up")
    }

    // MARK: keeping pods right

    /// Per pod: a namespace whose path is gone (the runtime deleted the sandbox without a DEL) is dropped; a pod
    /// not served is attached again; a served pod's table and routing are re-applied and what drifted is repaired
    /// and counted with the pod's label.
    func reconcile(_ server: ProxyServer, _ capture: CaptureConfig, _ table: Table) {
        var changed = false
        for pod in pods.values.sorted(by: { $0.record.key < $1.record.key }) {
            guard NetworkNamespace.Identity.of(path: pod.record.netns).map({ "\($0)" }) == pod.record.netnsIdentity
            else {
                agentLog("pod_dropped", ["pod": pod.record.label, "netns": pod.record.netns,
                                         "reason": "namespace gone or replaced"])
                release(pod, server, removeCapture: false)
                pods[pod.record.key] = nil
                changed = true
                continue
            }
            guard pod.state == .up, let installer = pod.installer else {
                if pod.namespace == nil { _ = reopen(pod) }
                attach(pod, server, capture, table)
                if pod.state == .up { agentLog("pod_attached", ["pod": pod.record.label, "netns": pod.record.netns]) }
                continue
            }
            do {
                let fixed = try installer.apply(capture, table, claim: true)
                for c in fixed {
                    agentLog("reconcile_repaired", ["pod": pod.record.label, "object": c.object,
                                                    "change": c.description])
                }
                if !fixed.isEmpty { repairs[pod.record.label, default: 0] += Int64(fixed.count) }
            } catch {
                agentLog("reconcile_failed", ["pod": pod.record.label, "error": "\(error)"])
                pod.state = .failed(reason: "reconcile: \(error)")
            }
        }
        if changed { save() }
        publish()
    }

    /// A reload replaced the data plane: every pod's listeners move to `fresh` (bound before the old ones close), and
    /// its capture follows the reloaded settings.
    func move(to fresh: ProxyServer, from old: ProxyServer?, _ capture: CaptureConfig, _ table: Table) {
        for pod in pods.values {
            if let context = pod.context, let old { old.detach(context) }
            pod.context = nil
            attach(pod, fresh, capture, table)
        }
        publish()
    }

    /// The predecessor has gone (a live takeover): every pod takes its namespace's lock and claims its table.
    func claimAll(_ server: ProxyServer, _ capture: CaptureConfig, _ table: Table) {
        deferClaims = false
        inheritedNamespaces.removeAll()
        for pod in pods.values { attach(pod, server, capture, table) }
        save()
        publish()
    }

    /// Every known pod's key, served or not.
    var keys: [String] { pods.values.map(\.record.key).sorted() }

    /// Pod contexts by key, for handed-over connections.
    var contexts: [String: PodContext] {
        var out: [String: PodContext] = [:]
        for p in pods.values { if let c = p.context { out[p.record.key] = c } }
        return out
    }

    /// Every pod's namespace descriptor by key, for a successor.
    var namespaceDescriptors: [(String, Int32)] {
        pods.values.compactMap { p in p.namespace.map { (p.record.key, $0.rawDescriptor) } }
    }

    /// Re-applies the capture of every pod (a reload changed the rules but not the data plane).
    func reapply(_ capture: CaptureConfig, _ table: Table) {
        for pod in pods.values where pod.installer != nil {
            do { _ = try pod.installer!.apply(capture, table, claim: true) } catch {
                pod.state = .failed(reason: "capture: \(error)")
            }
        }
        publish()
    }

    /// `--cleanup-on-exit`: takes weir's capture out of every pod on the way out. Without it the tables stay
    /// (persist): the pods' traffic stays captured, refused until the next agent serves it.
    func removeAllCaptures() -> Int {
        var removed = 0
        for pod in pods.values {
            if let installer = pod.installer, (try? installer.removeAll()) != nil { removed += 1 }
        }
        return removed
    }

    // MARK: what the admin thread reads

    var views: [PodView] { published.withLock { $0 } }

    /// `/readyz`'s part: nil when every known pod is served, else which are not.
    func notServed() -> String? {
        let bad = views.filter { $0.state != .up }.map { "\($0.record.label) \($0.state.name)" }.sorted()
        guard !bad.isEmpty else { return nil }
        return "pods not served: " + bad.prefix(5).joined(separator: ", ") + (bad.count > 5 ? ", ..." : "")
    }

    func statuses() -> [PodStatus] {
        views.map { PodStatus(record: $0.record, state: $0.state, connections: $0.context?.snapshot.active ?? 0) }
    }
}
