import WeirCore

/// nftables as weir uses it: one owned table, applied whole. `NftClient` talks to the kernel; `FakeNftables` (test
/// support, Tests/WeirNetfilterFakes) keeps the same state in memory for tests of the code above it.
public protocol NftablesBackend: AnyObject {
    /// True when the kernel cannot own a table (no persist flag): the table is applied unowned.
    var ownershipUnsupported: Bool { get }
    /// Changes with every committed batch.
    func generation() throws -> UInt32
    /// The generation at which this client last knew the kernel to hold exactly its table (after its own commit,
    /// or a comparison that found it right); nil when it does not know.
    var verifiedGeneration: UInt32? { get }
    func table(family: TableFamily, name: String) throws -> TableInfo?
    /// Installs `table` in one batch, replacing weir's previous table; sends nothing when it is already there,
    /// unless `force`.
    func apply(_ table: Table, force: Bool) throws -> ApplyOutcome
    /// Makes this client the owner of an existing, unowned table. False if nothing had to be done.
    @discardableResult func claim(family: TableFamily, name: String) throws -> Bool
    /// Deletes the tables of this name, both families; returns the ones that existed.
    @discardableResult func removeTables(named name: String) throws -> [TableFamily]
}

/// weir's policy routing and the `::6` hand-off address (`RouteClient` over rtnetlink, or the tests' `FakeRouting`).
public protocol RoutingBackend: AnyObject {
    /// Adds what is missing of `ip rule fwmark MARK lookup TABLE` and its local route, per family; returns it.
    func ensureTPROXYRouting(mark: UInt32, table: UInt32, families: [IPFamily]) throws -> [RoutingObject]
    /// What the two ensure calls would add, without adding it.
    func missingRouting(tproxy: (mark: UInt32, table: UInt32)?, families: [IPFamily], address: Bool) throws
        -> [RoutingObject]
    /// Adds `::6/128` on lo unless it is there; true if it was added.
    func ensurePassthroughAddress() throws -> Bool
    /// Removes weir's rules, routes and (unless `keepAddress`) address, except `keep`; returns what it removed.
    @discardableResult
    func removeWeirRouting(keeping keep: (mark: UInt32, table: UInt32, families: [IPFamily])?, keepAddress: Bool)
        throws -> [RoutingObject]
}

extension NftClient: NftablesBackend {}
extension RouteClient: RoutingBackend {}
