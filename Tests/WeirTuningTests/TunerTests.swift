import Foundation
import Testing
import WeirCore
import WeirTestSupport
@testable import WeirTuning

@Suite struct TunerTests {
    let profileText = """
        net.core.somaxconn = 8192 raise-only                 # why
        net.ipv4.ip_local_port_range = 10240 65535           # why
        net.ipv4.tcp_fin_timeout = 15                        # why
        net.core.netdev_max_backlog = 16384 raise-only       # why
        net.netfilter.nf_conntrack_max = derived raise-only  # why
        sys.module.nf_conntrack.parameters.hashsize = derived raise-only  # why
        net.netfilter.nf_conntrack_tcp_timeout_established = 86400  # why
        """

    func profile() throws -> Profile { try Profile(name: "test", text: profileText, file: "test.profile") }

    @Test func probeReadsTheFakeNode() throws {
        let node = try FakeNode()
        let env = NodeProbe(files: node.files).environment()
        #expect(env.initialNetworkNamespace)
        #expect(env.loadedModules == ["nf_conntrack"])
        #expect(env.cpu.usable == 3)      // cpu.max 300000/100000 on a 16-CPU host
    }

    @Test func applyWritesVerifiesAndRevertRestoresExactly() throws {
        let node = try FakeNode()
        let before = node.snapshot()
        let tuner = node.tuner()
        let plan = try tuner.plan(try profile())
        // Derived: max(32768 x 3, 131072) = 131072, hash 32768.
        #expect(plan.derivedConntrackMax == 131_072)
        let results = try tuner.apply(plan)
        #expect(results.allSatisfy { $0.failure == nil })
        #expect(results.map(\.key) == plan.changes.map(\.key.name))
        #expect(node.read("/proc/sys/net/core/somaxconn") == "8192\n")
        #expect(node.read("/proc/sys/net/ipv4/ip_local_port_range") == "10240 65535\n")
        #expect(node.read("/proc/sys/net/netfilter/nf_conntrack_max") == "131072\n")
        #expect(node.read("/sys/module/nf_conntrack/parameters/hashsize") == "32768\n")
        #expect(node.read("/proc/sys/net/core/netdev_max_backlog") == "16384\n")
        #expect(node.stateExists)

        let state = try #require(try tuner.loadState())
        #expect(state.saved.first { $0.key == "net.ipv4.ip_local_port_range" }?.previous == "32768 60999")

        // Applying again changes nothing.
        #expect(try tuner.apply(try tuner.plan(try profile())).isEmpty)

        let reverted = try #require(try tuner.revert())
        #expect(reverted.allSatisfy { $0.failure == nil })
        #expect(!node.stateExists)
        var after = node.snapshot()
        // The kernel prints ranges with a tab; weir writes a space. Compare values, not bytes, for that one.
        #expect(after.removeValue(forKey: "proc/sys/net/ipv4/ip_local_port_range") == "32768 60999\n")
        var expected = before
        expected.removeValue(forKey: "proc/sys/net/ipv4/ip_local_port_range")
        #expect(after == expected)
        #expect(try tuner.revert() == nil)
    }

    @Test func stateIsSavedBeforeAWriteFails() throws {
        let node = try FakeNode()
        // A directory where a sysctl file should be: open(O_WRONLY) fails with EISDIR.
        try node.remove("/proc/sys/net/ipv4/tcp_fin_timeout")
        try FileManager.default.createDirectory(atPath: node.root + "/proc/sys/net/ipv4/tcp_fin_timeout",
                                                withIntermediateDirectories: true)
        try node.write("/proc/sys/net/ipv4/tcp_fin_timeout/x", "")
        let tuner = node.tuner()
        let profile = try Profile(name: "t", text: "net.ipv4.tcp_fin_timeout = 15\nnet.core.somaxconn = 8192",
                                  file: "t")
        // The directory reads as "not available"; force a set by planning against a reader that says 60.
        let plan = try TunePlan.make(profile: profile, environment: tuner.environment, read: { key in
            key.name == "net.ipv4.tcp_fin_timeout" ? "60" : node.files.read(key.path)
        })
        let results = try tuner.apply(plan)
        #expect(results.first { $0.key == "net.ipv4.tcp_fin_timeout" }?.failure?.contains("Is a directory") == true)
        #expect(results.first { $0.key == "net.core.somaxconn" }?.failure == nil)
        let state = try #require(try tuner.loadState())
        #expect(state.saved.map(\.key) == ["net.core.somaxconn", "net.ipv4.tcp_fin_timeout"])
    }

