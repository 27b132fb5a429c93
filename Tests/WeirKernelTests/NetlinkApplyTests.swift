import CWeirLinux
import Foundation
import Testing
import WeirCore
import WeirNetfilter
import WeirTestSupport

/// `nft list` output with volatile parts removed: counter values, handles, and the table's flags line (nft 1.0.6 prints
/// owner/persist as an empty `flags` line and cannot express them in text).
func normalizedListing(_ text: String) -> String {
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    if let i = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "flags" }) {
        lines.remove(at: i)
        if i < lines.count && lines[i].isEmpty { lines.remove(at: i) }
    }
    return lines
        .map { line in
            line.replacingOccurrences(of: #"counter packets \d+ bytes \d+"#, with: "counter", options: .regularExpression)
                .replacingOccurrences(of: #" # handle \d+"#, with: "", options: .regularExpression)
        }
        .joined(separator: "\n")
}

/// A listing's tables, chains and sets, each block of lines on its own, sorted: the listing without its order.
func objectBlocks(_ listing: String) -> [String] {
    var blocks: [String] = []
    var current: [Substring] = []
    for line in listing.split(separator: "\n") {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("table ") || trimmed.hasPrefix("chain ") || trimmed.hasPrefix("set ") {
            if !current.isEmpty { blocks.append(current.joined(separator: "\n")) }
            current = []
        }
        if !trimmed.isEmpty && trimmed != "}" { current.append(line) }
    }
    if !current.isEmpty { blocks.append(current.joined(separator: "\n")) }
    return blocks.sorted()
}

@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct NetlinkApplyTests {
    /// Netlink result == `nft -f` of the dry-run text, for every scenario; and the dry-run text passes `nft -c`.
    @Test(arguments: captureScenarios.map(\.name))
    func netlinkEqualsNftOfTheDryRunText(_ name: String) throws {
        let scenario = captureScenarios.first { $0.name == name }!
        try withNamespace(prefix: "wtn") { ns in
            let dry = try ns.weir(["rules", "--dry-run"] + scenario.arguments, environment: scenario.environment)
            try #require(dry.status == 0, "\(dry.stderr)")
            try ns.exec(["nft", "-c", "-f", "-"], input: dry.stdout)
            let applied = try ns.weir(["rules"] + scenario.arguments, environment: scenario.environment)
            try #require(applied.status == 0, "\(applied.stderr)")
            let viaNetlink = normalizedListing(try ns.exec(["nft", "list", "ruleset"]))
            try ns.weir(["clean"])
            #expect(try ns.exec(["nft", "list", "ruleset"]).isEmpty)
            try ns.exec(["nft", "-f", "-"], input: dry.stdout)
            let viaText = normalizedListing(try ns.exec(["nft", "list", "ruleset"]))
            #expect(viaNetlink == viaText)
        }
    }

    /// Every scenario's table read back from the kernel passes NftReplyCheck and equals what weir would send: the
    /// second apply sends nothing.
    @Test(arguments: captureScenarios.map(\.name))
    func everyScenarioReadsBackUnchanged(_ name: String) throws {
        let scenario = captureScenarios.first { $0.name == name }!
        try withNamespace(prefix: "wtn") { ns in
            let first = try ns.weir(["rules"] + scenario.arguments, environment: scenario.environment)
            try #require(first.status == 0, "\(first.stderr)")
            let second = try ns.weir(["rules"] + scenario.arguments, environment: scenario.environment)
            #expect(second.stdout.contains("unchanged"), "\(second.stdout)")
            #expect(!second.stdout.contains("replaced") && !second.stdout.contains("created"), "\(second.stdout)")
        }
    }

    @Test func applyTwiceChangesNothingInTheKernel() throws {
        try withNamespace(prefix: "wtn") { ns in
            let args = ["rules", "-b", "*", "-i", "*", "-d", "15090,15021", "-x", "198.18.5.0/24,2001:db8:5::/48",
                        "-m", "TPROXY"]
            let first = try ns.weir(args)
            try #require(first.status == 0, "\(first.stderr)")
            #expect(first.stdout.contains("table inet weir: created"))
            let handles = try ns.exec(["nft", "-a", "list", "ruleset"])
            let rules = try ns.exec(["ip", "rule"]) + (try ns.exec(["ip", "-6", "route", "show", "table", "all"]))
            let monitor = try ns.exec(["nft", "list", "ruleset"])
            let second = try ns.weir(args)
            #expect(second.status == 0)
            #expect(second.stdout.contains("table inet weir: unchanged"), "\(second.stdout)")
            #expect(second.stdout.contains("tproxy routing: unchanged"), "\(second.stdout)")
            #expect(try ns.exec(["nft", "-a", "list", "ruleset"]) == handles, "handles changed: objects were re-created")
            #expect(try ns.exec(["ip", "rule"]) + (try ns.exec(["ip", "-6", "route", "show", "table", "all"])) == rules)
            #expect(try ns.exec(["nft", "list", "ruleset"]) == monitor)
            // A changed config replaces the table in one batch.
            let third = try ns.weir(["rules", "-b", "*", "-i", "*"])
            #expect(third.stdout.contains("table inet weir: replaced"), "\(third.stdout)")
            #expect(third.stdout.contains("removed ip -4 rule fwmark 1337 lookup 133"))
        }
    }

    /// A changed table is replaced in place: the table and each base chain the new table keeps are the same kernel
    /// objects (same handles; a table deleted and added anew gets a new handle): the chain's one hook stays registered, so no packet passes an old and a new copy of it during the commit),
    /// and whatever the order of changes, the kernel ends up holding exactly what a fresh apply gives.
    @Test func aChangedTableIsReplacedInPlaceAndEqualsAFreshApply() throws {
        func baseChainHandles(_ ns: TestNamespace) throws -> [String] {
            try ns.exec(["nft", "-a", "list", "table", "inet", "weir"]).split(separator: "\n")
                .filter { $0.hasPrefix("table ") || $0.contains("chain mangle-") || $0.contains("chain prerouting")
                          || $0.contains("chain output") }
                .map { $0.trimmingCharacters(in: .whitespaces) }
        }
        try withNamespace(prefix: "wtn") { ns in
            let tproxy = ["rules", "-b", "*", "-m", "TPROXY", "-d", "22"]
            try #require(try ns.weir(tproxy).status == 0)
            let before = try baseChainHandles(ns)
            #expect(before.count == 4, "\(before)")  // the table; nat output, mangle prerouting and output
            let changed = try ns.weir(["rules", "-b", "*", "-m", "TPROXY", "-d", "22,10250"])
            #expect(changed.stdout.contains("table inet weir: replaced"), "\(changed.stdout)")
            #expect(try baseChainHandles(ns) == before, "a base chain was deleted and added again")
            try withNamespace(prefix: "wtf") { fresh in
                for scenario in captureScenarios {
                    let applied = try ns.weir(["rules"] + scenario.arguments, environment: scenario.environment)
                    try #require(applied.status == 0, "\(scenario.name): \(applied.stderr)")
                    let dry = try ns.weir(["rules", "--dry-run"] + scenario.arguments, environment: scenario.environment)
                    _ = try fresh.exec(["nft", "flush", "ruleset"])
                    try fresh.exec(["nft", "-f", "-"], input: dry.stdout)
                    let want = normalizedListing(try fresh.exec(["nft", "list", "ruleset"]))
                    // Kept chains keep their place in the listing (nft lists in the order of creation): compared
                    // chain by chain and set by set.
                    let got = objectBlocks(normalizedListing(try ns.exec(["nft", "list", "ruleset"])))
                    #expect(got == objectBlocks(want), "\(scenario.name)")
                }
            }
        }
    }

    @Test func cleanRemovesOnlyWeirsObjects() throws {
        try withNamespace(prefix: "wtn") { ns in
            try ns.exec(["nft", "-f", "-"], input: "table inet foreign {\n chain c {\n type filter hook output priority 0;\n counter\n }\n}\n")
            try ns.exec(["ip", "rule", "add", "fwmark", "7", "lookup", "77"])
            try ns.exec(["ip", "route", "add", "local", "default", "dev", "lo", "table", "77"])
            try #require(try ns.weir(["rules", "-m", "TPROXY", "-b", "*", "-i", "*"]).status == 0)
            #expect(try ns.exec(["ip", "-6", "addr", "show", "dev", "lo"]).contains("::6/128"))
            let clean = try ns.weir(["clean"])
            #expect(clean.status == 0, "\(clean.stderr)")
            let tables = try ns.exec(["nft", "list", "tables"])
            #expect(tables == "table inet foreign\n")
            let rules = try ns.exec(["ip", "rule"])
            #expect(!rules.contains("lookup 133") && rules.contains("lookup 77"))
            #expect(try ns.exec(["ip", "-6", "rule"]).contains("lookup 133") == false)
            #expect(try ns.exec(["ip", "route", "show", "table", "77"]).contains("local default"))
            #expect(try ns.exec(["ip", "-6", "route", "show", "table", "133"]).isEmpty)
            #expect(!(try ns.exec(["ip", "-6", "addr", "show", "dev", "lo"]).contains("::6/128")))
            #expect(try ns.weir(["clean"]).stdout.contains("nothing to remove"))
        }
    }

    @Test func aRefusedBatchLeavesThePreviousRulesetExactlyAsItWas() throws {
        try withNamespace(prefix: "wtn") { ns in
            try #require(try ns.weir(["rules", "-b", "80", "-i", "198.18.0.0/15"]).status == 0)
            let before = try ns.exec(["nft", "-a", "list", "ruleset"])
            // weir's own table for other flags, plus one rule the kernel must refuse (a jump to a chain that does
            // not exist), applied in this process from a thread inside the namespace.
            var table = CaptureRuleset.build(try CaptureConfig.parse(flags: [
                "istio-inbound-ports": ["*"], "istio-service-cidr": ["*"], "istio-service-exclude-cidr": ["198.18.9.0/24"],
            ]))
            let outbound = try #require(table.chains.firstIndex { $0.name == "outbound" })
            table.chains[outbound].rules.append(Rule([], [.verdict(.jump("weir-test-missing-chain"))]))
            let broken = table
            let failure = try inNamespace(ns) { () -> String in
                do {
                    _ = try NftClient().apply(broken)
                    return "applied"
                } catch {
                    return "\(error)"
                }
            }
            #expect(failure.hasPrefix("add rule inet weir outbound #"), "\(failure)")
            #expect(failure.contains("ENOENT"), "\(failure)")
            #expect(!failure.contains("\n"))
            #expect(try ns.exec(["nft", "-a", "list", "ruleset"]) == before)
        }
    }

    /// Starts `weir rules --hold` in the namespace and waits until it holds the table; returns it and its output.
    func hold(_ ns: TestNamespace, _ args: [String]) throws -> (Process, String) {
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        holder.arguments = ["netns", "exec", ns.name, weirBinary, "rules"] + args + ["--hold"]
        let out = Pipe()
        holder.standardOutput = out
        try holder.run()
        var seen = ""
        while !seen.contains("holding") && holder.isRunning {
            seen += String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        }
        return (holder, seen)
    }

    @Test func theTableIsOwnedWhileHeldAndPersistsAfterwards() throws {
        try withNamespace(prefix: "wtn") { ns in
            let (holder, _) = try hold(ns, ["-i", "*"])
            let flush = try ns.run(["nft", "flush", "table", "inet", "weir"])
            #expect(flush.status != 0, "another process could flush weir's table while weir held it")
            holder.terminate()
            holder.waitUntilExit()
            // Persist: the table survives its owner, so traffic stays captured.
            #expect(try ns.exec(["nft", "list", "tables"]).contains("table inet weir"))
            #expect(try ns.exec(["nft", "list", "chain", "inet", "weir", "outbound"]).contains("jump redirect-outbound"))
            // A later weir re-claims it, also when the ruleset is unchanged.
            let (again, seen2) = try hold(ns, ["-i", "*"])
            #expect(seen2.contains("unchanged") && seen2.contains("claimed table inet weir"), "\(seen2)")
            #expect(try ns.run(["nft", "flush", "table", "inet", "weir"]).status != 0)
            again.terminate()
            again.waitUntilExit()
            #expect(try ns.run(["nft", "flush", "table", "inet", "weir"]).status == 0)
        }
    }

    @Test func tenThousandExcludedCIDRsApplyAsOneSetFromAFile() throws {
        try withNamespace(prefix: "wtn") { ns in
            // 10,000 single addresses with gaps between them, so none merge.
            var lines = ["# 10,000 hosts"]
            for a in 0..<40 { for b in 0..<250 { lines.append("198.\(18 + a % 2).\(a / 2 * 10 + b / 25).\(b % 25 * 2)") } }
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("weir-cidrs-\(getpid()).txt")
            try lines.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: file) }
            let applied = try ns.weir(["rules", "-i", "*", "-x", "@\(file.path)"])
            #expect(applied.status == 0, "\(applied.stderr)")
            // Single addresses: a set without intervals (one kernel element each, where an interval set holds two).
            let set = try ns.exec(["nft", "list", "set", "inet", "weir", "outbound-exclude-hosts-v4"])
            #expect(set.contains("198.18.0.2,") && set.contains("198.19.199.48"))
            #expect(set.contains("size 10000") && !set.contains("flags interval"))
            #expect(try ns.exec(["nft", "list", "chain", "inet", "weir", "outbound"])
                .components(separatedBy: "@outbound-exclude").count == 2)
            #expect(try ns.weir(["rules", "-i", "*", "-x", "@\(file.path)"]).stdout.contains("unchanged"))
        }
    }

    @Test func kernelRefusalsNameTheOperationTheObjectAndErrno() throws {
        try withNamespace(prefix: "wtn") { ns in
            let r = try ns.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", weirBinary, "rules"])
            #expect(r.status == 1)
            #expect(r.stderr == "weir: get table inet weir: EPERM (need CAP_NET_ADMIN)\n", "\(r.stderr)")
        }
    }

    @Test func tproxyRoutingIsInstalledForBothFamilies() throws {
        try withNamespace(prefix: "wtn") { ns in
            try #require(try ns.weir(["rules", "-m", "TPROXY", "-b", "*", "-t", "77", "-r", "177"]).status == 0)
            #expect(try ns.exec(["ip", "-4", "rule"]).contains("from all fwmark 0x4d lookup 177 proto 87"))
            #expect(try ns.exec(["ip", "-6", "rule"]).contains("from all fwmark 0x4d lookup 177 proto 87"))
            #expect(try ns.exec(["ip", "-4", "route", "show", "table", "177"]).contains("local default dev lo"))
            #expect(try ns.exec(["ip", "-6", "route", "show", "table", "177"]).contains("local default dev lo"))
        }
    }

    @Test func badInputChangesNothing() throws {
        try withNamespace(prefix: "wtn") { ns in
            try #require(try ns.weir(["rules", "-b", "80"]).status == 0)
            let before = try ns.exec(["nft", "-a", "list", "ruleset"])
            for args in [["-p", "70000"], ["-x", "*"], ["-i", "10.0.0.1/8"], ["-u", "-1"], ["-m", "NAT"],
                         ["-k", "abcdefghijklmnop"], ["-p", "1", "-p", "2"], ["-b", "80,*"]] {
                let r = try ns.weir(["rules"] + args)
                #expect(r.status == 2, "\(args)")
                #expect(r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
            }
            #expect(try ns.exec(["nft", "-a", "list", "ruleset"]) == before)
        }
    }
}
