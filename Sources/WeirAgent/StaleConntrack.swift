import WeirCore
import WeirSystem

/// The start-up clean-up of a predecessor's upstream conntrack entries (`UpstreamConntrack`): run by a starting agent
/// in its namespace before anything there is served, and in each pod namespace it re-attaches from the registry
/// just after serving it (`serving`: `PodManager.sweepInBackground`). Only when no live connection was handed over:
/// a predecessor that handed over its connections is alive or stopped cleanly, and the entries of its connecting
/// upstreams belong to sockets this process now serves.
public enum StaleConntrack {
    /// Deletes the entries weir's mark identifies as stale in the calling thread's network namespace and logs
    /// `conntrack_stale_deleted` with the count (and `pod` in pod mode); returns the count. A failure (no
    /// CAP_NET_ADMIN, no conntrack in the kernel) is a warning: the start goes on.
    ///
    /// `serving`: this agent already serves the namespace, so an entry in SYN_SENT with weir's mark may be one of its
    /// own upstreams connecting (or one of them took over a stale entry's 4-tuple: its SYN then joined that entry).
    /// Each chosen entry is then deleted only if, asked right before the delete, the kernel knows no TCP socket with
    /// its 4-tuple (`SocketAddress.tcpSocketExists`); when it cannot say, the entry is spared.
    @discardableResult
    public static func sweep(pod: String? = nil, serving: Bool = false) -> Int {
        let sweep: Conntrack.Sweep
        do {
            sweep = try Conntrack.open().deleteEntries(mark: UpstreamConntrack.mark, where: {
                UpstreamConntrack.isStale(ipProtocol: $0.ipProtocol, tcpState: $0.tcpState, mark: $0.mark)
            }, confirm: {
                !serving || SocketAddress.tcpSocketExists(local: $0.source, remote: $0.destination) == false
            })
        } catch {
            agentLog("warning", ["reason": "stale upstream conntrack entries not deleted: an application's new "
                                    + "connection on such an entry's 4-tuple may go around the capture until it "
                                    + "expires", "pod": pod ?? "", "error": "\(error)"])
            return 0
        }
        let failed = sweep.firstError.map { "\(sweep.failed) (\(errnoName($0)))" } ?? "0"
        if let pod {
            agentLog("conntrack_stale_deleted", ["count": sweep.deleted, "pod": pod, "gone": sweep.gone,
                                                 "spared": sweep.spared, "failed": failed])
        } else {
            agentLog("conntrack_stale_deleted", ["count": sweep.deleted, "gone": sweep.gone, "failed": failed])
        }
        return sweep.deleted
    }
}
