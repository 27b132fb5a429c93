import CNetfilter
import WeirCore
#if canImport(Glibc)
import Glibc
#endif

/// Reads the status numbers that only netlink has: conntrack statistics over ctnetlink
/// (`IPCTNL_MSG_CT_GET_STATS_CPU`, `IPCTNL_MSG_CT_GET_STATS`) and weir's nftables table and the ruleset generation
/// (`NFT_MSG_GETTABLE`, `NFT_MSG_GETGEN`). All C pointers stay in this file.
public enum NodeStatusNetlink {
    /// A netlink request that failed: what was asked and errno.
    public struct Failure: Error, CustomStringConvertible {
        public let operation: String
        public let errno: Int32
        public var description: String { "\(operation): \(errnoName(errno)): \(String(cString: strerror(errno)))" }
    }

    /// Per-CPU conntrack statistics of the caller's network namespace.
    public static func conntrackCPUStats() throws -> [ConntrackCPUStats] {
        var out: [ConntrackCPUStats] = []
        try request(operation: "ctnetlink get stats per cpu", subsystem: UInt16(NFNL_SUBSYS_CTNETLINK),
                    message: UInt16(IPCTNL_MSG_CT_GET_STATS_CPU.rawValue),
                    flags: UInt16(NLM_F_REQUEST | NLM_F_DUMP), family: UInt8(AF_UNSPEC)) { nlh in
            var raw = weir_ct_cpu_stats()
            weir_ct_parse_cpu_stats(nlh, &raw)
            var s = ConntrackCPUStats(cpu: Int(raw.cpu))
            s.found = UInt64(raw.found); s.invalid = UInt64(raw.invalid); s.insert = UInt64(raw.insert)
            s.insertFailed = UInt64(raw.insert_failed); s.drop = UInt64(raw.drop)
            s.earlyDrop = UInt64(raw.early_drop); s.error = UInt64(raw.error)
            s.searchRestart = UInt64(raw.search_restart); s.clashResolve = UInt64(raw.clash_resolve)
            s.chainTooLong = UInt64(raw.chain_toolong)
            out.append(s)
        }
        return out.sorted { $0.cpu < $1.cpu }
    }

    /// Conntrack entries of the caller's network namespace and the (global) maximum.
    public static func conntrackUsage() throws -> ConntrackUsage {
        var usage: ConntrackUsage?
        try request(operation: "ctnetlink get stats", subsystem: UInt16(NFNL_SUBSYS_CTNETLINK),
                    message: UInt16(IPCTNL_MSG_CT_GET_STATS.rawValue),
                    flags: UInt16(NLM_F_REQUEST | NLM_F_ACK), family: UInt8(AF_UNSPEC)) { nlh in
            var raw = weir_ct_global_stats()
            weir_ct_parse_global_stats(nlh, &raw)
            usage = ConntrackUsage(entries: Int(raw.entries), maximum: Int(raw.max_entries), source: "ctnetlink")
        }
        guard let usage else { throw Failure(operation: "ctnetlink get stats: no reply", errno: ENODATA) }
        return usage
    }

    /// The table `inet <name>`: absent, or its flags and owner.
    public static func table(named name: String = "weir") throws -> TableStatus {
        var status = TableStatus.absent
        do {
            try request(operation: "nftables get table inet \(name)", subsystem: UInt16(NFNL_SUBSYS_NFTABLES),
                        message: UInt16(NFT_MSG_GETTABLE.rawValue), flags: UInt16(NLM_F_REQUEST | NLM_F_ACK),
                        family: UInt8(NFPROTO_INET), name: name) { nlh in
                var raw = weir_nft_table_info()
                weir_nft_parse_table(nlh, &raw)
                status = .present(flags: raw.flags, ownerPort: raw.present & 8 != 0 ? raw.owner : nil)
            }
        } catch let failure as Failure where failure.errno == ENOENT {
            return .absent
        }
        return status
    }

    /// The nftables ruleset generation id of the caller's network namespace.
    public static func generation() throws -> UInt32 {
        var gen: Int64 = -1
        try request(operation: "nftables get generation", subsystem: UInt16(NFNL_SUBSYS_NFTABLES),
                    message: UInt16(NFT_MSG_GETGEN.rawValue), flags: UInt16(NLM_F_REQUEST | NLM_F_ACK),
                    family: UInt8(AF_UNSPEC)) { nlh in
            gen = weir_nft_parse_gen(nlh)
        }
        guard gen >= 0 else { throw Failure(operation: "nftables get generation: no reply", errno: ENODATA) }
        return UInt32(gen)
    }

    /// Sends one nfnetlink request and calls `body` for each data message of the reply until NLMSG_DONE or the ack.
    private static func request(operation: String, subsystem: UInt16, message: UInt16, flags: UInt16,
                                family: UInt8, name: String? = nil,
                                body: (UnsafePointer<nlmsghdr>) -> Void) throws {
        guard let socket = mnl_socket_open(NETLINK_NETFILTER) else {
            throw Failure(operation: "\(operation): open netlink socket", errno: errno)
        }
        defer { mnl_socket_close(socket) }
        guard mnl_socket_bind(socket, 0, pid_t(0)) == 0 else {
            throw Failure(operation: "\(operation): bind netlink socket", errno: errno)
        }
        let size = max(weir_mnl_socket_buffer_size(), 8192)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        defer { buffer.deallocate() }
        let seq = UInt32(truncatingIfNeeded: time(nil))
        guard let nlh = weir_nfnl_request(buffer, subsystem, message, flags, family, seq) else {
            throw Failure(operation: "\(operation): build request", errno: EINVAL)
        }
        if let name { weir_nlmsg_put_strz(nlh, UInt16(NFTA_TABLE_NAME.rawValue), name) }
        guard mnl_socket_sendto(socket, nlh, Int(nlh.pointee.nlmsg_len)) >= 0 else {
            throw Failure(operation: operation, errno: errno)
        }
        while true {
            let received = mnl_socket_recvfrom(socket, buffer, size)
            guard received > 0 else { throw Failure(operation: operation, errno: received < 0 ? errno : EIO) }
            var remaining = Int32(received)
            var current: UnsafePointer<nlmsghdr>? = UnsafePointer(buffer.assumingMemoryBound(to: nlmsghdr.self))
            while let msg = current, mnl_nlmsg_ok(msg, remaining) {
                if msg.pointee.nlmsg_seq == seq {
                    switch Int32(msg.pointee.nlmsg_type) {
                    case NLMSG_DONE:
                        return
                    case NLMSG_ERROR:
                        let code = weir_nlmsg_error_code(msg)
                        if code == 0 { return }
                        throw Failure(operation: operation, errno: -code)
                    case NLMSG_NOOP, NLMSG_OVERRUN:
                        break
                    default:
                        body(msg)
                    }
                }
                current = UnsafePointer(mnl_nlmsg_next(msg, &remaining))
            }
            // A reply that is not a dump ends after its message when no ack was asked for.
            if flags & UInt16(NLM_F_DUMP) == 0 && flags & UInt16(NLM_F_ACK) == 0 { return }
        }
    }
}
