import WeirCore
import WeirNetfilter

/// One thing `CaptureInstaller.apply` changed in the kernel: which kind of object, what happened to it, and which one.
public struct CaptureChange: Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        case table, owner, rule, route, address
    }

    public enum Action: Sendable {
        case created, replaced, claimed, added, removed
    }

    public let kind: Kind
    public let action: Action
    /// The object: a table (`inet weir`), or the routing object.
    private let subject: String

    /// The kind as the metrics' `object` label.
    public var object: String {
        switch kind {
        case .table: return "table"
        case .owner: return "owner"
        case .rule: return "rule"
        case .route: return "route"
        case .address: return "address"
        }
    }

    /// The change as `weir rules` prints it (`table inet weir: replaced`, `added ip -4 rule ...`).
    public var description: String {
        switch (kind, action) {
        case (.table, .created): return "table \(subject): created"
        case (.table, _): return "table \(subject): replaced"
        case (.owner, _): return "claimed table \(subject)"
        case (_, .removed): return "removed \(subject)"
        default: return "added \(subject)"
        }
    }

    /// The table `name` created or replaced (an unchanged one is no change).
    static func table(_ name: String, _ outcome: ApplyOutcome) -> CaptureChange {
        CaptureChange(kind: .table, action: outcome == .created ? .created : .replaced, subject: name)
    }

    static func claimed(_ name: String) -> CaptureChange { CaptureChange(kind: .owner, action: .claimed, subject: name) }

    /// A routing object added or removed.
    static func routing(_ action: Action, _ object: RoutingObject) -> CaptureChange {
        let kind: Kind
        switch object {
        case .rule: kind = .rule
        case .localRoute: kind = .route
        case .passthroughAddress: kind = .address
        }
        return CaptureChange(kind: kind, action: action, subject: object.description)
    }
}

/// Installs the capture: the nftables table, TPROXY policy routing and the `::6` hand-off address. The same call
/// serves the first install and every reconcile: each part compares what the kernel holds with what it should hold
/// and writes only the difference, so an unchanged node sees no write at all (the nftables generation stays).
///
/// Keep the installer alive as long as weir should own its table: the owner flag binds the table to its socket.
public final class CaptureInstaller {
    private let nft: NftablesBackend
    private let routes: RoutingBackend

    /// The kernel's nftables and routing, on netlink sockets of this installer.
    public convenience init() throws {
        do {
            self.init(nft: try NftClient(), routes: try RouteClient())
        } catch let e as NetlinkError {
            throw AgentError(e.description)
        }
    }

    /// Any backends: the kernel's, or the in-memory fakes of the tests.
    public init(nft: NftablesBackend, routes: RoutingBackend) {
        self.nft = nft
        self.routes = routes
    }

    /// True when this kernel cannot own a table (no persist flag, < 6.9): the table is then applied unowned.
    public var ownershipUnsupported: Bool { nft.ownershipUnsupported }

    /// True unless the kernel's nftables generation is still the one at which this installer last knew its table to
    /// be right: someone committed since (or it cannot tell), so a reconcile should look.
    public func tablesChangedSinceVerified() -> Bool {
        guard let verified = nft.verifiedGeneration, let now = try? nft.generation() else { return true }
        return now != verified
    }

    /// Brings the kernel to `table` and `config`'s routing; returns what it changed (empty: nothing drifted).
    /// `claim` makes this process the table's owner if it is not already; `force` replaces the table even when the
    /// kernel already holds the same one.
    public func apply(_ config: CaptureConfig, _ table: Table, claim: Bool, force: Bool = false) throws
        -> [CaptureChange]
    {
        var changes: [CaptureChange] = []
        let name = "\(table.family.rawValue) \(table.name)"
        do {
            let outcome = try nft.apply(table, force: force)
            if outcome != .unchanged {
                changes.append(.table(name, outcome))
            }
            if config.mode == .tproxy {
                let removed = try routes.removeWeirRouting(
                    keeping: (config.tproxyMark, config.tproxyRouteTable, config.families), keepAddress: true)
                changes += removed.map { .routing(.removed, $0) }
                let added = try routes.ensureTPROXYRouting(mark: config.tproxyMark, table: config.tproxyRouteTable,
                                                           families: config.families)
                changes += added.map { .routing(.added, $0) }
            } else {
                changes += try routes.removeWeirRouting(keeping: nil, keepAddress: true).map { .routing(.removed, $0) }
            }
            if !config.ipv4Only, try routes.ensurePassthroughAddress() {
                changes.append(.routing(.added, .passthroughAddress))
            }
            // An unchanged table was left alone; owning it still needs a claim.
            if claim, try nft.claim(family: table.family, name: table.name) {
                changes.append(.claimed(name))
            }
        } catch let e as NetlinkError {
            let done = e.alreadyDone.map { CaptureChange.routing(.added, $0) }
            throw AgentError(e.description, partialChanges: changes + done)
        }
        return changes
    }

    /// Removes everything weir installed (`weir clean`): both tables, and the rules, routes and address that carry
    /// weir's routing protocol. Returns what it removed.
    public func removeAll() throws -> [String] {
        do {
            let tables = try nft.removeTables(named: CaptureRuleset.tableName)
            return tables.map { "removed table \($0.rawValue) \(CaptureRuleset.tableName)" }
                + (try routes.removeWeirRouting(keeping: nil, keepAddress: false)).map { "removed \($0)" }
        } catch let e as NetlinkError {
            throw AgentError(e.description)
        }
    }
}

/// Read-only check of the capture for `/readyz`, on sockets of its own (the admin thread's): what is missing that
/// the agent installed. Cheap enough for every probe: one table lookup and three small rtnetlink dumps.
public final class CaptureCheck {
    private var nft: NftClient?
    private var routes: RouteClient?

    public init() {}

    /// Missing pieces, worded for an operator; empty when everything is in place.
    public func missing(_ config: CaptureConfig, _ table: Table) -> [String] {
        do {
            if nft == nil { nft = try NftClient() }
            if routes == nil { routes = try RouteClient() }
            var out: [String] = []
            let name = "\(table.family.rawValue) \(table.name)"
            if let info = try nft!.table(family: table.family, name: table.name) {
                if !nft!.ownershipUnsupported && !info.isOwned { out.append("table \(name) is not owned") }
            } else {
                out.append("table \(name) is missing")
            }
            out += try routes!.missingRouting(
                tproxy: config.mode == .tproxy ? (config.tproxyMark, config.tproxyRouteTable) : nil,
                families: config.families, address: !config.ipv4Only).map { "\($0) is missing" }
            return out
        } catch {
            nft = nil
            routes = nil
            return ["capture check failed: \(error)"]
        }
    }
}
