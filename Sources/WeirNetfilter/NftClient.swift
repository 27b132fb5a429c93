import CNetfilter
import WeirCore
import WeirSystem

/// What `apply` did.
public enum ApplyOutcome: Equatable, Sendable {
    /// The kernel already held exactly this ruleset; nothing was sent.
    case unchanged
    /// The table did not exist and was created.
    case created
    /// The table existed with other content and was replaced in one batch.
    case replaced
}

/// A table as the kernel reports it.
public struct TableInfo: Equatable, Sendable {
    public let family: TableFamily
    public let name: String
    public let flags: UInt32
    /// Netlink port ID of the owning socket, if owned.
    public let ownerPortID: UInt32?

    public init(family: TableFamily, name: String, flags: UInt32, ownerPortID: UInt32?) {
        self.family = family
        self.name = name
        self.flags = flags
        self.ownerPortID = ownerPortID
    }

    public var isOwned: Bool { flags & TableFlag.owner != 0 }
    public var isPersistent: Bool { flags & TableFlag.persist != 0 }
}

/// nftables over netlink (libnftnl + libmnl): applies weir's table in one batch, reads it back, removes it.
///
/// Keep one client alive as long as weir should own its table: the owner flag binds the table to this socket.
public final class NftClient {
    private let socket: NetlinkSocket
    /// Set when the kernel refused the persist flag; the table is then applied without owner/persist.
    public private(set) var ownershipUnsupported = false
    private var nextSetID: UInt32 = 1
    /// The ruleset generation at which the kernel was last compared and found to hold exactly `table`.
    private var verified: (generation: UInt32, table: Table)?
    public var verifiedGeneration: UInt32? { verified?.generation }

    public init() throws {
        socket = try NetlinkSocket.opened(.netfilter)
    }

    /// Current ruleset generation (changes with every committed batch, anyone's).
    public func generation() throws -> UInt32 {
        let operation = NetlinkOperation(.get, .generation, "get nftables generation")
        let replies = try get(NFT_MSG_GETGEN, family: UInt16(AF_UNSPEC), dump: false, operation) { _ in }
        guard let m = replies.first else { throw NetlinkError(operation, errno: Errno.ENOENT) }
        guard let generation = NftReply.generation(m) else { throw NetlinkError(operation, errno: Errno.EPROTO) }
        return generation
    }

    /// The table, or nil if it does not exist.
    public func table(family: TableFamily, name: String) throws -> TableInfo? {
        let operation = NetlinkOperation(.get, .table, "get table \(family.rawValue) \(name)")
        let replies: [NetlinkMessage]
        do {
            replies = try get(NFT_MSG_GETTABLE, family: family, dump: false, operation) {
                let t = nftnl_table_alloc()!
                defer { nftnl_table_free(t) }
                nftnl_table_set_str(t, attr(NFTNL_TABLE_NAME), name)
                nftnl_table_nlmsg_build_payload($0, t)
            }
        } catch let e as NetlinkError where e.errno == Errno.ENOENT {
            return nil
        }
        guard let m = replies.first else { return nil }
        guard let (flags, owner) = NftReply.table(m) else { throw NetlinkError(operation, errno: Errno.EPROTO) }
        return TableInfo(family: family, name: name, flags: flags, ownerPortID: owner)
    }

