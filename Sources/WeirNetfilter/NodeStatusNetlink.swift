import CNetfilter
import WeirCore
#if canImport(Glibc)
import Glibc
#endif

/// Reads the status numbers that only netlink has: conntrack statistics over ctnetlink
/// (`IPCTNL_MSG_CT_GET_STATS_CPU`, `IPCTNL_MSG_CT_GET_STATS`; libnetfilter_conntrack 1.0.9 has no API for them, so
/// the requests are built here and the CTA_STATS_* attributes parsed by helpers in shim.h), and weir's nftables
/// table and the ruleset generation through `NftClient`. All C pointers stay in this module.
public enum NodeStatusNetlink {
    /// Per-CPU conntrack statistics of the caller's network namespace, sorted by CPU.
    public static func conntrackCPUStats() throws -> [ConntrackCPUStats] {
        let replies = try ctnetlink(IPCTNL_MSG_CT_GET_STATS_CPU, dump: true,
                                    operation: "ctnetlink get conntrack statistics per cpu")
        return replies.compactMap(cpuStats).sorted { $0.cpu < $1.cpu }
    }

    /// One `IPCTNL_MSG_CT_GET_STATS_CPU` reply; nil when it is not shaped like one (the nfgenmsg holds the CPU).
    static func cpuStats(_ message: NetlinkMessage) -> ConntrackCPUStats? {
        guard message.isNetfilterShaped else { return nil }
        var raw = weir_ct_cpu_stats()
        message.withHeader { weir_ct_parse_cpu_stats($0, &raw) }
        var s = ConntrackCPUStats(cpu: Int(raw.cpu))
        s.found = UInt64(raw.found); s.invalid = UInt64(raw.invalid); s.insert = UInt64(raw.insert)
        s.insertFailed = UInt64(raw.insert_failed); s.drop = UInt64(raw.drop)
        s.earlyDrop = UInt64(raw.early_drop); s.error = UInt64(raw.error)
        s.searchRestart = UInt64(raw.search_restart); s.clashResolve = UInt64(raw.clash_resolve)
        s.chainTooLong = UInt64(raw.chain_toolong)
        return s
    }

    /// Conntrack entries of the caller's network namespace and the (global) maximum.
    public static func conntrackUsage() throws -> ConntrackUsage {
        let operation = "ctnetlink get conntrack statistics"
        let replies = try ctnetlink(IPCTNL_MSG_CT_GET_STATS, dump: false, operation: operation)
        guard let message = replies.first, let usage = usage(message) else {
            throw NetlinkError(operation, errno: ENODATA)
        }
        return usage
    }

    /// The `IPCTNL_MSG_CT_GET_STATS` reply; nil without an entry count.
    static func usage(_ message: NetlinkMessage) -> ConntrackUsage? {
        guard message.isNetfilterShaped else { return nil }
        var raw = weir_ct_global_stats()
        message.withHeader { weir_ct_parse_global_stats($0, &raw) }
        guard raw.present & (1 << CTA_STATS_GLOBAL_ENTRIES.rawValue) != 0 else { return nil }
        return ConntrackUsage(entries: Int(raw.entries), maximum: Int(raw.max_entries), source: "ctnetlink")
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

    private static func ctnetlink(_ message: cntl_msg_types, dump: Bool, operation: String) throws -> [NetlinkMessage] {
        let socket = try NetlinkSocket(bus: NETLINK_NETFILTER)
        let sequence = socket.nextSequence()
        var buffer = [UInt8](repeating: 0, count: 256)
        let flags = UInt16(NLM_F_REQUEST | (dump ? NLM_F_DUMP : NLM_F_ACK))
        let length = buffer.withUnsafeMutableBytes { raw -> Int in
            let nlh = weir_nfnl_request(raw.baseAddress, UInt16(NFNL_SUBSYS_CTNETLINK), UInt16(message.rawValue),
                                        flags, UInt8(AF_UNSPEC), sequence)!
            return Int(nlh.pointee.nlmsg_len)
        }
        return try socket.transact(Array(buffer[0..<length]), sequence: sequence, dump: dump, operation: operation)
    }
}
