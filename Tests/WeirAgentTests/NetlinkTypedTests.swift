import Testing
@testable import WeirAgent
import WeirCore
@testable import WeirNetfilter
import WeirSystem

/// Netlink errors and capture changes carry what they are about as types; their text is what it always was.
struct NetlinkTypedTests {
    @Test func kernelErrorsNameTheirMessageAndHintByKindOfObject() {
        let add = NetlinkError(NetlinkOperation(.new, .table, "add table inet weir"), errno: Errno.EPERM)
        #expect(add.description == "add table inet weir: EPERM (need CAP_NET_ADMIN, or another process owns the table)")
        let get = NetlinkError(NetlinkOperation(.get, .table, "get table inet weir"), errno: Errno.EPERM)
        #expect(get.description == "get table inet weir: EPERM (need CAP_NET_ADMIN)")
        let chain = NetlinkError(NetlinkOperation(.new, .chain, "add chain inet weir output"), errno: Errno.EPERM)
        #expect(chain.description == "add chain inet weir output: EPERM (need CAP_NET_ADMIN)")
        let rule = NetlinkError(NetlinkOperation(.new, .rule, "add rule inet weir outbound #3 (jump x)"),
                                errno: Errno.ENOENT)
        #expect(rule.description == "add rule inet weir outbound #3 (jump x): ENOENT (no such object)")
        #expect(rule.operation.request == .new && rule.operation.object == .rule)
    }

    @Test func captureChangesAreTypedAndPrintAsBefore() {
        let created = CaptureChange.table("inet weir", .created)
        #expect(created.kind == .table && created.action == .created && created.object == "table")
        #expect(created.description == "table inet weir: created")
        #expect(CaptureChange.table("inet weir", .replaced).description == "table inet weir: replaced")
        #expect(CaptureChange.claimed("inet weir").description == "claimed table inet weir")
        let rule = CaptureChange.routing(.added, .rule(.ipv4, mark: 1337, table: 133))
        #expect(rule.kind == .rule && rule.description == "added ip -4 rule fwmark 1337 lookup 133")
        let route = CaptureChange.routing(.removed, .localRoute(.ipv6, table: 133))
        #expect(route.kind == .route && route.description == "removed ip -6 route local default dev lo table 133")
        let address = CaptureChange.routing(.added, .passthroughAddress)
        #expect(address.object == "address" && address.description == "added address ::6/128 dev lo")
    }

    /// A ctnetlink statistics reply: header, nfgenmsg (res_id: the CPU, big endian), CTA_STATS_* u32s (big endian).
    static func stats(cpu: UInt16, _ attributes: [(UInt16, [UInt8])]) -> NetlinkMessage {
        let request = NetlinkRequest()
        request.begin(type: 1 << 8 | 4, flags: [], sequence: 1)
        request.put(header: (UInt8(0), UInt8(0), cpu.bigEndian))
        for (type, value) in attributes { request.put(type, bytes: value) }
        return NetlinkMessage.split(request.bytes)[0]
    }

    static func be32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }

    @Test func conntrackStatisticsAreReadFromTheirAttributes() throws {
        // CTA_STATS_FOUND 2, INSERT_FAILED 9, DROP 10, CHAIN_TOOLONG 15; a u32 of the wrong size is left out.
        let m = Self.stats(cpu: 3, [(2, Self.be32(7)), (9, Self.be32(1)), (10, [0, 1]), (15, Self.be32(70_000))])
        let s = try #require(NodeStatusNetlink.cpuStats(m))
        #expect(s.cpu == 3 && s.found == 7 && s.insertFailed == 1 && s.drop == 0 && s.chainTooLong == 70_000)
        // CTA_STATS_GLOBAL_ENTRIES 1, MAX_ENTRIES 2; without the entries it is not a usage reply.
        let usage = NodeStatusNetlink.usage(Self.stats(cpu: 0, [(1, Self.be32(12)), (2, Self.be32(262_144))]))
        #expect(usage == ConntrackUsage(entries: 12, maximum: 262_144, source: "ctnetlink"))
        #expect(NodeStatusNetlink.usage(Self.stats(cpu: 0, [(2, Self.be32(262_144))])) == nil)
        #expect(NodeStatusNetlink.cpuStats(NetlinkMessage(bytes: [16, 0, 0, 0])) == nil)
    }
}
