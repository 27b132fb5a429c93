// Carrying out what the connection state machine (ProxyConnectionState, WeirCore) decided: start forwarding,
// propagate half-close and resets, close and count.
import CWeirLinux
import Glibc
import WeirCore
import WeirSystem

extension Worker {
    // MARK: actions

    func apply(_ c: Connection, _ actions: ProxyActions) {
        if actions.isEmpty { return }
        if actions.contains(.startForwarding) {
            counters.connected(worker: index, afterUs: weir_now_us() - c.dialedUs)
            connecting.remove(c)
            c.inConnectingList = false
            c.listTime = now
            active.append(c)
            c.clientReadable = true
            c.clientWritable = true
            c.upstreamReadable = true
            c.upstreamWritable = true
            pumpBoth(c)
            // Not once pumping closed the connection: the descriptor may already belong to someone else.
            if c.quickAckOff && !c.state.isClosed { _ = weir_set_quickack(c.upstream, 1) }
            c.quickAckOff = false
            return
        }
        if actions.contains(.shutdownClientWrite) { shutdown(c.client, Int32(SHUT_WR)) }
        if actions.contains(.shutdownUpstreamWrite) { shutdown(c.upstream, Int32(SHUT_WR)) }
        if actions.contains(.resetClient) { _ = weir_set_linger_reset(c.client) }
        if actions.contains(.resetUpstream) { _ = weir_set_linger_reset(c.upstream) }
        // Read while both sockets are open, deleted once the upstream is closed (see `upstreamFlow`).
        let flow = actions.contains(.forgetUpstream) ? upstreamFlow(c) : nil
        defer { forget(flow) }
        if actions.contains(.close) {
            // Pipes that still hold bytes are closed, never pooled.
            c.toUpstream.pending = 0
            c.toClient.pending = 0
            closePipe(&c.toUpstream)
            closePipe(&c.toClient)
            release(&c.toUpstream)
            release(&c.toClient)
            close(c.client)
            close(c.upstream)
            graveyard.append(c)
            if c.inConnectingList { connecting.remove(c) } else { active.remove(c) }
            counters.add(.active, -1)
            counters.add(.closed)
            counters.closedForwarded(worker: index, inbound: c.inbound, lifetimeMs: now - c.createdMs)
        }
    }
}
