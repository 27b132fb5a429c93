import Glibc
import Testing
import WeirAgent
import WeirCore
import WeirNetfilter
import WeirNetfilterFakes

/// The agent's install, reconcile and cleanup logic against the in-memory nftables and routing: what it reports,
/// what it leaves behind when a step fails, and that an unchanged node sees no write.
struct CaptureInstallerTests {
    let nft = FakeNftables()
    let routes = FakeRouting()
    var installer: CaptureInstaller { CaptureInstaller(nft: nft, routes: routes) }

    func capture(_ flags: [String: [String]]) throws -> (CaptureConfig, Table) {
        let c = try CaptureConfig.parse(flags: flags)
        return (c, CaptureRuleset.build(c))
    }

    @Test func firstApplyCreatesThenNothingChanges() throws {
        let (c, t) = try capture(["istio-inbound-ports": ["*"], "istio-inbound-interception-mode": ["TPROXY"]])
        let first = try installer.apply(c, t, claim: true).map(\.description)
        #expect(first.first == "table inet weir: created")
        #expect(first.contains("added ip -4 rule fwmark 1337 lookup 133") && first.contains("added address ::6/128 dev lo"))
        let generation = try nft.generation()
        #expect(try installer.apply(c, t, claim: true).isEmpty)
        #expect(try nft.generation() == generation && nft.commits == 1)
        #expect(nft.content(family: .inet, name: "weir") == t)
    }

    /// What the agent checks after an apply with the nftables events muted: did anyone else commit since?
    @Test func tellsWhetherAnyoneCommittedSinceItsTableWasRight() throws {
        let (c, t) = try capture(["istio-inbound-ports": ["*"]])
        #expect(installer.tablesChangedSinceVerified())  // never applied: it cannot tell
        _ = try installer.apply(c, t, claim: true)
        #expect(!installer.tablesChangedSinceVerified())
        nft.commitElsewhere()
        #expect(installer.tablesChangedSinceVerified())
        #expect(try installer.apply(c, t, claim: true).isEmpty)  // compared, found right
        #expect(!installer.tablesChangedSinceVerified())
    }

    @Test func forceReplacesAnUnchangedTable() throws {
        let (c, t) = try capture(["istio-inbound-ports": ["*"]])
        _ = try installer.apply(c, t, claim: false)
        #expect(try installer.apply(c, t, claim: false, force: true).map(\.description) == ["table inet weir: replaced"])
        #expect(nft.commits == 2)
    }

    @Test func aRefusedObjectLeavesThePreviousTableWhole() throws {
        let (c1, t1) = try capture(["istio-inbound-ports": ["*"]])
        let (c2, t2) = try capture(["istio-inbound-ports": ["*"], "istio-service-cidr": ["*"]])
        _ = try installer.apply(c1, t1, claim: false)
        let generation = try nft.generation()
        nft.refuse = { object in
            if case .rule(chain: "outbound", index: 3) = object { return ENOENT }
            return nil
        }
        #expect(throws: AgentError.self) { _ = try installer.apply(c2, t2, claim: false) }
        #expect(nft.content(family: .inet, name: "weir") == t1)
        #expect(try nft.generation() == generation)
    }

    @Test func aFailedRoutingStepReportsTheTableItCreated() throws {
        let (c, t) = try capture(["istio-inbound-ports": ["*"], "istio-inbound-interception-mode": ["TPROXY"]])
        routes.refuse = { $0.hasPrefix("ip -6 route") ? EACCES : nil }
        do {
            _ = try installer.apply(c, t, claim: true)
            Issue.record("apply succeeded")
        } catch let e as AgentError {
            // What the agent reads to undo a failed start: the new table, and the routing added before the failure.
            let partial = e.partialChanges.map(\.description)
            #expect(partial.contains("table inet weir: created"), "\(partial)")
            #expect(partial.contains("added ip -4 rule fwmark 1337 lookup 133"), "\(partial)")
        }
        // The agent's undo of a failed start: everything goes.
        _ = try installer.removeAll()
        #expect(nft.tables.isEmpty && routes.rules.isEmpty && routes.routes.isEmpty && !routes.passthroughAddress)
    }

    @Test func reconcileRepairsWhatWasDeletedBehindItsBack() throws {
        let (c, t) = try capture(["istio-inbound-ports": ["*"], "istio-inbound-interception-mode": ["TPROXY"]])
        _ = try installer.apply(c, t, claim: true)
        nft.externalDelete(family: .inet, name: "weir")
        routes.externalFlush()
        let repaired = try installer.apply(c, t, claim: true).map(\.description)
        #expect(repaired.contains("table inet weir: created"))
        #expect(repaired.contains("added ip -6 route local default dev lo table 133"))
        #expect(repaired.contains("added address ::6/128 dev lo"))
        #expect(try routes.missingRouting(tproxy: (1337, 133), families: [.ipv4, .ipv6], address: true).isEmpty)
    }

    @Test func switchingToIPv4OnlyReplacesTheOtherFamilyInOneBatch() throws {
        let (c1, t1) = try capture(["istio-inbound-ports": ["*"]])
        _ = try installer.apply(c1, t1, claim: false)
        let c2 = try CaptureConfig.parse(flags: ["istio-inbound-ports": ["*"]], ipv4Only: true)
        _ = try installer.apply(c2, CaptureRuleset.build(c2), claim: false)
        #expect(nft.tables.keys.sorted() == ["ip weir"])
        #expect(nft.commits == 2)
    }

    @Test func aTableAnotherProcessOwnsIsRefused() throws {
        let (c, t) = try capture(["istio-inbound-ports": ["*"]])
        _ = try installer.apply(c, t, claim: false)
        nft.ownedElsewhere = ["inet weir"]
        let (c2, t2) = try capture(["istio-inbound-ports": ["80"]])
        #expect(throws: AgentError.self) { _ = try installer.apply(c2, t2, claim: false) }
        #expect(nft.content(family: .inet, name: "weir") == t)
    }
}