    /// Installs `table`, replacing weir's previous table of that family and name in one batch.
    /// Sends nothing if the kernel already holds exactly this content, unless `force` (istio's `--force-apply`).
    public func apply(_ table: Table, force: Bool = false) throws -> ApplyOutcome {
        let existing = try self.table(family: table.family, name: table.name)
        // A table of the other family is weir's previous choice of --ipv4-only: replaced in the same batch.
        let otherFamily: TableFamily = table.family == .inet ? .ip : .inet
        let stale = try self.table(family: otherFamily, name: table.name) != nil ? otherFamily : nil
        // Read before the comparison: a commit after this (anyone's) changes it, and the next apply compares again.
        let generation = try self.generation()
        // The table's chains and sets as the kernel holds them, read once: for the comparison and the replacement.
        var layout: Layout?
        if let existing, stale == nil {
            let flagsOK = ownershipUnsupported || existing.isPersistent
            // No batch was committed in this namespace since the kernel was seen to hold exactly this table: it still
            // does. Reading 100,000 set elements back costs seconds of CPU (the kernel restarts its set walk for
            // every dump message), so an idle reconcile must not.
            if let verified, verified.generation == generation, verified.table == table, flagsOK, !force {
                return .unchanged
            }
            let read = try self.layout(family: table.family, name: table.name)
            layout = read
            let current = try fingerprint(read, family: table.family, name: table.name)
            let desired = try describe(table)
            if current == desired && flagsOK && !force {
                verified = (generation, table)
                return .unchanged
            }
        }
        verified = nil
        // Replaced in place when this socket may change the table (it owns it, or nobody does): see `commit`.
        let inPlace = existing.map { !$0.isOwned || $0.ownerPortID == socket.portID } ?? false
        if inPlace && !ownershipUnsupported {
            // Taken over first, in a batch of its own: the kernel refuses a base chain added in the batch that
            // changes the table's flags (EINVAL), and a replacement may add one.
            do {
                try claim(family: table.family, name: table.name)
            } catch let e as NetlinkError where (e.errno == Errno.EOPNOTSUPP || e.errno == Errno.EINVAL)
                && e.operation.request == .new && e.operation.object == .table {
                ownershipUnsupported = true  // kernel older than 6.9: see below
            }
        }
        let replacement = inPlace ? try layout ?? self.layout(family: table.family, name: table.name) : nil
        do {
            try commit(table, replacing: existing != nil, layout: replacement, stale: stale,
                       flags: TableFlag.owner | TableFlag.persist)
        } catch let e as NetlinkError where (e.errno == Errno.EOPNOTSUPP || e.errno == Errno.EINVAL)
            && e.operation.request == .new && e.operation.object == .table {
            // Kernel older than 6.9: no persist flag. An owner-only table would vanish when weir exits and leave
            // traffic uncaptured, so apply without ownership and let the caller say so.
            ownershipUnsupported = true
            try commit(table, replacing: existing != nil, layout: layout, stale: stale, flags: 0)
        }
        // Our batch moved the generation by exactly one: nobody else committed in between, so the kernel holds
        // exactly this table now, and the next reconcile need not read it back.
        if let after = try? self.generation(), after == (generation == UInt32.max ? 1 : generation + 1) {
            verified = (after, table)
        }
        return existing == nil ? .created : .replaced
    }

    /// Makes this socket the owner of an existing table that no live process owns (an orphaned persistent table, or
    /// one created by `nft -f`), without touching its chains, sets or rules. Returns false if nothing had to be done.
    @discardableResult
    public func claim(family: TableFamily, name: String) throws -> Bool {
        guard !ownershipUnsupported, let info = try table(family: family, name: name) else { return false }
        if info.isOwned && info.ownerPortID == socket.portID { return false }
        var batch = NftBatch(socket: socket)
        batch.add(NFT_MSG_NEWTABLE, family: family.nfproto, flags: [],
                  NetlinkOperation(.new, .table, "claim table \(family.rawValue) \(name)")) {
            let t = tableObject(Table(family: family, name: name), flags: TableFlag.owner | TableFlag.persist)
            defer { nftnl_table_free(t) }
            nftnl_table_nlmsg_build_payload($0, t)
        }
        try batch.commit()
        return true
    }

    /// Deletes weir's tables (both families). Returns the ones that existed.
    @discardableResult
    public func removeTables(named name: String) throws -> [TableFamily] {
        var present: [TableFamily] = []
        for family in [TableFamily.inet, .ip] where try table(family: family, name: name) != nil {
            present.append(family)
        }
        guard !present.isEmpty else { return [] }
        var batch = NftBatch(socket: socket)
        for family in present { batch.deleteTable(Table(family: family, name: name)) }
        try batch.commit()
        return present
    }

