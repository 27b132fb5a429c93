// Test support: in-memory stand-ins for the two kernel backends, for tests of the code above them (the agent's
// install, reconcile and failure paths). Never linked into the weir binary.
import Glibc
import WeirCore
import WeirNetfilter

/// An in-memory nftables with the kernel's transaction rule: a batch commits whole or not at all. Modeled on
/// kubernetes-sigs/knftables' `fake.go`. Faults are injected per object (`refuse`), the way the kernel refuses one
/// object of a batch; the table another process owns (`ownedElsewhere`) refuses every change, like the owner flag.
public final class FakeNftables: NftablesBackend {
    /// One object of a batch, as the fault hook sees it.
    public enum Object: Equatable, Sendable {
        case table(String), set(String), chain(String), rule(chain: String, index: Int), delete(String)

        /// The operation a refusal of this object names, as the kernel client's would.
        var operation: NetlinkOperation {
            switch self {
            case .table: return NetlinkOperation(.new, .table, "\(self)")
            case .set: return NetlinkOperation(.new, .set, "\(self)")
            case .chain: return NetlinkOperation(.new, .chain, "\(self)")
            case .rule: return NetlinkOperation(.new, .rule, "\(self)")
            case .delete: return NetlinkOperation(.delete, .table, "\(self)")
            }
        }
    }

    public private(set) var tables: [String: (table: Table, flags: UInt32)] = [:]
    public private(set) var generationCount: UInt32 = 1
    /// Batches committed (an unchanged apply sends none).
    public private(set) var commits = 0
    public var ownershipUnsupported = false
    /// Tables (`inet weir`) that another process owns.
    public var ownedElsewhere: Set<String> = []
    /// Returns an errno to refuse an object of a batch; the whole batch then fails and nothing changes.
    public var refuse: (Object) -> Int32? = { _ in nil }

    public init() {}

    static func key(_ family: TableFamily, _ name: String) -> String { "\(family.rawValue) \(name)" }

    public func generation() throws -> UInt32 { generationCount }

    /// Set by every apply: the fake holds exactly what it was given.
    public private(set) var verifiedGeneration: UInt32?

    /// Another process's commit (anything else on the node that moves the generation).
    public func commitElsewhere() { generationCount += 1 }

    public func table(family: TableFamily, name: String) throws -> TableInfo? {
        tables[Self.key(family, name)].map { TableInfo(family: family, name: name, flags: $0.flags, ownerPortID: nil) }
    }

    /// The table as the fake holds it, for assertions.
    public func content(family: TableFamily, name: String) -> Table? { tables[Self.key(family, name)]?.table }

    /// Deletes a table behind weir's back (drift), as `nft delete table` would.
    public func externalDelete(family: TableFamily, name: String) {
        if tables.removeValue(forKey: Self.key(family, name)) != nil { generationCount += 1 }
    }

    public func apply(_ table: Table, force: Bool) throws -> ApplyOutcome {
        let key = Self.key(table.family, table.name)
        let stale = Self.key(table.family == .inet ? .ip : .inet, table.name)
        let flags = ownershipUnsupported ? 0 : TableFlag.owner | TableFlag.persist
        if let existing = tables[key], tables[stale] == nil, existing.table == table, !force,
           ownershipUnsupported || existing.flags & TableFlag.persist != 0 {
            verifiedGeneration = generationCount
            return .unchanged
        }
        var batch: [Object] = []
        if tables[stale] != nil { batch.append(.delete(stale)) }
        if tables[key] != nil { batch.append(.delete(key)) }
        batch.append(.table(key))
        batch += table.sets.map { .set($0.name) }
        batch += table.chains.map { .chain($0.name) }
        for chain in table.chains { batch += chain.rules.indices.map { .rule(chain: chain.name, index: $0) } }
        try commit(batch, touching: [key, stale])
        let outcome: ApplyOutcome = tables[key] == nil ? .created : .replaced
        tables[stale] = nil
        tables[key] = (table, flags)
        verifiedGeneration = generationCount
        return outcome
    }

