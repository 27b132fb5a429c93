// Deleting the conntrack entry of an upstream flow that ended without the proxy's own FIN or RST (see
// `ProxyActions.forgetUpstream`): otherwise the kernel reuses that entry, with no NAT, for an application's new
// connection on the same 4-tuple, and the connection goes around the capture.
import CWeirLinux
import Glibc
import WeirCore
import WeirSystem

extension Worker {
    /// Deletes the entry of the upstream flow of `c` (call before its sockets are closed). The flow's far end is
    /// asked again of the client socket, as when the connection was accepted, so a connection carries no copy of it.
    func forgetUpstreamFlow(_ c: Connection) {
        guard let local = upstreamLocal(c.upstream),
              let target = destination(ofClient: c.client, tproxy: c.inbound && config.mode == .tproxy,
                                       family: local.family) else { return }
        forget(local: local, target: target)
    }

    /// Deletes the entry of the flow from `upstream`'s local address to `target`.
    func forgetUpstreamFlow(_ upstream: Int32, target: SocketAddress) {
        guard let local = upstreamLocal(upstream) else { return }
        forget(local: local, target: target)
    }

    /// The upstream socket's local address; nil for one that never got a port (its connect failed before a SYN
    /// left), which has no entry.
    private func upstreamLocal(_ upstream: Int32) -> SocketAddress? {
        guard let local = SocketAddress.local(of: upstream), local.port != 0 else { return nil }
        return local
    }

    private func forget(local: SocketAddress, target: SocketAddress) {
        guard local.family == target.family else { return }
        guard conntrack >= 0 else {
            counters.add(.conntrackDeleteFailures)
            eventLog.log("conntrack_delete_failed", ["worker": index, "local": local, "destination": target,
                                                     "reason": "no ctnetlink socket"])
            return
        }
        let rc = withUnsafePointer(to: local.storage) { l in
            withUnsafePointer(to: target.storage) { t in weir_ct_delete(conntrack, l, t) }
        }
        if rc == 0 {
            counters.add(.conntrackDeleted)
        } else if errno != ENOENT {
            // ENOENT: the kernel had no entry (it expired, or the flow never created one). Anything else is worth
            // a line: without CAP_NET_ADMIN (EPERM) no entry is ever deleted.
            counters.add(.conntrackDeleteFailures)
            eventLog.log("conntrack_delete_failed", ["worker": index, "local": local, "destination": target,
                                                     "errno": errnoName(errno)])
        }
    }
}