    // MARK: - Batch

    /// The existing table's chains and sets, each by name with its description (`describeChain`, `describeSet`).
    struct Layout: Equatable {
        var chains: [String: String] = [:]
        var sets: [String: String] = [:]
    }

    /// The chains and sets the kernel holds in the table (not their rules or elements).
    func layout(family: TableFamily, name: String) throws -> Layout {
        var layout = Layout()
        let chainMsgs = try get(NFT_MSG_GETCHAIN, family: family, dump: true, NetlinkOperation(.dump, .chain, "list chains")) {
            let c = nftnl_chain_alloc()!
            defer { nftnl_chain_free(c) }
            nftnl_chain_set_str(c, attr(NFTNL_CHAIN_TABLE), name)
            nftnl_chain_nlmsg_build_payload($0, c)
        }
        for description in chainMsgs.compactMap({ NftReply.chain($0, table: name) }) {
            // "chain NAME[ hook ...]"
            let chain = description.dropFirst("chain ".count).prefix { $0 != " " }
            layout.chains[String(chain)] = description
        }
        let setMsgs = try get(NFT_MSG_GETSET, family: family, dump: true, NetlinkOperation(.dump, .set, "list sets")) {
            let s = nftnl_set_alloc()!
            defer { nftnl_set_free(s) }
            nftnl_set_set_str(s, attr(NFTNL_SET_TABLE), name)
            nftnl_set_nlmsg_build_payload($0, s)
        }
        for (set, description) in setMsgs.compactMap({ NftReply.set($0, table: name) }) { layout.sets[set] = description }
        return layout
    }

