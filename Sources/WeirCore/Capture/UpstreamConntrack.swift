/// weir's identity on the conntrack entries of its proxy's own upstream connections, and which of them a starting
/// agent deletes.
///
/// After a `kill -9` of the agent, its upstream connections that were still connecting leave their entries in
/// SYN_SENT for 120 s, and an application's new connection on the same 4-tuple would reuse such an entry, with its
/// decision not to NAT, and go around the capture. A starting agent therefore deletes them, but never by guessing:
/// the first rule of the capture table's nat `output` chain (which sees a connection's first packet only, after
/// conntrack made its entry) gives every new TCP connection of the proxy's UID (the first `-u`: the owner of weir's upstream sockets) the conntrack
/// mark `mark`, and the agent deletes only entries that carry exactly that mark and are in SYN_SENT.
///
/// The mark is set only on an entry whose mark is still 0, so weir never overwrites a mark another component set
/// (and an entry that component marks later is no longer weir's to delete). It is never 1337: istio's TPROXY rules
/// test `ct mark 1337` for equality and copy meta mark 1337 into the ct mark of the proxy's inbound hand-off, which
/// then stops being weir's (those entries need no clean-up: TPROXY's capture does not depend on NAT). The low 12
/// bits (`0x972`) are neither of istio ambient's in-pod connmarks (`0x111` and `0x222` under mask `0xfff`).
public enum UpstreamConntrack {
    /// "weir" in ASCII.
    public static let mark: UInt32 = 0x7765_6972
    /// IP protocol number of TCP.
    public static let tcp: UInt8 = 6
    /// The kernel's TCP conntrack state SYN_SENT (`enum tcp_conntrack`, include/uapi/linux/netfilter/nf_conntrack_tcp.h).
    public static let synSent: UInt8 = 1

    /// True for an entry a starting agent deletes: weir's mark, TCP, still in SYN_SENT (the connect of a proxy that
    /// died). An entry that got further belongs to a connection that was established (its socket gone with the
    /// process: the kernel ends those entries itself on the peer's reset or after their timeout).
    public static func isStale(ipProtocol: UInt8, tcpState: UInt8, mark: UInt32) -> Bool {
        mark == Self.mark && ipProtocol == tcp && tcpState == synSent
    }
}