    public func claim(family: TableFamily, name: String) throws -> Bool {
        let key = Self.key(family, name)
        guard !ownershipUnsupported, let existing = tables[key], existing.flags & TableFlag.owner == 0 else {
            return false
        }
        try commit([.table(key)], touching: [key])
        tables[key] = (existing.table, TableFlag.owner | TableFlag.persist)
        return true
    }

    public func removeTables(named name: String) throws -> [TableFamily] {
        let present = [TableFamily.inet, .ip].filter { tables[Self.key($0, name)] != nil }
        guard !present.isEmpty else { return [] }
        try commit(present.map { .delete(Self.key($0, name)) }, touching: present.map { Self.key($0, name) })
        for f in present { tables[Self.key(f, name)] = nil }
        return present
    }

    /// Checks every object first; only then does the caller change state: all or nothing.
    private func commit(_ batch: [Object], touching keys: [String]) throws {
        if let owned = keys.first(where: { ownedElsewhere.contains($0) && tables[$0] != nil }) {
            throw NetlinkError(NetlinkOperation(.new, .table, "add table \(owned)"), errno: EPERM)
        }
        for object in batch {
            if let e = refuse(object) { throw NetlinkError(object.operation, errno: e) }
        }
        commits += 1
        generationCount += 1
    }
}

/// weir's routing in memory: the ip rules and local routes of TPROXY and the `::6` address, each tagged as weir's.
public final class FakeRouting: RoutingBackend {
    public private(set) var rules: Set<RoutingObject> = []
    public private(set) var routes: Set<RoutingObject> = []
    public private(set) var passthroughAddress = false
    /// Returns an errno to refuse adding one rule or route (given as `weir rules` prints it).
    public var refuse: (String) -> Int32? = { _ in nil }

    public init() {}

    /// Deletes everything behind weir's back (drift).
    public func externalFlush() {
        rules = []
        routes = []
        passthroughAddress = false
    }

    public func ensureTPROXYRouting(mark: UInt32, table: UInt32, families: [IPFamily]) throws -> [RoutingObject] {
        var added: [RoutingObject] = []
        for f in families {
            let rule = RoutingObject.rule(f, mark: mark, table: table), route = RoutingObject.localRoute(f, table: table)
            for (entry, isRule) in [(rule, true), (route, false)] {
                guard !(isRule ? rules : routes).contains(entry) else { continue }
                if let e = refuse(entry.description) {
                    var error = NetlinkError(NetlinkOperation(.new, isRule ? .ipRule : .route, "add \(entry)"), errno: e)
                    error.alreadyDone = added
                    throw error
                }
                if isRule { rules.insert(entry) } else { routes.insert(entry) }
                added.append(entry)
            }
        }
        return added
    }

    public func missingRouting(tproxy: (mark: UInt32, table: UInt32)?, families: [IPFamily], address: Bool) throws
        -> [RoutingObject]
    {
        var out: [RoutingObject] = []
        if let t = tproxy {
            for f in families {
                let rule = RoutingObject.rule(f, mark: t.mark, table: t.table)
                let route = RoutingObject.localRoute(f, table: t.table)
                if !rules.contains(rule) { out.append(rule) }
                if !routes.contains(route) { out.append(route) }
            }
        }
        if address && !passthroughAddress { out.append(.passthroughAddress) }
        return out
    }

    public func ensurePassthroughAddress() throws -> Bool {
        defer { passthroughAddress = true }
        return !passthroughAddress
    }

    public func removeWeirRouting(keeping keep: (mark: UInt32, table: UInt32, families: [IPFamily])?,
                                  keepAddress: Bool) throws -> [RoutingObject] {
        var kept: Set<RoutingObject> = []
        if let k = keep {
            for f in k.families {
                kept.insert(.rule(f, mark: k.mark, table: k.table))
                kept.insert(.localRoute(f, table: k.table))
            }
        }
        let byText = { (a: RoutingObject, b: RoutingObject) in a.description < b.description }
        var removed = rules.subtracting(kept).sorted(by: byText) + routes.subtracting(kept).sorted(by: byText)
        rules = rules.intersection(kept)
        routes = routes.intersection(kept)
        if !keepAddress && passthroughAddress {
            passthroughAddress = false
            removed.append(.passthroughAddress)
        }
        return removed
    }
}