    /// Sends `table` in one batch. A table that exists is replaced in place when its `layout` is known (the caller
    /// owns it by then, `claim`, so `flags` are not sent again): every rule flushed, a set or chain kept when the new
    /// table has one of the same name and description (a set's elements flushed), the others deleted, then what is
    /// new added, and every rule and element. Otherwise (`layout` nil:
    /// another live process owns the table) it is deleted and added anew in the same batch.
    ///
    /// Why in place: a base chain added in a batch has its hook registered while the batch is prepared, and the
    /// deleted one's hook goes only after the commit, so during a delete-and-add both tables' hooks are in place, and
    /// a packet can pass the old table's chain (before the commit) and then the new one's (after it), both at the same
    /// priority. Under TPROXY that marked live connections for ever: the old table's divert gave an established
    /// packet mark 1337 and accepted it, the new table then let a packet with mark 1337 through to the rule that
    /// copies it into the connection's conntrack mark, and from then on every packet the node sent on that
    /// connection was routed to the local table (133) and lost (the stress reload fault stalled about one connection
    /// in 30,000 per reload that changed rules). A kept base chain keeps its one hook: each packet sees exactly the
    /// old rules or the new ones.
    func commit(_ table: Table, replacing: Bool, layout: Layout? = nil, stale: TableFamily?, flags: UInt32) throws {
        var batch = NftBatch(socket: socket)
        let fam = table.family.nfproto
        let id = "\(table.family.rawValue) \(table.name)"
        if let stale { batch.deleteTable(Table(family: stale, name: table.name)) }
        var keptChains = Set<String>(), keptSets = Set<String>()
        if replacing, let layout {
            batch.flushRules(table)
            let desired = try describeLayout(table)
            for (name, description) in layout.sets.sorted(by: { $0.key < $1.key }) {
                if desired.sets[name] == description {
                    keptSets.insert(name)
                    batch.flushElements(table, set: name)
                } else {
                    batch.deleteSet(table, set: name)
                }
            }
            for (name, description) in layout.chains.sorted(by: { $0.key < $1.key }) {
                if desired.chains[name] == description {
                    keptChains.insert(name)
                } else {
                    batch.deleteChain(table, chain: name)
                }
            }
        } else {
            if replacing { batch.deleteTable(table) }
            batch.add(NFT_MSG_NEWTABLE, family: fam, flags: .create, NetlinkOperation(.new, .table, "add table \(id)")) {
                let t = tableObject(table, flags: flags)
                defer { nftnl_table_free(t) }
                nftnl_table_nlmsg_build_payload($0, t)
            }
        }
        for chain in table.chains where !keptChains.contains(chain.name) {
            batch.add(NFT_MSG_NEWCHAIN, family: fam, flags: .create,
                      NetlinkOperation(.new, .chain, "add chain \(id) \(chain.name)")) {
                let c = chainObject(table, chain)
                defer { nftnl_chain_free(c) }
                nftnl_chain_nlmsg_build_payload($0, c)
            }
        }
        var setIDs: [String: UInt32] = [:]
        for set in table.sets {
            let setID = nextSetID
            nextSetID += 1
            setIDs[set.name] = setID  // a kept set is found by its name first; the ID names one added here
            if !keptSets.contains(set.name) {
                batch.add(NFT_MSG_NEWSET, family: fam, flags: .create,
                          NetlinkOperation(.new, .set, "add set \(id) \(set.name)")) {
                    let s = setObject(table, set, id: setID)
                    defer { nftnl_set_free(s) }
                    nftnl_set_nlmsg_build_payload($0, s)
                }
            }
            // Chunks keep each message's nested element list under the 64 KiB attribute limit.
            let elements = encodedElements(set)
            var start = 0
            while start < elements.count {
                let chunk = elements[start..<min(start + 1000, elements.count)]
                start += chunk.count
                batch.add(NFT_MSG_NEWSETELEM, family: fam, flags: .create,
                          NetlinkOperation(.new, .setElements, "add elements to set \(id) \(set.name)")) {
                    let s = setObject(table, set, id: setID)
                    defer { nftnl_set_free(s) }
                    for e in chunk {
                        let el = nftnl_set_elem_alloc()!
                        e.key.withUnsafeBytes {
                            _ = nftnl_set_elem_set(el, attr(NFTNL_SET_ELEM_KEY), $0.baseAddress, UInt32($0.count))
                        }
                        if e.end {
                            nftnl_set_elem_set_u32(el, attr(NFTNL_SET_ELEM_FLAGS), num(NFT_SET_ELEM_INTERVAL_END))
                        }
                        if e.open {
                            openIntervalUserData.withUnsafeBytes {
                                _ = nftnl_set_elem_set(el, attr(NFTNL_SET_ELEM_USERDATA), $0.baseAddress,
                                                       UInt32($0.count))
                            }
                        }
                        nftnl_set_elem_add(s, el)
                    }
                    nftnl_set_elems_nlmsg_build_payload($0, s)
                }
            }
        }
        for chain in table.chains {
            for (index, rule) in chain.rules.enumerated() {
                let b = RuleBuilder(table: table.name, chain: chain.name, family: table.family)
                for m in rule.matches { try b.add(m, setIDs: setIDs) }
                for s in rule.statements { b.add(s) }
                let text = "add rule \(id) \(chain.name) #\(index + 1) (\(NftText.render(rule, family: table.family)))"
                batch.add(NFT_MSG_NEWRULE, family: fam, flags: [.create, .append], NetlinkOperation(.new, .rule, text)) {
                    nftnl_rule_nlmsg_build_payload($0, b.rule)
                }
            }
        }
        try batch.commit()
    }

    // MARK: - Read back

    private func get(_ type: nf_tables_msg_types, family: TableFamily, dump: Bool, _ operation: NetlinkOperation,
                     payload: (UnsafeMutablePointer<nlmsghdr>) -> Void) throws -> [NetlinkMessage] {
        try get(type, family: family.nfproto, dump: dump, operation, payload: payload)
    }

