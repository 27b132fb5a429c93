import Testing
import WeirCore
import WeirTestSupport

private func parse(_ text: String) throws -> Profile {
    try Profile(name: "t", text: text, file: "t.profile")
}

@Suite struct ProfileParserTests {
    @Test func parsesValuesMarkersAndComments() throws {
        let profile = try parse("""
            # header
            net.core.somaxconn = 65535 raise-only   # accept queue
            net.ipv4.ip_local_port_range = 10240\t65535   # ports

            conntrack.per_core = 65536  # per cpu
            net.netfilter.nf_conntrack_max = derived raise-only  # formula
            """)
        #expect(profile.entries.map(\.key.name) == [
            "net.core.somaxconn", "net.ipv4.ip_local_port_range", "net.netfilter.nf_conntrack_max",
        ])
        let somaxconn = try #require(profile.entry(named: "net.core.somaxconn"))
        #expect(somaxconn.desired == .literal(SysctlValue(65535)))
        #expect(somaxconn.raiseOnly)
        #expect(somaxconn.comment == "accept queue")
        #expect(somaxconn.line == 2)
        #expect(profile.entry(named: "net.ipv4.ip_local_port_range")?.desired == .literal(SysctlValue([10240, 65535])))
        #expect(profile.entry(named: "net.netfilter.nf_conntrack_max")?.desired == .derived)
        #expect(profile.conntrack.perCore == 65536)
        #expect(profile.conntrack.floor == ConntrackSizing.kubeProxyDefaults.floor)
    }

    @Test func unknownKeyNamesFileLineAndKey() {
        let message = configError { _ = try parse("# x\nnet.core.somaxcon = 10\n") }
        #expect(message == "t.profile:2 'net.core.somaxcon' is not a key weir knows: expected one "
            + "(see 'weir tune --list-keys')")
    }

    @Test func wrongShapeNamesTheExpectedShape() {
        #expect(configError { _ = try parse("net.core.somaxconn = lots") }
            == "t.profile:1 net.core.somaxconn 'lots' is not valid: expected an integer 128..2147483647")
        #expect(configError { _ = try parse("net.ipv4.ip_local_port_range = 60000 1024") }
            == "t.profile:1 net.ipv4.ip_local_port_range '60000 1024' is not valid: expected two integers "
            + "'low high' with 1024 <= low <= high <= 65535")
        #expect(configError { _ = try parse("net.ipv4.tcp_tw_reuse = 3") }?.contains("expected one of 0, 1, 2") == true)
        #expect(configError { _ = try parse("net.ipv4.tcp_slow_start_after_idle = 2") }?
            .contains("expected 0 or 1") == true)
        #expect(configError { _ = try parse("net.core.somaxconn = 1 2") } != nil)
    }

    @Test func otherMistakes() {
        #expect(configError { _ = try parse("net.core.somaxconn 10") }
            == "t.profile:1 'net.core.somaxconn 10' is not 'key = value': expected a line like "
            + "'net.core.somaxconn = 4096' or a # comment")
        #expect(configError { _ = try parse("net.core.somaxconn = 4096\nnet.core.somaxconn = 8192") }
            == "t.profile:2 'net.core.somaxconn' is set again (first on line 1): expected each key once")
        #expect(configError { _ = try parse("net.ipv4.ip_local_port_range = 1024 2048 raise-only") }?
            .contains("raise-only applies to") == true)
        #expect(configError { _ = try parse("net.core.somaxconn = derived") }?
            .contains("'derived' is only valid for") == true)
        #expect(configError { _ = try parse("conntrack.percore = 3") }?.contains("is not a parameter") == true)
        #expect(configError { _ = try parse("conntrack.min = 10\nconntrack.cap = 5") }
            == "t.profile:1 conntrack.min '10' is above conntrack.cap 5: expected min <= cap")
        #expect(configError { try Profile.validateName("../etc/passwd") }
            == "--profile '../etc/passwd' is not a profile name: expected letters, digits, '-' or '_' "
            + "(the NAME of a NAME.profile file)")
        #expect(configError { try Profile.validateName("a\nb", source: "w.conf:3 WEIR_PROFILE") }?
            .hasPrefix("w.conf:3 WEIR_PROFILE 'a\\nb' is not a profile name") == true)
    }

    /// Values are quoted with `quotedValue`: a NUL, a control character or a huge value cannot cut, split or
    /// flood the message.
    @Test func valuesInMessagesAreEscapedAndBounded() {
        #expect(configError { _ = try parse("net.core.somaxconn = 4096\0") }
            == "t.profile:1 net.core.somaxconn '4096\\0' is not valid: expected an integer 128..2147483647")
        #expect(configError { _ = try parse("net.core.somaxconn = 40\u{1}96") }?
            .contains("'40\\x0196' is not valid") == true)
        #expect(configError { _ = try parse("net.core.somaxconn = \u{1b}[31m4096") }?
            .contains("'\\x1b[31m4096' is not valid") == true)
        let huge = String(repeating: "9", count: 100_000)
        let message = configError { _ = try parse("net.core.somaxconn = " + huge) }
        #expect(message == "t.profile:1 net.core.somaxconn '" + String(repeating: "9", count: 64)
            + "'…(100000 bytes) is not valid: expected an integer 128..2147483647")
    }

    @Test func crlfLineEndsAreLineEnds() throws {
        let profile = try parse("# c\r\nnet.core.somaxconn = 4096 # why\r\nnet.ipv4.tcp_fin_timeout = 15\r\n")
        #expect(profile.entries.map(\.key.name) == ["net.core.somaxconn", "net.ipv4.tcp_fin_timeout"])
        #expect(profile.entry(named: "net.ipv4.tcp_fin_timeout")?.line == 3)
    }
}

