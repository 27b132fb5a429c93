import Testing
@testable import WeirNetfilter
import WeirSystem

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

/// Replies libnftnl cannot parse safely (it exits the process, or reads NULL or uninitialised pointers): NftReplyCheck
/// keeps them from it.
struct NetlinkReplyCheckTests {
    typealias T = NetlinkReplyTests

    @Test func attributesOfTheWrongSizeAreNotParsed() {
        // regressions/netlink-reply/crash-664107e…: NFTA_CHAIN_HANDLE (2) of 4 bytes, a u64 for libnftnl (exit(1)).
        let chain = NetlinkMessage.split([0x24, 0, 0, 0, 5, 1, 2, 0, 1, 0, 0, 0, 0xee, 0x32, 0, 0, 0, 0, 0, 0,
                                          8, 0, 1, 0, 0, 0, 0, 0, 8, 0, 2, 0, 0, 4, 0, 0])[0]
        #expect(NftReply.chain(chain, table: "") == nil)
        // regressions/netlink-reply/crash-47469e6…: NFTA_TABLE_FLAGS (2) of 23 bytes.
        let table = T.nftMessage(0, [(1, T.string("weir")), (2, T.string("outbound-ports-exclude"))])
        #expect(NftReply.table(table) == nil)
        #expect(NftReply.generation(T.nftMessage(15, [(1, [0, 0, 0, 0, 1])])) == nil)
        // regressions/netlink-reply/crash-47469e6…, second message: 58 bytes, whose last attribute (NFTA_TABLE_FLAGS
        // of 23 bytes) ends in the 2 bytes of alignment libmnl reads past the message.
        var unaligned = T.nftMessage(0, [(1, T.string("weir"))]).bytes + [27, 0, 2, 0]
        unaligned += [UInt8](repeating: 0x61, count: 22)
        unaligned[0] = UInt8(unaligned.count)
        #expect(NftReply.table(NetlinkMessage(bytes: unaligned)) == nil)
        #expect(NftReply.generation(T.nftMessage(15, [(1, [0, 0, 0, 7])])) == 7)
    }

    /// Attributes as the kernel encodes them: length, type, value, padding.
    static func encode(_ attributes: [(UInt16, [UInt8])]) -> [UInt8] {
        attributes.flatMap { t, value -> [UInt8] in
            let length = UInt16(4 + value.count)
            return [UInt8(length & 0xff), UInt8(length >> 8), UInt8(t & 0xff), UInt8(t >> 8)] + value
                + [UInt8](repeating: 0, count: (4 - value.count % 4) % 4)
        }
    }

    static func nest(_ type: UInt16, _ children: [(UInt16, [UInt8])]) -> (UInt16, [UInt8]) {
        (type | 0x8000, encode(children))
    }

    static func u32(_ v: Int32) -> [UInt8] { withUnsafeBytes(of: v.bigEndian) { Array($0) } }

    /// A rule of chain weir/outbound (NFTA_RULE_EXPRESSIONS is 4) with these expressions (NFTA_EXPR_NAME 1, DATA 2).
    static func rule(_ expressions: [[(UInt16, [UInt8])]]) -> NetlinkMessage {
        T.nftMessage(T.newRule, [(1, T.string("weir")), (2, T.string("outbound")),
                                 nest(4, expressions.map { nest(1, $0) })])
    }

    /// `immediate` (NFTA_IMMEDIATE_DREG 1, DATA 2) of a verdict (NFTA_DATA_VERDICT 2: CODE 1, CHAIN 2).
    static func immediate(_ verdict: [(UInt16, [UInt8])]) -> [(UInt16, [UInt8])] {
        [(1, T.string("immediate")), nest(2, [(1, u32(0)), nest(2, [nest(2, verdict)])])]
    }

    @Test func expressionsLibnftnlCannotParseSafelyAreNotParsed() {
        let jump: Int32 = -3  // NFT_JUMP
        let good = Self.rule([Self.immediate([(1, Self.u32(jump)), (2, T.string("redirect-inbound"))])])
        #expect(NftReply.rule(good, table: "weir")?.description.hasPrefix("[immediate ") == true)
        // No name: libnftnl looks the expression up by a NULL name.
        #expect(NftReply.rule(Self.rule([[Self.nest(2, [])]]), table: "weir") == nil)
        // A jump without its chain, a verdict without its code: libnftnl reads an uninitialised pointer.
        for verdict in [[(UInt16(1), Self.u32(jump))], [(UInt16(2), T.string("x"))]] {
            #expect(NftReply.rule(Self.rule([Self.immediate(verdict)]), table: "weir") == nil)
        }
        // An expression weir never generates.
        #expect(NftReply.rule(Self.rule([[(1, T.string("log")), Self.nest(2, [])]]), table: "weir") == nil)
    }

    @Test func setElementAttributesLibnftnlStoresPastItsTableAreNotParsed() {
        // regressions/netlink-reply/crash-54c464c…: libnftnl bounds a set element's attribute types by NFTA_SET_MAX
        // (18) but keeps them in a table of NFTA_SET_ELEM_MAX + 1 (12) on the stack: stack smashing.
        func elements(_ element: [(UInt16, [UInt8])]) -> NetlinkMessage {
            // NFTA_SET_ELEM_LIST_TABLE 1, SET 2, ELEMENTS 3 > NFTA_LIST_ELEM > the element's attributes.
            T.nftMessage(12, [(1, T.string("weir")), (2, T.string("s")), Self.nest(3, [Self.nest(1, element)])])
        }
        let key = Self.nest(1, [(1, [0, 80])])  // NFTA_SET_ELEM_KEY > NFTA_DATA_VALUE
        #expect(NftReply.elements(elements([key]), set: "s") == ["element s 0.50 flags 0"])
        #expect(NftReply.elements(elements([key, (18, [0, 0, 0, 0])]), set: "s") == [])
    }

    @Test func moreThanSixteenConcatenationFieldsAreNotParsed() {
        // NFTA_SET_DESC (9) > NFTA_SET_DESC_CONCAT (2) > NFTA_LIST_ELEM > NFTA_SET_FIELD_LEN (1): libnftnl keeps
        // them in an array of 16.
        func set(fields: Int) -> NetlinkMessage {
            let concat = Self.nest(2, (0..<fields).map { _ in Self.nest(1, [(1, Self.u32(32))]) })
            return T.nftMessage(T.newSet, [(1, T.string("weir")), (2, T.string("s")), Self.nest(9, [concat])])
        }
        #expect(NftReply.set(set(fields: 2), table: "weir")?.name == "s")
        #expect(NftReply.set(set(fields: 17), table: "weir") == nil)
    }
}