    /// One nftables request (a dump when `dump`), its replies collected until the ack or NLMSG_DONE.
    private func get(_ type: nf_tables_msg_types, family: UInt16, dump: Bool, _ operation: NetlinkOperation,
                     payload: (UnsafeMutablePointer<nlmsghdr>) -> Void) throws -> [NetlinkMessage] {
        let sequence = socket.nextSequence()
        let request = NetlinkRequest()
        request.begin(type: NftMessage.type(type), flags: dump ? [.request, .ack, .dump] : [.request, .ack],
                      sequence: sequence)
        request.put(header: NftMessage.header(family: family))
        // A query names its object with a few strings: far under a page.
        request.withMessage(capacity: 4096) { payload($0.assumingMemoryBound(to: nlmsghdr.self)) }
        return try socket.transact(request, sequence: sequence, dump: dump, operation)
    }

    /// A canonical description of what the kernel holds in the table: its chains and sets (`layout`, as read just
    /// before), elements, rules with their expressions. Counters' values, handles and positions are left out.
    func fingerprint(_ layout: Layout, family: TableFamily, name: String) throws -> [String] {
        var out = Array(layout.chains.values)
        for (setName, description) in layout.sets {
            out.append(description)
            let list = NetlinkOperation(.dump, .setElements, "list set \(setName)")
            let elemMsgs = try get(NFT_MSG_GETSETELEM, family: family, dump: true, list) {
                let q = nftnl_set_alloc()!
                defer { nftnl_set_free(q) }
                nftnl_set_set_str(q, attr(NFTNL_SET_TABLE), name)
                nftnl_set_set_str(q, attr(NFTNL_SET_NAME), setName)
                nftnl_set_elems_nlmsg_build_payload($0, q)
            }
            out += elemMsgs.flatMap { NftReply.elements($0, set: setName) }.sorted()
        }
        let ruleMsgs = try get(NFT_MSG_GETRULE, family: family, dump: true, NetlinkOperation(.dump, .rule, "list rules")) {
            let r = nftnl_rule_alloc()!
            defer { nftnl_rule_free(r) }
            nftnl_rule_set_str(r, attr(NFTNL_RULE_TABLE), name)
            nftnl_rule_nlmsg_build_payload($0, r)
        }
        var rulesByChain: [String: [String]] = [:]
        for (chain, description) in ruleMsgs.compactMap({ NftReply.rule($0, table: name) }) {
            rulesByChain[chain, default: []].append(description)
        }
        return canonical(out, rulesByChain)
    }

    /// `Layout` of `table` as `layout(family:name:)` would read it once applied.
    func describeLayout(_ table: Table) throws -> Layout {
        var layout = Layout()
        for chain in table.chains {
            let c = chainObject(table, chain)
            layout.chains[chain.name] = describeChain(c)
            nftnl_chain_free(c)
        }
        for set in table.sets {
            let s = setObject(table, set, id: 0)
            layout.sets[set.name] = describeSet(s)
            nftnl_set_free(s)
        }
        return layout
    }

    /// The same description for the desired table, built from the same libnftnl objects the batch sends.
    func describe(_ table: Table) throws -> [String] {
        var out: [String] = []
        var setIDs: [String: UInt32] = [:]
        for chain in table.chains {
            let c = chainObject(table, chain)
            out.append(describeChain(c))
            nftnl_chain_free(c)
        }
        for set in table.sets {
            setIDs[set.name] = 0
            let s = setObject(table, set, id: 0)
            out.append(describeSet(s))
            nftnl_set_free(s)
            out += encodedElements(set).map { describeElement(set.name, key: $0.key, flags: $0.end ? 1 : 0) }.sorted()
        }
        var rulesByChain: [String: [String]] = [:]
        for chain in table.chains {
            for rule in chain.rules {
                let b = RuleBuilder(table: table.name, chain: chain.name, family: table.family)
                for m in rule.matches { try b.add(m, setIDs: setIDs) }
                for s in rule.statements { b.add(s) }
                rulesByChain[chain.name, default: []].append(describeRule(b.rule))
            }
        }
        return canonical(out, rulesByChain)
    }

