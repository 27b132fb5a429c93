import CNetfilter
import WeirCore
import WeirSystem

/// Reads the status numbers that only netlink has: conntrack statistics over ctnetlink
/// (`IPCTNL_MSG_CT_GET_STATS_CPU`, `IPCTNL_MSG_CT_GET_STATS`; libnetfilter_conntrack 1.0.9 has no API for them, so
/// the requests are built and the CTA_STATS_* attributes read with WeirSystem's netlink codec), and weir's nftables
/// table and the ruleset generation through `NftClient`.
public enum NodeStatusNetlink {
    /// Per-CPU conntrack statistics of the caller's network namespace, sorted by CPU.
    public static func conntrackCPUStats() throws -> [ConntrackCPUStats] {
        let replies = try ctnetlink(IPCTNL_MSG_CT_GET_STATS_CPU, dump: true, NetlinkOperation(
            .dump, .conntrackStatistics, "ctnetlink get conntrack statistics per cpu"))
        return replies.compactMap(cpuStats).sorted { $0.cpu < $1.cpu }
    }

    /// Where each CTA_STATS_* counter goes.
    private static let cpuCounters: [UInt16: WritableKeyPath<ConntrackCPUStats, UInt64>] = [
        UInt16(CTA_STATS_FOUND.rawValue): \.found, UInt16(CTA_STATS_INVALID.rawValue): \.invalid,
        UInt16(CTA_STATS_INSERT.rawValue): \.insert, UInt16(CTA_STATS_INSERT_FAILED.rawValue): \.insertFailed,
        UInt16(CTA_STATS_DROP.rawValue): \.drop, UInt16(CTA_STATS_EARLY_DROP.rawValue): \.earlyDrop,
        UInt16(CTA_STATS_ERROR.rawValue): \.error, UInt16(CTA_STATS_SEARCH_RESTART.rawValue): \.searchRestart,
        UInt16(CTA_STATS_CLASH_RESOLVE.rawValue): \.clashResolve,
        UInt16(CTA_STATS_CHAIN_TOOLONG.rawValue): \.chainTooLong,
    ]

    /// One `IPCTNL_MSG_CT_GET_STATS_CPU` reply; nil when it is not shaped like one. The CPU is nfgenmsg's resource
    /// id; each counter a big-endian u32 (one of another size is left out, as libmnl's validation would).
    static func cpuStats(_ message: NetlinkMessage) -> ConntrackCPUStats? {
        guard message.isNetfilterShaped, let nfgenmsg = message.fixedHeader(4) else { return nil }
        let cpu = Int(nfgenmsg[nfgenmsg.startIndex + 2]) << 8 | Int(nfgenmsg[nfgenmsg.startIndex + 3])
        var s = ConntrackCPUStats(cpu: cpu)
        let attributes = message.netfilterAttributes
        for a in attributes {
            guard let counter = cpuCounters[a.type], let value = attributes.integer(a, as: UInt32.self) else { continue }
            s[keyPath: counter] = UInt64(UInt32(bigEndian: value))
        }
        return s
    }

    /// Conntrack entries of the caller's network namespace and the (global) maximum.
    public static func conntrackUsage() throws -> ConntrackUsage {
        let operation = NetlinkOperation(.get, .conntrackStatistics, "ctnetlink get conntrack statistics")
        let replies = try ctnetlink(IPCTNL_MSG_CT_GET_STATS, dump: false, operation)
        guard let message = replies.first, let usage = usage(message) else {
            throw NetlinkError(operation, errno: Errno.ENODATA)
        }
        return usage
    }

    /// The `IPCTNL_MSG_CT_GET_STATS` reply; nil without an entry count.
    static func usage(_ message: NetlinkMessage) -> ConntrackUsage? {
        guard message.isNetfilterShaped else { return nil }
        var entries: UInt32?, maximum: UInt32 = 0
        let attributes = message.netfilterAttributes
        for a in attributes {
            guard let value = attributes.integer(a, as: UInt32.self).map(UInt32.init(bigEndian:)) else { continue }
            if a.type == UInt16(CTA_STATS_GLOBAL_ENTRIES.rawValue) { entries = value }
            if a.type == UInt16(CTA_STATS_GLOBAL_MAX_ENTRIES.rawValue) { maximum = value }
        }
        guard let entries else { return nil }
        return ConntrackUsage(entries: Int(entries), maximum: Int(maximum), source: "ctnetlink")
    }

    /// The table `inet <name>`: absent, or its flags and owner.
    public static func table(named name: String = "weir") throws -> TableStatus {
        guard let info = try NftClient().table(family: .inet, name: name) else { return .absent }
        return .present(flags: info.flags, ownerPort: info.ownerPortID)
    }

    /// The nftables ruleset generation id of the caller's network namespace.
    public static func generation() throws -> UInt32 {
        try NftClient().generation()
    }

    private static func ctnetlink(_ message: cntl_msg_types, dump: Bool, _ operation: NetlinkOperation) throws
        -> [NetlinkMessage]
    {
        let socket = try NetlinkSocket.opened(.netfilter)
        let sequence = socket.nextSequence()
        let request = NetlinkRequest(capacity: 64)
        request.begin(type: UInt16(NFNL_SUBSYS_CTNETLINK) << 8 | UInt16(message.rawValue),
                      flags: dump ? [.request, .dump] : [.request, .ack], sequence: sequence)
        request.put(header: nfgenmsg(nfgen_family: UInt8(AF_UNSPEC), version: UInt8(NFNETLINK_V0), res_id: 0))
        return try socket.transact(request, sequence: sequence, dump: dump, operation)
    }
}
