import Testing
@testable import WeirNetfilter

/// The reply parsers on messages the kernel does not send weir, which must still not crash the agent. Found by
/// `make fuzz` (target netlink-reply); the inputs are kept in Tests/Fuzz/regressions/netlink-reply.
struct NetlinkReplyTests {
    /// One nftables message (`NFNL_SUBSYS_NFTABLES`): header, nfgenmsg (family inet), attributes.
    static func nftMessage(_ type: UInt16, _ attributes: [(UInt16, [UInt8])]) -> NetlinkMessage {
        var body: [UInt8] = [1, 0, 0, 0]
        for (t, value) in attributes {
            let length = UInt16(4 + value.count)
            body += [UInt8(length & 0xff), UInt8(length >> 8), UInt8(t & 0xff), UInt8(t >> 8)] + value
            body += [UInt8](repeating: 0, count: (4 - value.count % 4) % 4)
        }
        let length = UInt32(16 + body.count), fullType = 10 << 8 | type
        let header: [UInt8] = [UInt8(length & 0xff), UInt8(length >> 8 & 0xff), 0, 0,
                               UInt8(fullType & 0xff), UInt8(fullType >> 8), 2, 0, 1, 0, 0, 0, 0, 0, 0, 0]
        return NetlinkMessage.split(header + body)[0]
    }

    static func string(_ s: String) -> [UInt8] { Array(s.utf8) + [0] }

    // NFT_MSG_NEWCHAIN, NEWSET, NEWRULE; NFTA_*_TABLE is 1, NFTA_CHAIN_NAME 3, NFTA_SET_NAME 2, NFTA_RULE_CHAIN 2.
    static let newChain: UInt16 = 3, newSet: UInt16 = 9, newRule: UInt16 = 6

    @Test func nftablesReplyWithoutItsTableOrNameIsNotWeirs() {
        // NLMSG_DONE, the end of every dump (regressions/netlink-reply/crash-9ce0d38…): no attributes at all.
        let done = NetlinkMessage.split([20, 0, 0, 0, 3, 0, 2, 0, 1, 0, 0, 0, 0xee, 0x32, 0, 0, 0, 0, 0, 0])[0]
        let weir = (UInt16(1), Self.string("weir"))
        for m in [done, Self.nftMessage(Self.newChain, []), Self.nftMessage(Self.newChain, [weir])] {
            #expect(NftReply.chain(m, table: "weir") == nil)
        }
        for m in [done, Self.nftMessage(Self.newSet, [weir])] {
            #expect(NftReply.set(m, table: "weir") == nil)
        }
        for m in [done, Self.nftMessage(Self.newRule, [weir])] {
            #expect(NftReply.rule(m, table: "weir") == nil)
        }
    }

    @Test func baseChainWithoutTypeIsDescribedWithoutIt() {
        // NFTA_CHAIN_HOOK (4) holding NFTA_HOOK_HOOKNUM (1) = NF_INET_LOCAL_OUT (3), big endian; no NFTA_CHAIN_TYPE.
        let hook: [UInt8] = [8, 0, 1, 0, 0, 0, 0, 3]
        let m = Self.nftMessage(Self.newChain, [(1, Self.string("weir")), (3, Self.string("output")),
                                                (4 | 0x8000, hook)])
        #expect(NftReply.chain(m, table: "weir")?.hasPrefix("chain output hook 3 prio 0 type ") == true)
    }

    @Test func repliesOfWeirsTableParse() {
        let chain = Self.nftMessage(Self.newChain, [(1, Self.string("weir")), (3, Self.string("inbound"))])
        #expect(NftReply.chain(chain, table: "weir") == "chain inbound")
        #expect(NftReply.chain(chain, table: "other") == nil)
        let set = Self.nftMessage(Self.newSet, [(1, Self.string("weir")), (2, Self.string("inbound-ports-exclude"))])
        #expect(NftReply.set(set, table: "weir")?.name == "inbound-ports-exclude")
        let rule = Self.nftMessage(Self.newRule, [(1, Self.string("weir")), (2, Self.string("outbound"))])
        #expect(NftReply.rule(rule, table: "weir")?.chain == "outbound")
    }
}
