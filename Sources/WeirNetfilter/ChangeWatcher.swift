import CNetfilter
import Glibc

/// Tells the agent when something it installed may have changed behind its back: subscribes to the kernel's
/// nftables events (NFNLGRP_NFTABLES) and to ip rule, route and IPv6 address events (rtnetlink). It carries no
/// detail: any event means "reconcile soon"; reconcile itself finds out what, if anything, drifted.
public final class ChangeWatcher {
    /// Descriptors to poll for input.
    public let descriptors: [Int32]
    /// NFNLGRP_NFTABLES, on the second descriptor.
    private static let nftablesGroup: Int32 = 7

    public init() throws {
        // Group numbers from linux/rtnetlink.h and linux/netfilter/nfnetlink.h; bit N-1 subscribes group N.
        let route: [UInt32] = [7 /* IPV4_ROUTE */, 8 /* IPV4_RULE */, 9 /* IPV6_IFADDR */, 11 /* IPV6_ROUTE */,
                               19 /* IPV6_RULE */]
        let nftables: [UInt32] = [UInt32(Self.nftablesGroup)]
        var fds: [Int32] = []
        for (bus, groups) in [(NETLINK_ROUTE, route), (NETLINK_NETFILTER, nftables)] {
            let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
                            | Int32(SOCK_CLOEXEC.rawValue), bus)
            guard fd >= 0 else {
                let e = errno
                fds.forEach { close($0) }
                throw NetlinkError("open netlink event socket", errno: e)
            }
            var address = sockaddr_nl()
            address.nl_family = sa_family_t(AF_NETLINK)
            address.nl_groups = groups.reduce(0) { $0 | (1 << ($1 - 1)) }
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
                }
            }
            guard rc == 0 else {
                let e = errno
                close(fd)
                fds.forEach { close($0) }
                throw NetlinkError("subscribe to netlink events", errno: e)
            }
            fds.append(fd)
        }
        descriptors = fds
    }

    deinit { descriptors.forEach { close($0) } }

    /// Stops, then starts again, the nftables events. While anyone listens, the kernel builds one notification per
    /// object of every commit: weir's own commit of a table with 100,000 set elements would cost seconds and 100,000
    /// messages it only throws away. What others commit meanwhile is not lost if the caller compares the nftables
    /// generation afterwards (`CaptureInstaller.tablesChangedSinceVerified`). A membership the kernel will not add back
    /// leaves reconcile on its interval; the caller says so.
    public func muteTables() { _ = membership(NETLINK_DROP_MEMBERSHIP) }
    /// False (errno set) when the kernel refused: no nftables events from now on.
    @discardableResult public func unmuteTables() -> Bool { membership(NETLINK_ADD_MEMBERSHIP) }

    private func membership(_ option: Int32) -> Bool {
        var group = Self.nftablesGroup
        return setsockopt(descriptors[1], SOL_NETLINK, option, &group, socklen_t(MemoryLayout<Int32>.size)) == 0
    }

    /// Reads and discards every queued event. Returns true if there was any (an overrun, ENOBUFS, counts as one:
    /// events were lost, so reconcile).
    @discardableResult
    public func drain() -> Bool {
        var any = false
        var buffer = [UInt8](repeating: 0, count: 16384)
        for fd in descriptors {
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n > 0 { any = true; continue }
                if n < 0 && errno == EINTR { continue }
                if n < 0 && errno == ENOBUFS { any = true; continue }
                break
            }
        }
        return any
    }
}
