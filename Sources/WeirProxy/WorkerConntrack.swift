// Deleting the conntrack entry of an upstream flow that ended without the proxy's own FIN or RST (see
// `ProxyActions.forgetUpstream`): otherwise the kernel reuses that entry, with no NAT, for an application's new
// connection on the same 4-tuple, and the connection goes around the capture.
import WeirCore
import WeirSystem

extension Worker {
    /// Whether only this proxy ever makes the 4-tuples of a connection's upstream flows, so that no forgotten entry
    /// can be reused around the capture: the inbound upstreams under TPROXY with a source port of
    /// `--tproxy-source-ports` (from the client's address, to the application, ports the clients do not use).
    ///
    /// Their entries are never deleted, because the delete could hit a live connection. A peer's RST takes the
    /// upstream socket out of the kernel's connection table at once, before the worker reads that event and closes
    /// it. The 4-tuple is free from that moment, and another worker's next upstream can take it (535 ports went
    /// round in ~1.6 s in the stress soak). A delete after the close then removes the *new* connection's entry,
    /// with the connection mark that routes the application's replies back to the proxy. The replies went out to
    /// the real client, which reset them: 4 of 196,173 inbound connections failed that way in a 300 s soak.
    /// Kept, the old entry does no harm: the next SYN on the 4-tuple is the proxy's own, on the same path with the
    /// same marks, and the kernel restarts or re-syncs the entry from it.
    @inline(__always) func ownsUpstreamTuples(inbound: Bool) -> Bool {
        inbound && sourcePorts != nil && config.mode == .tproxy
    }

    /// The upstream flow of `c`, read while both its sockets are open: the upstream's local address, and the far end
    /// asked again of the client socket (as when the connection was accepted, so a connection carries no copy of it).
    /// Delete it with `forget` once the upstream socket is closed: a connecting socket still open can retransmit its
    /// SYN after the delete, and that SYN creates the entry again.
    func upstreamFlow(_ c: Connection) -> (local: SocketAddress, target: SocketAddress)? {
        guard let local = upstreamLocal(c.upstream),
              let target = destination(ofClient: c.client, tproxy: c.inbound && config.mode == .tproxy,
                                       family: local.family) else { return nil }
        return (local, target)
    }

    /// The flow from `upstream`'s local address to `target` (read before `upstream` is closed).
    func upstreamFlow(_ upstream: Int32, target: SocketAddress) -> (local: SocketAddress, target: SocketAddress)? {
        upstreamLocal(upstream).map { ($0, target) }
    }

    /// The upstream socket's local address; nil for one that never got a port (its connect failed before a SYN
    /// left), which has no entry.
    private func upstreamLocal(_ upstream: Int32) -> SocketAddress? {
        guard let local = SocketAddress.local(of: upstream), local.port != 0 else { return nil }
        return local
    }

    /// This worker's conntrack handle inside `pod`'s namespace: opened on first use by this thread (its
    /// credentials are the ones the kernel checks), kept until the pod is detached. Nil when it cannot be opened.
    func podConntrack(_ pod: PodContext) -> Conntrack? {
        let key = ObjectIdentifier(pod)
        if let known = podConntracks[key] { return known }
        let opened = try? pod.namespace.perform { try Conntrack.open() }
        if opened == nil {
            log("warning", ["worker": index, "pod": pod.label, "reason": "no ctnetlink socket in the pod's namespace: "
                                + "conntrack entries of its failed upstream flows stay"])
        }
        podConntracks[key] = opened
        return opened
    }

    /// Deletes the conntrack entry of a flow (`upstreamFlow`), after its upstream socket is closed. A pod's flow is in
    /// the pod's namespace, and so is its entry: it is deleted there, with this worker's handle for that pod.
    ///
    /// The 4-tuple is free from the moment the upstream socket ended (its peer's RST, or the close), which can be
    /// well before this call (a connection whose upstream was reset still drains its pipe to the client). An
    /// application's connection on the same 4-tuple meanwhile has an entry of its own, redirected to this proxy's
    /// listener: that one is spared (`Conntrack.delete(...sparingRedirectsTo:)`), and counted. Deleting it would
    /// cut that live connection (the stress reload fault refused 3 to 25 new connections per run as `not_redirected`
    /// that way, and now and then reset a later one).
    func forget(_ flow: (local: SocketAddress, target: SocketAddress)?, pod: PodContext?) {
        guard let (local, target) = flow else { return }
        guard local.family == target.family else { return }
        guard let conntrack = pod.map(podConntrack) ?? conntrack else {
            counters.add(.conntrackDeleteFailures)
            eventLog.log("conntrack_delete_failed", ["worker": index, "local": local, "destination": target,
                                                     "reason": "no ctnetlink socket"])
            return
        }
        switch conntrack.delete(source: local, destination: target,
                                sparingRedirectsTo: (config.proxyPort, config.inboundCapturePort)) {
        case .deleted:
            counters.add(.conntrackDeleted)
        case .noEntry:
            break  // the kernel had no entry (it expired, or the flow never created one)
        case .spared:
            // An application's connection took the 4-tuple after the upstream let it go, and was redirected here.
            counters.add(.conntrackSpared)
        case .failed(let e):
            // Worth a line: without CAP_NET_ADMIN (EPERM) no entry is ever deleted.
            counters.add(.conntrackDeleteFailures)
            eventLog.log("conntrack_delete_failed", ["worker": index, "local": local, "destination": target,
                                                     "errno": errnoName(e)])
        }
    }
}
