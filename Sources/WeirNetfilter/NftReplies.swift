import CNetfilter
import WeirCore
import WeirSystem

/// The nftables replies weir reads, one message at a time: kept apart from the socket so that they can be tested and
/// fuzzed on bytes. Each parser takes one message as the kernel sent it (`NetlinkMessage.split` of a receive buffer).
/// A message without the attributes that say which object it is (table, name, chain) is not one of weir's: skipped,
/// so the read-back differs from the desired table and weir applies it again, rather than trapping on libnftnl's NULL.
/// So is a message libnftnl cannot parse safely (NftReplyCheck), which it would otherwise answer with exit(1).
enum NftReply {
    /// A table's flags and owner (`NFT_MSG_NEWTABLE`, the reply to `NFT_MSG_GETTABLE`); nil if malformed.
    static func table(_ m: NetlinkMessage) -> (flags: UInt32, owner: UInt32?)? {
        let t = nftnl_table_alloc()!
        defer { nftnl_table_free(t) }
        guard NftReplyCheck.valid(m, NftReplyCheck.table), m.withHeader({ nftnl_table_nlmsg_parse($0, t) }) >= 0
        else { return nil }
        let flags = nftnl_table_get_u32(t, attr(NFTNL_TABLE_FLAGS))
        let owner = nftnl_table_is_set(t, attr(NFTNL_TABLE_OWNER)) ? nftnl_table_get_u32(t, attr(NFTNL_TABLE_OWNER))
                                                                   : nil
        return (flags, owner)
    }

    /// The ruleset generation id (`NFT_MSG_NEWGEN`); nil if malformed.
    static func generation(_ m: NetlinkMessage) -> UInt32? {
        let gen = nftnl_gen_alloc()!
        defer { nftnl_gen_free(gen) }
        guard NftReplyCheck.valid(m, NftReplyCheck.generation), m.withHeader({ nftnl_gen_nlmsg_parse($0, gen) }) >= 0
        else { return nil }
        return nftnl_gen_get_u32(gen, attr(NFTNL_GEN_ID))
    }

    /// A chain of table `table`, described as `describeChain` does; nil for a chain of another table.
    static func chain(_ m: NetlinkMessage, table: String) -> String? {
        let c = nftnl_chain_alloc()!
        defer { nftnl_chain_free(c) }
        guard NftReplyCheck.valid(m, NftReplyCheck.chain), m.withHeader({ nftnl_chain_nlmsg_parse($0, c) }) >= 0,
              nftString(nftnl_chain_get_str(c, attr(NFTNL_CHAIN_TABLE))) == table,
              nftnl_chain_is_set(c, attr(NFTNL_CHAIN_NAME)) else { return nil }
        return describeChain(c)
    }

    /// A set of table `table`: its name and description; nil for a set of another table.
    static func set(_ m: NetlinkMessage, table: String) -> (name: String, description: String)? {
        let s = nftnl_set_alloc()!
        defer { nftnl_set_free(s) }
        guard NftReplyCheck.valid(m, NftReplyCheck.set), m.withHeader({ nftnl_set_nlmsg_parse($0, s) }) >= 0,
              nftString(nftnl_set_get_str(s, attr(NFTNL_SET_TABLE))) == table,
              let name = nftString(nftnl_set_get_str(s, attr(NFTNL_SET_NAME))) else { return nil }
        return (name, describeSet(s))
    }

    /// The elements of set `set` in one `NFT_MSG_NEWSETELEM` message.
    static func elements(_ m: NetlinkMessage, set: String) -> [String] {
        let holder = nftnl_set_alloc()!
        defer { nftnl_set_free(holder) }
        guard NftReplyCheck.valid(m, NftReplyCheck.elements),
              m.withHeader({ nftnl_set_elems_nlmsg_parse($0, holder) }) >= 0 else { return [] }
        return describeElements(holder, set: set)
    }

    /// A rule of table `table`: its chain and description; nil for a rule of another table.
    static func rule(_ m: NetlinkMessage, table: String) -> (chain: String, description: String)? {
        let r = nftnl_rule_alloc()!
        defer { nftnl_rule_free(r) }
        guard NftReplyCheck.valid(m, NftReplyCheck.rule), m.withHeader({ nftnl_rule_nlmsg_parse($0, r) }) >= 0,
              nftString(nftnl_rule_get_str(r, attr(NFTNL_RULE_TABLE))) == table,
              let chain = nftString(nftnl_rule_get_str(r, attr(NFTNL_RULE_CHAIN))) else { return nil }
        return (chain, describeRule(r))
    }
}