@Suite struct TunePlanTests {
    let budget4 = CPUBudget(host: 16, quota: 4, cpuset: nil)

    func environment(initial: Bool = true, modules: Set<String> = ["nf_conntrack"]) -> TuneEnvironment {
        TuneEnvironment(initialNetworkNamespace: initial, loadedModules: modules, cpu: budget4)
    }

    @Test func actionsForEachCase() throws {
        let profile = try parse("""
            net.core.somaxconn = 4096 raise-only
            net.ipv4.tcp_max_syn_backlog = 8192 raise-only
            net.ipv4.tcp_fin_timeout = 15
            net.ipv4.ip_local_port_range = 10240 65535
            net.ipv4.tcp_keepalive_time = 300
            net.core.netdev_max_backlog = 5000
            """)
        let current = [
            "/proc/sys/net/core/somaxconn": "65535\n",
            "/proc/sys/net/ipv4/tcp_max_syn_backlog": "1024\n",
            "/proc/sys/net/ipv4/tcp_fin_timeout": "15\n",
            "/proc/sys/net/ipv4/ip_local_port_range": "32768\t60999\n",
            "/proc/sys/net/core/netdev_max_backlog": "1000\n",
        ]
        let plan = try TunePlan.make(profile: profile, environment: environment(), read: { current[$0.path] })
        let actions = Dictionary(uniqueKeysWithValues: plan.items.map { ($0.key.name, $0.action) })
        #expect(actions["net.core.somaxconn"] == .raiseOnlySkip)
        #expect(actions["net.ipv4.tcp_max_syn_backlog"] == .set)
        #expect(actions["net.ipv4.tcp_fin_timeout"] == .keep)
        #expect(actions["net.ipv4.ip_local_port_range"] == .set)
        #expect(actions["net.ipv4.tcp_keepalive_time"] == .notAvailable)
        #expect(actions["net.core.netdev_max_backlog"] == .set)
        #expect(plan.changes.map(\.key.name) == [
            "net.core.netdev_max_backlog", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_max_syn_backlog",
        ])
        #expect(plan.table() == """
            KEY                           CURRENT      DESIRED      ACTION           NOTE
            net.core.netdev_max_backlog   1000         5000         set
            net.core.somaxconn            65535        4096         raise-only skip  node already has 65535, higher than 4096
            net.ipv4.ip_local_port_range  32768 60999  10240 65535  set
            net.ipv4.tcp_fin_timeout      15           15           keep
            net.ipv4.tcp_keepalive_time   -            300          not available    /proc/sys/net/ipv4/tcp_keepalive_time does not exist or is not a number here
            net.ipv4.tcp_max_syn_backlog  1024         8192         set

            """)
    }

    @Test func globalKeysAreSkippedInANonInitialNamespace() throws {
        let profile = try parse("net.core.somaxconn = 8192\nnet.netfilter.nf_conntrack_max = derived raise-only")
        let current = ["/proc/sys/net/core/somaxconn": "4096", "/proc/sys/net/netfilter/nf_conntrack_max": "65536"]
        let plan = try TunePlan.make(profile: profile, environment: environment(initial: false),
                                     read: { current[$0.path] })
        #expect(plan.items.map(\.action) == [.set, .skipGlobal])
        #expect(plan.items[1].note.contains("global key"))
    }

    @Test func derivedConntrackFollowsCPUBudgetAndHashFollowsMax() throws {
        let profile = try parse("""
            net.netfilter.nf_conntrack_max = derived raise-only
            sys.module.nf_conntrack.parameters.hashsize = derived raise-only
            conntrack.per_core = 65536
            conntrack.min = 131072
            """)
        let current = ["/proc/sys/net/netfilter/nf_conntrack_max": "131072",
                       "/sys/module/nf_conntrack/parameters/hashsize": "32768"]
        let plan = try TunePlan.make(profile: profile, environment: environment(), read: { current[$0.path] })
        #expect(plan.derivedConntrackMax == 262_144)   // 65536 x 4 usable CPUs, not x 16 host CPUs
        #expect(plan.items.map(\.desired) == [SysctlValue(262_144), SysctlValue(65_536)])
        #expect(plan.items.map(\.action) == [.set, .set])
    }

    /// Found by the profile fuzz target's check that what a plan writes fits its key (the input is kept as
    /// Tests/Fuzz/regressions/profile/derived-conntrack-beyond-key-range): derived values were not bounded.
    @Test func derivedValuesStayWithinTheirKeysRanges() throws {
        let current = ["/proc/sys/net/netfilter/nf_conntrack_max": "262144",
                       "/sys/module/nf_conntrack/parameters/hashsize": "65536"]
        let huge = try parse("""
            conntrack.cap = 9999999999
            conntrack.per_core = 9999999999
            net.netfilter.nf_conntrack_max = derived
            sys.module.nf_conntrack.parameters.hashsize = derived
            """)
        let high = try TunePlan.make(profile: huge, environment: environment(), read: { current[$0.path] })
        #expect(high.items.map(\.desired) == [SysctlValue(2_147_483_647), SysctlValue(1 << 28)])
        #expect(high.derivedConntrackMax == 2_147_483_647)
        let tiny = try parse("""
            conntrack.min = 10
            conntrack.per_core = 1
            net.netfilter.nf_conntrack_max = derived
            sys.module.nf_conntrack.parameters.hashsize = derived
            """)
        let low = try TunePlan.make(profile: tiny, environment: environment(), read: { current[$0.path] })
        #expect(low.items.map(\.desired) == [SysctlValue(1024), SysctlValue(1024)])
    }

    @Test func hashFollowsHigherExistingMaxUnderRaiseOnly() throws {
        let profile = try parse("""
            net.netfilter.nf_conntrack_max = derived raise-only
            sys.module.nf_conntrack.parameters.hashsize = derived raise-only
            """)
        let current = ["/proc/sys/net/netfilter/nf_conntrack_max": "1048576",
                       "/sys/module/nf_conntrack/parameters/hashsize": "16384"]
        let plan = try TunePlan.make(profile: profile, environment: environment(), read: { current[$0.path] })
        #expect(plan.items[0].action == .raiseOnlySkip)
        #expect(plan.items[1].desired == SysctlValue(262_144))
        #expect(plan.items[1].action == .set)
    }

    @Test func raiseOnlyTriplesRaiseComponentWise() throws {
        let profile = try parse("net.ipv4.tcp_rmem = 4096 131072 16777216 raise-only")
        let higher = try TunePlan.make(profile: profile, environment: environment(),
                                       read: { _ in "4096\t131072\t33554432" })
        #expect(higher.items[0].action == .raiseOnlySkip)
        let mixed = try TunePlan.make(profile: profile, environment: environment(),
                                      read: { _ in "4096\t87380\t33554432" })
        #expect(mixed.items[0].action == .set)
        #expect(mixed.items[0].desired == SysctlValue([4096, 131072, 33554432]))
    }

    @Test func missingModuleIsBadInputNamingTheModule() throws {
        let profile = try parse("net.netfilter.nf_conntrack_tcp_timeout_established = 86400")
        #expect(configError {
            _ = try TunePlan.make(profile: profile, environment: environment(modules: []), read: { _ in "1" })
        } == "profile t: net.netfilter.nf_conntrack_tcp_timeout_established needs kernel module nf_conntrack, "
            + "which is not loaded; expected it loaded (modprobe nf_conntrack) or the key removed")
    }

    @Test func stateKeepsTheOldestPreviousValue() throws {
        let profile = try parse("net.core.somaxconn = 8192\nnet.ipv4.tcp_fin_timeout = 15")
        var values = ["/proc/sys/net/core/somaxconn": "4096", "/proc/sys/net/ipv4/tcp_fin_timeout": "60"]
        let first = try TunePlan.make(profile: profile, environment: environment(), read: { values[$0.path] })
        let state1 = TuneState.empty.merging(first)
        values["/proc/sys/net/core/somaxconn"] = "8192"
        values["/proc/sys/net/ipv4/tcp_fin_timeout"] = "30"
        let second = try TunePlan.make(profile: profile, environment: environment(), read: { values[$0.path] })
        let state2 = state1.merging(second)
        #expect(state2.saved.map(\.previous) == ["4096", "60"])
        #expect(state2.profiles == ["t", "t"])
    }
}

@Suite struct NodeStatusTests {
    @Test func netstatParser() {
        let text = """
            TcpExt: SyncookiesSent ListenOverflows ListenDrops
            TcpExt: 0 17 21
            IpExt: InNoRoutes
            IpExt: 3
            """
        let counters = NetstatCounters.parse(text)
        #expect(counters["TcpExt"]?["ListenOverflows"] == 17)
        #expect(counters["TcpExt"]?["ListenDrops"] == 21)
        #expect(counters["IpExt"]?["InNoRoutes"] == 3)
    }

    @Test func reportAndMetricsAreStable() {
        var cpu0 = ConntrackCPUStats(cpu: 0)
        cpu0.insertFailed = 2
        var cpu1 = ConntrackCPUStats(cpu: 1)
        cpu1.drop = 1
        let status = NodeStatus(
            initialNetworkNamespace: true, cpu: CPUBudget(host: 2, quota: nil, cpuset: nil),
            conntrack: ConntrackUsage(entries: 850, maximum: 1000, source: "ctnetlink"),
            conntrackCPUs: [cpu1, cpu0], conntrackStatsError: nil, listenOverflows: 3, listenDrops: 3,
            somaxconn: 4096, tcpMaxSynBacklog: 4096, proxyBacklog: 65535,
            table: .present(flags: 0x6, ownerPort: 1234), generation: 7)
        let report = status.report()
        #expect(report.contains("conntrack usage               85.00%"))
        #expect(report.contains("effective 4096, capped by somaxconn"))
        #expect(report.contains("table owned                   yes"))
        #expect(report.contains("warning: conntrack table 85.00% full"))
        #expect(report.contains("warning: conntrack dropped flows (insert_failed 2, drop 1, early_drop 0)"))
        #expect(report.contains("warning: accept queues overflowed 3 times"))
        let names = status.metricSamples.map { $0.name + $0.labelText }
        #expect(names.contains("weir_conntrack_insert_failed_total{cpu=\"0\"}"))
        #expect(names == names.sorted())
        #expect(status.metricSamples.first { $0.name == "weir_conntrack_usage_ratio" }?.value == 0.85)
    }
}
