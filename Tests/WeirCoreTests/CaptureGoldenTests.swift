import Foundation
import Testing
import WeirCore
import WeirTestSupport

/// Golden nft text per capture scenario. `UPDATE_GOLDEN=1 swift test` rewrites the files; review the diff like code.
///
/// These goldens are snapshots of weir's own output: they show every change to the rules, but cannot say a rule is
/// right. Real connections do: each scenario that mirrors one of Istio's reference goldens (`istioCase`) is applied
/// in a namespace and probed (Tests/WeirKernelTests/CaptureBehaviourTests.swift, CaptureDNSTests.swift), and
/// IstioCaseTests fails when one of them is not.
struct CaptureGoldenTests {
    static let goldenDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Golden")

    @Test(arguments: captureScenarios.map(\.name))
    func matchesGolden(_ name: String) throws {
        let scenario = captureScenarios.first { $0.name == name }!
        let text = NftText.render(CaptureRuleset.build(try scenario.config()))
        let url = Self.goldenDirectory.appendingPathComponent("\(name).nft")
        if ProcessInfo.processInfo.environment["UPDATE_GOLDEN"] == "1" {
            try text.write(to: url, atomically: true, encoding: .utf8)
            return
        }
        let golden = try String(contentsOf: url, encoding: .utf8)
        #expect(text == golden, "ruleset for \(name) differs from Golden/\(name).nft (UPDATE_GOLDEN=1 to rewrite)")
    }

    @Test func everyGoldenHasAScenario() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.goldenDirectory.path)
            .filter { $0.hasSuffix(".nft") }.map { String($0.dropLast(4)) }.sorted()
        #expect(files == captureScenarios.map(\.name).sorted())
    }

    @Test(arguments: captureScenarios.map(\.name))
    func outputIsDeterministicWhateverTheInputOrder(_ name: String) throws {
        let scenario = captureScenarios.first { $0.name == name }!
        // Reverse every comma list and repeat its first entry: the ruleset must not change.
        var shuffled: [String: [String]] = [:]
        for (k, vs) in scenario.flags {
            shuffled[k] = vs.map { v in
                guard v.contains(",") else { return v }
                let items = v.split(separator: ",").map(String.init)
                return (items.reversed() + items.prefix(1)).joined(separator: ",")
            }
        }
        let a = NftText.render(CaptureRuleset.build(try scenario.config()))
        let b = NftText.render(CaptureRuleset.build(try CaptureConfig.parse(
            flags: shuffled, environment: scenario.environment, ipv4Only: scenario.ipv4Only,
            resolveGroup: CaptureScenario.resolveGroup)))
        #expect(a == b)
    }
}