    @Test func unwritableKeyStopsBeforeAnyChange() throws {
        let node = try FakeNode()
        let before = node.snapshot()
        let tuner = node.tuner()
        // Plan against a reader that claims an existing key; the file itself is missing, so access(W_OK) fails.
        let profile = try Profile(name: "t", text: "net.core.somaxconn = 8192\nnet.ipv4.tcp_keepalive_time = 300",
                                  file: "t")
        let plan = try TunePlan.make(profile: profile, environment: tuner.environment, read: { key in
            key.name == "net.ipv4.tcp_keepalive_time" ? "7200" : node.files.read(key.path)
        })
        #expect(throws: TuningFailure.self) { try tuner.apply(plan) }
        #expect(node.snapshot() == before)
        #expect(!node.stateExists)
    }

    @Test func revertRefusesPathsWeirDoesNotKnow() throws {
        let node = try FakeNode()
        try FileManager.default.createDirectory(atPath: node.stateDir, withIntermediateDirectories: true)
        let state = #"{"version":1,"profiles":["x"],"saved":[{"key":"net.core.somaxconn","path":"/etc/passwd","#
            + #""previous":"1"}]}"#
        try state.write(toFile: node.stateDir + "/tune-state.json", atomically: true, encoding: .utf8)
        #expect(throws: TuningFailure.self) { _ = try node.tuner().revert() }
        #expect(node.stateExists)
    }

    @Test func stateFileThatOthersCouldHavePlacedOrChangedIsRefused() throws {
        let node = try FakeNode()
        let tuner = node.tuner()
        _ = try tuner.apply(try tuner.plan(try Profile(name: "a", text: "net.core.somaxconn = 8192", file: "a")))
        let path = node.stateDir + "/tune-state.json"
        var st = stat()
        #expect(stat(node.stateDir, &st) == 0 && st.st_mode & 0o777 == 0o700, "state directory mode")
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600, "state file mode")
        #expect(try tuner.loadState() != nil)
        // Writable by others: refused, nothing reverted.
        chmod(path, 0o666)
        #expect { _ = try tuner.revert() } throws: { "\($0)".contains("is writable by group or others (mode 666)") }
        #expect(node.read("/proc/sys/net/core/somaxconn") == "8192\n")
        chmod(path, 0o600)
        // A symbolic link in its place (to a copy that is itself fine): refused.
        rename(path, path + ".real")
        symlink(path + ".real", path)
        #expect { _ = try tuner.loadState() } throws: { "\($0)".contains("is a symbolic link") }
        unlink(path)
        rename(path + ".real", path)
        _ = try tuner.revert()
        #expect(node.read("/proc/sys/net/core/somaxconn") == "4096\n")
    }

    @Test func secondApplyKeepsOriginalValuesForRevert() throws {
        let node = try FakeNode()
        let tuner = node.tuner()
        _ = try tuner.apply(try tuner.plan(try Profile(name: "a", text: "net.core.somaxconn = 8192", file: "a")))
        _ = try tuner.apply(try tuner.plan(try Profile(name: "b", text: "net.core.somaxconn = 16384", file: "b")))
        #expect(node.read("/proc/sys/net/core/somaxconn") == "16384\n")
        _ = try tuner.revert()
        #expect(node.read("/proc/sys/net/core/somaxconn") == "4096\n")
    }

    @Test func nonInitialNamespaceSkipsGlobalKeys() throws {
        let node = try FakeNode()
        // netdev_max_backlog exists only in the initial namespace.
        try node.remove("/proc/sys/net/core/netdev_max_backlog")
        let tuner = node.tuner()
        #expect(!tuner.environment.initialNetworkNamespace)
        let plan = try tuner.plan(try profile())
        let skipped = plan.items.filter { $0.action == .skipGlobal }.map(\.key.name)
        #expect(skipped == ["net.core.netdev_max_backlog", "net.netfilter.nf_conntrack_max",
                            "sys.module.nf_conntrack.parameters.hashsize"])
        _ = try tuner.apply(plan)
        #expect(node.read("/proc/sys/net/netfilter/nf_conntrack_max") == "65536\n")
        #expect(node.read("/sys/module/nf_conntrack/parameters/hashsize") == "16384\n")
        #expect(node.read("/proc/sys/net/core/somaxconn") == "8192\n")
    }

    @Test func missingModuleIsBadInputAndChangesNothing() throws {
        var files = FakeNode.defaultFiles
        for key in files.keys where key.contains("netfilter") || key.contains("nf_conntrack") {
            files.removeValue(forKey: key)
        }
        let node = try FakeNode(files: files)
        let before = node.snapshot()
        let tuner = node.tuner()
        let message = configError { _ = try tuner.apply(try tuner.plan(try profile())) }
        #expect(message?.contains("needs kernel module nf_conntrack, which is not loaded") == true)
        #expect(node.snapshot() == before)
        #expect(!node.stateExists)
    }

    @Test func unknownProfileListsTheKnownOnes() {
        let message = configError { _ = try Tuner.loadProfile(named: "fast", directories: [repositoryProfiles]) }
        #expect(message
            == "--profile 'fast' is not a profile: expected one of default, ingress, low-latency, throughput")
    }
}

