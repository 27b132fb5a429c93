import WeirSystem

/// Tells the agent when something it installed may have changed behind its back: subscribes to the kernel's
/// nftables events (NFNLGRP_NFTABLES) and to ip rule, route and IPv6 address events (rtnetlink). It carries no
/// detail: any event means "reconcile soon"; reconcile itself finds out what, if anything, drifted.
public final class ChangeWatcher {
    private let route: NetlinkSocket
    private let nftables: NetlinkSocket
    /// NFNLGRP_NFTABLES (linux/netfilter/nfnetlink.h).
    private static let nftablesGroup: UInt32 = 7

    public init() throws {
        // Group numbers from linux/rtnetlink.h.
        route = try NetlinkSocket.opened(.route, groups: [7 /* IPV4_ROUTE */, 8 /* IPV4_RULE */,
                                                          9 /* IPV6_IFADDR */, 11 /* IPV6_ROUTE */, 19 /* IPV6_RULE */])
        nftables = try NetlinkSocket.opened(.netfilter, groups: [Self.nftablesGroup])
    }

    /// Descriptors to poll for input.
    public var descriptors: [Int32] { [route.descriptor.rawValue, nftables.descriptor.rawValue] }

    /// Stops, then starts again, the nftables events. While anyone listens, the kernel builds one notification per
    /// object of every commit: weir's own commit of a table with 100,000 set elements would cost seconds and 100,000
    /// messages it only throws away. What others commit meanwhile is not lost if the caller compares the nftables
    /// generation afterwards (`CaptureInstaller.tablesChangedSinceVerified`). A membership the kernel will not add back
    /// leaves reconcile on its interval; the caller says so.
    public func muteTables() { _ = nftables.setMembership(Self.nftablesGroup, false) }
    /// False (errno set) when the kernel refused: no nftables events from now on.
    @discardableResult public func unmuteTables() -> Bool { nftables.setMembership(Self.nftablesGroup, true) }

    /// Reads and discards every queued event. Returns true if there was any (an overrun, ENOBUFS, counts as one:
    /// events were lost, so reconcile).
    @discardableResult
    public func drain() -> Bool {
        // Both sockets, always: one with events must not leave the other's queued.
        let routeEvents = route.discardPending()
        return nftables.discardPending() || routeEvents
    }
}
