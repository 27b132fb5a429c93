// libFuzzer harness: the netlink replies weir parses. One input is one receive buffer as the kernel fills it:
// NetlinkMessage.split, then every message through every parser (nftables tables, generation, chains, sets, set
// elements and rules with libnftnl; ctnetlink statistics; rtnetlink rules, routes and addresses).
import CNetfilter
import Glibc
@testable import WeirNetfilter
import WeirSystem

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNetlinkReply(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let messages = NetlinkMessage.split(fuzzBytes(data, size))
    for m in messages {
        _ = (m.type, m.flags, m.sequence, m.errorCode)
        _ = NftReply.table(m)
        _ = NftReply.generation(m)
        _ = NftReply.chain(m, table: "weir")
        _ = NftReply.set(m, table: "weir")
        _ = NftReply.elements(m, set: "outbound-exclude-v4")
        _ = NftReply.rule(m, table: "weir")
        _ = NodeStatusNetlink.cpuStats(m)
        _ = NodeStatusNetlink.usage(m)
    }
    for family in [UInt8(AF_INET), UInt8(AF_INET6)] {
        for r in RouteClient.records(messages, reply: Int32(RTM_NEWRULE), headerSize: MemoryLayout<fib_rule_hdr>.size,
                                     family: family) {
            let rule = RouteClient.RuleRecord(family: .ipv4, header: r.header, attributes: r.attributes)
            _ = (rule.mark, rule.table, rule.proto)
        }
        for r in RouteClient.records(messages, reply: Int32(RTM_NEWROUTE), headerSize: MemoryLayout<rtmsg>.size,
                                     family: family) {
            let route = RouteClient.RouteRecord(family: .ipv4, header: r.header, attributes: r.attributes)
            _ = (route.table, route.proto, route.type, route.dstLength, route.oif)
        }
        for r in RouteClient.records(messages, reply: Int32(RTM_NEWADDR), headerSize: MemoryLayout<ifaddrmsg>.size,
                                     family: family) {
            _ = RouteClient.AddressRecord(header: r.header, attributes: r.attributes)
        }
    }
    return 0
}
