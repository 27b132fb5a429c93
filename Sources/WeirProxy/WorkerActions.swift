// Carrying out what the connection state machine (ProxyConnectionState, WeirCore) decided: start forwarding,
// propagate half-close and resets, close and count.
import WeirCore
import WeirSystem

extension Worker {
    // MARK: actions

    func apply(_ c: Connection, _ actions: ProxyActions) {
        if actions.isEmpty { return }
        if actions.contains(.startForwarding) {
            counters.connected(worker: index, afterUs: Clock.nowUs() - c.dialedUs)
            connecting.remove(c)
            c.inConnectingList = false
            c.listTime = now
            active.append(c)
            // Readable flags are the events' (see `handleIO`): no read is made that is known to say EAGAIN.
            c.clientWritable = true
            c.upstreamWritable = true
            pumpBoth(c)
            return
        }
        if actions.contains(.shutdownClientWrite) { shutdownWrite(c.client) }
        if actions.contains(.shutdownUpstreamWrite) { shutdownWrite(c.upstream) }
        if actions.contains(.resetClient) { _ = SocketOption.lingerReset.apply(to: c.client, family: 0) }
        if actions.contains(.resetUpstream) { _ = SocketOption.lingerReset.apply(to: c.upstream, family: 0) }
        // Read while both sockets are open, deleted once the upstream is closed (see `upstreamFlow`).
        let forgets = actions.contains(.forgetUpstream) && !ownsUpstreamTuples(inbound: c.inbound)
        let flow = forgets ? upstreamFlow(c) : nil
        defer { forget(flow, pod: c.pod) }
        if actions.contains(.close) {
            // Pipes that still hold bytes are closed, never pooled.
            c.toUpstream.pending = 0
            c.toClient.pending = 0
            closePipe(&c.toUpstream)
            closePipe(&c.toClient)
            release(&c.toUpstream)
            release(&c.toClient)
            if c.sharedDescriptors {
                poller.remove(c.client)
                poller.remove(c.upstream)
            }
            closeDescriptor(c.client)
            closeDescriptor(c.upstream)
            graveyard.append(c)
            if c.inConnectingList { connecting.remove(c) } else { active.remove(c) }
            counters.add(.active, -1)
            counters.add(.closed)
            counters.closedForwarded(worker: index, inbound: c.inbound, lifetimeMs: now - c.createdMs)
            c.pod?.add(c.inbound ? .activeInbound : .activeOutbound, -1)
        }
    }
}