    private func canonical(_ objects: [String], _ rules: [String: [String]]) -> [String] {
        // Chains and sets in name order; rules in chain order (order decides behaviour).
        var out = objects.sorted()
        for chain in rules.keys.sorted() { out += rules[chain]!.map { "rule \(chain) \($0)" } }
        return out
    }
}

// MARK: - libnftnl objects

extension NftBatch {
    /// Queues the deletion of every rule of every chain of `table` (`nft flush table`).
    mutating func flushRules(_ table: Table) {
        add(NFT_MSG_DELRULE, family: table.family.nfproto, flags: [],
            NetlinkOperation(.delete, .rule, "flush table \(table.family.rawValue) \(table.name)")) {
            let r = nftnl_rule_alloc()!
            defer { nftnl_rule_free(r) }
            nftnl_rule_set_str(r, attr(NFTNL_RULE_TABLE), table.name)
            nftnl_rule_set_u32(r, attr(NFTNL_RULE_FAMILY), UInt32(table.family.nfproto))
            nftnl_rule_nlmsg_build_payload($0, r)
        }
    }

    /// Queues the deletion of every element of `set` (`nft flush set`).
    mutating func flushElements(_ table: Table, set: String) {
        deleteNamedSet(table, set, NFT_MSG_DELSETELEM, .setElements, "flush set", nftnl_set_elems_nlmsg_build_payload)
    }

    /// Queues the deletion of `set` (no rule may use it by then).
    mutating func deleteSet(_ table: Table, set: String) {
        deleteNamedSet(table, set, NFT_MSG_DELSET, .set, "delete set", nftnl_set_nlmsg_build_payload)
    }

    /// One delete message about set `set` of `table`, named only (no keys, no elements), its payload built by `build`.
    private mutating func deleteNamedSet(_ table: Table, _ set: String, _ type: nf_tables_msg_types,
                                         _ object: NetlinkOperation.Object, _ verb: String,
                                         _ build: (UnsafeMutablePointer<nlmsghdr>?, OpaquePointer?) -> Void) {
        add(type, family: table.family.nfproto, flags: [],
            NetlinkOperation(.delete, object, "\(verb) \(table.family.rawValue) \(table.name) \(set)")) {
            let s = nftnl_set_alloc()!
            defer { nftnl_set_free(s) }
            nftnl_set_set_str(s, attr(NFTNL_SET_TABLE), table.name)
            nftnl_set_set_str(s, attr(NFTNL_SET_NAME), set)
            nftnl_set_set_u32(s, attr(NFTNL_SET_FAMILY), UInt32(table.family.nfproto))
            build($0, s)
        }
    }

    /// Queues the deletion of `chain` (no rule may jump to it by then).
    mutating func deleteChain(_ table: Table, chain: String) {
        add(NFT_MSG_DELCHAIN, family: table.family.nfproto, flags: [],
            NetlinkOperation(.delete, .chain, "delete chain \(table.family.rawValue) \(table.name) \(chain)")) {
            let c = nftnl_chain_alloc()!
            defer { nftnl_chain_free(c) }
            nftnl_chain_set_str(c, attr(NFTNL_CHAIN_TABLE), table.name)
            nftnl_chain_set_str(c, attr(NFTNL_CHAIN_NAME), chain)
            nftnl_chain_set_u32(c, attr(NFTNL_CHAIN_FAMILY), UInt32(table.family.nfproto))
            nftnl_chain_nlmsg_build_payload($0, c)
        }
    }

    /// Queues the deletion of `table` (its family and name; the content does not matter).
    mutating func deleteTable(_ table: Table) {
        add(NFT_MSG_DELTABLE, family: table.family.nfproto, flags: [],
            NetlinkOperation(.delete, .table, "delete table \(table.family.rawValue) \(table.name)")) {
            let t = tableObject(table, flags: nil)
            defer { nftnl_table_free(t) }
            nftnl_table_nlmsg_build_payload($0, t)
        }
    }
}

