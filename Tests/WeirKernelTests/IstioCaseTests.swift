import Foundation
import Testing
import WeirTestSupport

/// What ties weir's capture to Istio's. The goldens in Tests/WeirCoreTests/Golden are snapshots of weir's own nft
/// text: they catch a change, not an error. What makes them right is that every scenario mirroring one of Istio's
/// reference goldens (`istioCase`) is also driven by real connections in CaptureBehaviourTests or CaptureDNSTests,
/// which check where each probe lands against expectations derived from that Istio golden. This check needs no root.
struct IstioCaseTests {
    /// Istio's reference goldens (`tools/istio-nftables/pkg/capture/testdata`), kept in the shared reference data.
    static let referenceDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../../shared/reference/istio-nft").standardized
    /// The number of cases in that snapshot, for a checkout without the reference beside it.
    static let referenceCaseCount = 28

    @Test func everyIstioCaseIsDrivenByRealConnections() {
        let driven = Set((behaviourCases + dnsCases).map(\.scenario))
        let mirrored = captureScenarios.filter { $0.istioCase != nil }
        #expect(mirrored.count == Self.referenceCaseCount)
        for scenario in mirrored {
            let why = "\(scenario.name) mirrors istio's \(scenario.istioCase!) but no test drives real connections "
                + "through its rules"
            #expect(driven.contains(scenario.name), "\(why)")
        }
    }

    @Test func istioCasesAreExactlyTheReferenceGoldens() throws {
        let cases = Set(captureScenarios.compactMap(\.istioCase))
        guard let files = try? FileManager.default.contentsOfDirectory(atPath: Self.referenceDirectory.path) else {
            // No reference beside this checkout: hold the count the snapshot had.
            print("istio reference not found at \(Self.referenceDirectory.path); checked the case count only")
            #expect(cases.count == Self.referenceCaseCount)
            return
        }
        let goldens = Set(files.filter { $0.hasSuffix(".golden") }.map { String($0.dropLast(".golden".count)) })
        let diff = "missing: \(goldens.subtracting(cases).sorted()), unknown: \(cases.subtracting(goldens).sorted())"
        #expect(cases == goldens, "\(diff)")
    }
}
