import WeirCore
import WeirNetfilter

/// Applies the capture table, TPROXY routing and the `::6` hand-off address, printing what changed. Returns the
/// netlink client: keep it alive to keep owning the table.
func installCapture(_ config: CaptureConfig, _ table: Table, claim: Bool) throws -> NftClient {
    do {
        let nft = try NftClient()
        let outcome = try nft.apply(table)
        print("table \(table.family.rawValue) \(table.name): \(outcome)")
        if nft.ownershipUnsupported {
            print("note: this kernel has no nftables persist flag (needs >= 6.9); the table is not owned")
        }
        let routes = try RouteClient()
        if config.mode == .tproxy {
            let removed = try routes.removeWeirRouting(
                keeping: (config.tproxyMark, config.tproxyRouteTable, config.families), keepAddress: true)
            removed.forEach { print("removed \($0)") }
            let added = try routes.ensureTPROXYRouting(mark: config.tproxyMark, table: config.tproxyRouteTable,
                                                       families: config.families)
            added.forEach { print("added \($0)") }
            if added.isEmpty && removed.isEmpty { print("tproxy routing: unchanged") }
        } else {
            try routes.removeWeirRouting(keepAddress: true).forEach { print("removed \($0)") }
        }
        if !config.ipv4Only, try routes.ensurePassthroughAddress() {
            print("added address ::6/128 dev lo")
        }
        // An unchanged table was left alone; owning it still needs a claim.
        if claim, try nft.claim(family: table.family, name: table.name) {
            print("claimed table \(table.family.rawValue) \(table.name)")
        }
        return nft
    } catch let error as NetlinkError {
        throw RuntimeFailure(message: error.description)
    }
}