func tableObject(_ table: Table, flags: UInt32?) -> OpaquePointer {
    let t = nftnl_table_alloc()!
    nftnl_table_set_str(t, attr(NFTNL_TABLE_NAME), table.name)
    nftnl_table_set_u32(t, attr(NFTNL_TABLE_FAMILY), UInt32(table.family.nfproto))
    if let flags { nftnl_table_set_u32(t, attr(NFTNL_TABLE_FLAGS), flags) }
    return t
}

func chainObject(_ table: Table, _ chain: Chain) -> OpaquePointer {
    let c = nftnl_chain_alloc()!
    nftnl_chain_set_str(c, attr(NFTNL_CHAIN_TABLE), table.name)
    nftnl_chain_set_str(c, attr(NFTNL_CHAIN_NAME), chain.name)
    nftnl_chain_set_u32(c, attr(NFTNL_CHAIN_FAMILY), UInt32(table.family.nfproto))
    if let base = chain.base {
        let hook: UInt32 = base.hook == .prerouting ? num(NF_INET_PRE_ROUTING) : num(NF_INET_LOCAL_OUT)
        nftnl_chain_set_u32(c, attr(NFTNL_CHAIN_HOOKNUM), hook)
        nftnl_chain_set_s32(c, attr(NFTNL_CHAIN_PRIO), base.priority)
        nftnl_chain_set_str(c, attr(NFTNL_CHAIN_TYPE), base.type.rawValue)
        nftnl_chain_set_u32(c, attr(NFTNL_CHAIN_POLICY), UInt32(NF_ACCEPT))
    }
    return c
}

func setObject(_ table: Table, _ set: NamedSet, id: UInt32) -> OpaquePointer {
    let s = nftnl_set_alloc()!
    nftnl_set_set_str(s, attr(NFTNL_SET_TABLE), table.name)
    nftnl_set_set_str(s, attr(NFTNL_SET_NAME), set.name)
    nftnl_set_set_u32(s, attr(NFTNL_SET_FAMILY), UInt32(table.family.nfproto))
    nftnl_set_set_u32(s, attr(NFTNL_SET_KEY_TYPE), set.keyType.datatype)
    nftnl_set_set_u32(s, attr(NFTNL_SET_KEY_LEN), set.keyType.keyLength)
    nftnl_set_set_u32(s, attr(NFTNL_SET_FLAGS), set.isInterval ? num(NFT_SET_INTERVAL) : 0)
    if let size = set.declaredSize { nftnl_set_set_u32(s, attr(NFTNL_SET_DESC_SIZE), UInt32(size)) }
    nftnl_set_set_u32(s, attr(NFTNL_SET_ID), id)
    // nft reads the key byte order from the set's user data (NFTNL_UDATA_SET_KEYBYTEORDER); without it, host-order
    // keys (interface names, GIDs) list wrongly. 1 = host endian, 2 = big endian.
    let order: UInt8 = (set.keyType == .ifname || set.keyType == .gid) ? 1 : 2
    let udata: [UInt8] = [0, 4, order, 0, 0, 0]
    udata.withUnsafeBytes { _ = nftnl_set_set_data(s, attr(NFTNL_SET_USERDATA), $0.baseAddress, UInt32($0.count)) }
    return s
}

/// A string attribute of a libnftnl object; nil when it is not set (libnftnl returns NULL).
func nftString(_ p: UnsafePointer<CChar>?) -> String? { p.map { String(cString: $0) } }

func describeChain(_ c: OpaquePointer) -> String {
    var text = "chain " + (nftString(nftnl_chain_get_str(c, attr(NFTNL_CHAIN_NAME))) ?? "")
    if nftnl_chain_is_set(c, attr(NFTNL_CHAIN_HOOKNUM)) {
        text += " hook \(nftnl_chain_get_u32(c, attr(NFTNL_CHAIN_HOOKNUM)))"
        text += " prio \(nftnl_chain_get_s32(c, attr(NFTNL_CHAIN_PRIO)))"
        text += " type " + (nftString(nftnl_chain_get_str(c, attr(NFTNL_CHAIN_TYPE))) ?? "")
        text += " policy \(nftnl_chain_get_u32(c, attr(NFTNL_CHAIN_POLICY)))"
    }
    return text
}