/// Profile files and directories that cannot be used are bad input that says what is wrong with them.
@Suite struct ProfileFileTests {
    final class Scratch {
        let base: String
        init() throws {
            base = FileManager.default.temporaryDirectory.appendingPathComponent("wtu-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(atPath: base) }
    }

    @Test func aDirectoryOrAnOversizedFileIsNamedNotListedAsUnknown() throws {
        let s = try Scratch()
        try FileManager.default.createDirectory(atPath: s.base + "/x.profile", withIntermediateDirectories: false)
        try "net.core.somaxconn = 4096\n".write(toFile: s.base + "/ok.profile", atomically: true, encoding: .utf8)
        try String(repeating: "# c\n", count: 300_000).write(toFile: s.base + "/big.profile", atomically: true,
                                                               encoding: .utf8)
        #expect(configError { _ = try Tuner.loadProfile(named: "x", directories: [s.base]) }
            == "--profile 'x': '\(s.base)/x.profile' is a directory: expected a readable regular file of at most "
            + "1048576 bytes")
        #expect(configError { _ = try Tuner.loadProfile(named: "big", directories: [s.base]) }?
            .hasPrefix("--profile 'big': '\(s.base)/big.profile' is 1200000 bytes: expected") == true)
        // Only loadable profiles are offered.
        #expect(configError { _ = try Tuner.loadProfile(named: "nosuch", directories: [s.base]) }
            == "--profile 'nosuch' is not a profile: expected one of big, ok")
    }

    @Test func aDirectorySettingThatIsAFileIsRefused() throws {
        let s = try Scratch()
        let file = s.base + "/f"
        try "".write(toFile: file, atomically: true, encoding: .utf8)
        try Tuner.checkDirectory(s.base, source: "--state-dir", purpose: "for tune-state.json")
        try Tuner.checkDirectory(s.base + "/not/yet", source: "--state-dir", purpose: "for tune-state.json")
        try Tuner.checkDirectory("relative-not-yet", source: "--state-dir", purpose: "for tune-state.json")
        #expect(configError { try Tuner.checkDirectory(file, source: "--state-dir", purpose: "for tune-state.json") }
            == "--state-dir '\(file)' is a file: expected a directory for tune-state.json")
        #expect(configError { try Tuner.checkDirectory(file + "/a/b", source: "w.conf:2 WEIR_STATE_DIR",
                                                       purpose: "for tune-state.json") }
            == "w.conf:2 WEIR_STATE_DIR '\(file)/a/b': '\(file)' is a file: expected a directory for tune-state.json")
        #expect(configError { try Tuner.checkDirectory("", source: "--state-dir", purpose: "for tune-state.json") }
            != nil)
    }
}