func describeSet(_ s: OpaquePointer) -> String {
    "set " + (nftString(nftnl_set_get_str(s, attr(NFTNL_SET_NAME))) ?? "")
        + " flags \(nftnl_set_get_u32(s, attr(NFTNL_SET_FLAGS)))"
        + " type \(nftnl_set_get_u32(s, attr(NFTNL_SET_KEY_TYPE)))"
        + " len \(nftnl_set_get_u32(s, attr(NFTNL_SET_KEY_LEN)))"
        + (nftnl_set_is_set(s, attr(NFTNL_SET_DESC_SIZE)) ? " size \(nftnl_set_get_u32(s, attr(NFTNL_SET_DESC_SIZE)))" : "")
}

func describeElement(_ set: String, key: [UInt8], flags: UInt32) -> String {
    // Written byte by byte: an unchanged re-apply describes every element twice (the kernel's and the desired), and
    // a String per key byte made that most of the user time at 100,000 CIDRs.
    var text: [UInt8] = []
    text.reserveCapacity(set.utf8.count + key.count * 3 + 18)
    text += "element ".utf8
    text += set.utf8
    if key.isEmpty { text.append(UInt8(ascii: " ")) }
    for (i, byte) in key.enumerated() {
        text.append(i == 0 ? UInt8(ascii: " ") : UInt8(ascii: "."))
        if byte >= 16 { text.append(hexDigits[Int(byte >> 4)]) }
        text.append(hexDigits[Int(byte & 0xf)])
    }
    text += " flags ".utf8
    text.append(flags & 1 == 1 ? UInt8(ascii: "1") : UInt8(ascii: "0"))
    return String(decoding: text, as: UTF8.self)
}

/// The digits of `String(byte, radix: 16)`, lower case.
private let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

func describeElements(_ s: OpaquePointer, set: String) -> [String] {
    var out: [String] = []
    guard let iter = nftnl_set_elems_iter_create(s) else { return out }
    defer { nftnl_set_elems_iter_destroy(iter) }
    // iter_next returns the current element and advances.
    while let el = nftnl_set_elems_iter_next(iter) {
        var len: UInt32 = 0
        var key: [UInt8] = []
        if let p = nftnl_set_elem_get(el, attr(NFTNL_SET_ELEM_KEY), &len) {
            key = Array(UnsafeRawBufferPointer(start: p, count: Int(len)))
        }
        let flags = nftnl_set_elem_is_set(el, attr(NFTNL_SET_ELEM_FLAGS))
            ? nftnl_set_elem_get_u32(el, attr(NFTNL_SET_ELEM_FLAGS)) : 0
        out.append(describeElement(set, key: key, flags: flags))
    }
    return out
}

/// A rule's expressions as libnftnl prints them, with counter values left out.
func describeRule(_ r: OpaquePointer) -> String {
    var parts: [String] = []
    guard let iter = nftnl_expr_iter_create(r) else { return "" }
    defer { nftnl_expr_iter_destroy(iter) }
    var buf = [CChar](repeating: 0, count: 1024)
    while let e = nftnl_expr_iter_next(iter) {
        let name = nftString(nftnl_expr_get_str(e, attr(NFTNL_EXPR_NAME))) ?? ""
        if name == "counter" { parts.append("[counter]"); continue }
        _ = nftnl_expr_snprintf(&buf, buf.count, e, UInt32(NFTNL_OUTPUT_DEFAULT.rawValue), 0)
        parts.append("[\(name) \(String(cString: buf))]")
    }
    return parts.joined(separator: " ")
}