@Suite struct ShippedProfileTests {
    @Test(arguments: ["default", "ingress", "low-latency", "throughput"])
    func parsesAndEveryValueSaysWhy(name: String) throws {
        let profile = try Tuner.loadProfile(named: name, directories: [repositoryProfiles])
        for entry in profile.entries {
            #expect(!entry.comment.isEmpty, "\(name).profile:\(entry.line) \(entry.key.name) has no comment")
        }
        let text = try String(contentsOfFile: repositoryProfiles + "/\(name).profile", encoding: .utf8)
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where line.hasPrefix("conntrack.") {
            #expect(line.contains("#"), "\(name).profile:\(i + 1) parameter has no comment")
        }
    }

    @Test(arguments: ["default", "ingress", "low-latency", "throughput"])
    func coversTheIssueKeysOrSaysWhyNot(name: String) throws {
        let profile = try Tuner.loadProfile(named: name, directories: [repositoryProfiles])
        let keys = Set(profile.entries.map(\.key.name))
        for required in ["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "net.netfilter.nf_conntrack_max",
                         "sys.module.nf_conntrack.parameters.hashsize",
                         "net.netfilter.nf_conntrack_tcp_timeout_established",
                         "net.netfilter.nf_conntrack_tcp_timeout_close_wait", "net.ipv4.tcp_fin_timeout"] {
            #expect(keys.contains(required), "\(name) lacks \(required)")
        }
    }

    @Test func ingressDryRunAgainstAFakeNode() throws {
        let node = try FakeNode()
        let plan = try node.tuner().plan(try Tuner.loadProfile(named: "ingress", directories: [repositoryProfiles]))
        // 3 usable CPUs: max(65536 x 3, 262144) = 262144, hash 65536.
        #expect(plan.derivedConntrackMax == 262_144)
        #expect(plan.items.first { $0.key.name == KeyRegistry.hashSizeName }?.desired == SysctlValue(65_536))
        #expect(plan.items.first { $0.key.name == "net.ipv4.tcp_keepalive_time" }?.action == .notAvailable)
        #expect(node.snapshot() == (try FakeNode()).snapshot())
    }
}

@Suite struct StatusCollectTests {
    struct Refused: Error, CustomStringConvertible { var description: String { "EPERM" } }

    @Test func collectsFromFilesAndFallsBackWhenNetlinkIsRefused() throws {
        let node = try FakeNode()
        try node.write("/proc/net/netstat", "TcpExt: ListenOverflows ListenDrops\nTcpExt: 5 7\n")
        let refused = StatusNetlinkReaders(conntrackUsage: { throw Refused() }, conntrackCPUStats: { throw Refused() },
                                           table: { throw Refused() }, generation: { throw Refused() })
        let status = NodeStatus.collect(probe: NodeProbe(files: node.files), netlink: refused, proxyBacklog: 1024)
        #expect(status.conntrack == ConntrackUsage(entries: 12, maximum: 65536, source: "procfs"))
        #expect(status.conntrackCPUs == nil)
        #expect(status.conntrackStatsError == "EPERM")
        #expect(status.table == .unknown("EPERM"))
        #expect(status.listenOverflows == 5)
        #expect(status.listenDrops == 7)
        #expect(status.somaxconn == 4096)
        #expect(status.effectiveBacklog == 1024)
        #expect(status.cpu.usable == 3)
        #expect(status.warnings == ["accept queues overflowed 5 times (ListenOverflows): raise somaxconn and the "
            + "proxy backlog"])
    }
}
