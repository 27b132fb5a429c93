import Foundation
import Testing

/// `weir tune` and `weir status` against the real kernel, only ever inside throwaway network namespaces.
/// Only per-namespace keys are written; global keys must come out as skipped, and the host's values are checked
/// to be unchanged.
@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct TuningKernelTests {
    /// A temporary directory with a profiles/ and a state/ directory, removed afterwards.
    final class Scratch {
        let base: String
        var profiles: String { base + "/profiles" }
        var state: String { base + "/state" }

        init() throws {
            base = FileManager.default.temporaryDirectory.appendingPathComponent("wtt-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: base + "/profiles", withIntermediateDirectories: true)
        }

        func profile(_ name: String, _ text: String) throws {
            try text.write(toFile: profiles + "/\(name).profile", atomically: true, encoding: .utf8)
        }

        var stateExists: Bool { FileManager.default.fileExists(atPath: state + "/tune-state.json") }

        deinit { try? FileManager.default.removeItem(atPath: base) }
    }

    static let watched = ["net/core/somaxconn", "net/ipv4/ip_local_port_range", "net/ipv4/tcp_fin_timeout",
                          "net/core/netdev_max_backlog", "net/netfilter/nf_conntrack_max"]

    func hostValues() throws -> [String: String] {
        var values: [String: String] = [:]
        for key in Self.watched {
            values[key] = try String(contentsOfFile: "/proc/sys/" + key, encoding: .utf8)
        }
        values["hashsize"] = try String(contentsOfFile: "/sys/module/nf_conntrack/parameters/hashsize",
                                        encoding: .utf8)
        return values
    }

    func value(_ ns: TestNamespace, _ key: String) throws -> String {
        try ns.exec(["cat", "/proc/sys/" + key]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    let profileText = """
        net.core.somaxconn = 8192 raise-only                 # test: per-netns
        net.ipv4.ip_local_port_range = 20000 40000           # test: per-netns
        net.ipv4.tcp_fin_timeout = 17                        # test: per-netns
        net.core.netdev_max_backlog = 4321                   # test: global, must be skipped
        net.netfilter.nf_conntrack_max = derived raise-only  # test: global, must be skipped
        sys.module.nf_conntrack.parameters.hashsize = derived raise-only  # test: global, must be skipped
        """

    @Test func applyAndRevertInANamespaceLeaveTheHostAlone() throws {
        let host = try hostValues()
        let scratch = try Scratch()
        try scratch.profile("nstest", profileText)
        try withNamespace(prefix: "wtt") { ns in
            let before = try Self.watched.prefix(3).map { try value(ns, $0) }
            let common = ["--profiles-dir", scratch.profiles, "--state-dir", scratch.state]

            let dry = try ns.weir(["tune", "--profile", "nstest", "--dry-run"] + common)
            #expect(dry.status == 0, "\(dry.stderr)")
            #expect(dry.stdout.contains("dry run: nothing changed"))
            #expect(try Self.watched.prefix(3).map { try value(ns, $0) } == before)
            #expect(!scratch.stateExists)

            let apply = try ns.weir(["tune", "--profile", "nstest"] + common)
            #expect(apply.status == 0, "\(apply.stdout)\(apply.stderr)")
            #expect(try value(ns, "net/core/somaxconn") == "8192")
            #expect(try value(ns, "net/ipv4/ip_local_port_range") == "20000\t40000")
            #expect(try value(ns, "net/ipv4/tcp_fin_timeout") == "17")
            #expect(apply.stdout.contains("skipped global keys net.core.netdev_max_backlog, "
                + "net.netfilter.nf_conntrack_max, sys.module.nf_conntrack.parameters.hashsize"))
            #expect(scratch.stateExists)
            #expect(try hostValues() == host)

            let again = try ns.weir(["tune", "--profile", "nstest"] + common)
            #expect(again.status == 0)
            #expect(again.stdout.contains("nothing to change"))

            let revert = try ns.weir(["tune", "--revert"] + common)
            #expect(revert.status == 0, "\(revert.stdout)\(revert.stderr)")
            #expect(try Self.watched.prefix(3).map { try value(ns, $0) } == before)
            #expect(!scratch.stateExists)
            #expect(try hostValues() == host)
        }
        #expect(try hostValues() == host)
    }

    @Test func badInputExitsTwoWithOneLineAndChangesNothing() throws {
        let host = try hostValues()
        let scratch = try Scratch()
        try scratch.profile("unknownkey", "net.core.somaxconn = 8192  # ok\nnet.core.somaxconnn = 1  # typo\n")
        try scratch.profile("badshape", "net.core.somaxconn = 8192  # ok\nnet.ipv4.ip_local_port_range = 40000  # x\n")
        try withNamespace(prefix: "wtt") { ns in
            let before = try value(ns, "net/core/somaxconn")
            let common = ["--profiles-dir", scratch.profiles, "--state-dir", scratch.state]
            let cases: [([String], String)] = [
                (["tune", "--profile", "nosuch"] + common,
                 "--profile 'nosuch' is not a profile: expected one of badshape"),
                (["tune", "--profile", "unknownkey"] + common,
                 "unknownkey.profile:2 'net.core.somaxconnn' is not a key weir knows"),
                (["tune", "--profile", "badshape"] + common,
                 "badshape.profile:2 net.ipv4.ip_local_port_range '40000' is not valid: expected two integers"),
            ]
            for (arguments, expected) in cases {
                let result = try ns.weir(arguments)
                #expect(result.status == 2, "\(arguments)")
                #expect(result.stderr.contains(expected), "\(result.stderr)")
                #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
                #expect(try value(ns, "net/core/somaxconn") == before)
                #expect(!scratch.stateExists)
            }
        }
        #expect(try hostValues() == host)
    }

    /// Parses `ITEM  VALUE ...` rows of `weir status`.
    /// Conntrack only tracks a namespace's traffic once a rule there needs it.
    func trackConnections(_ ns: TestNamespace) throws {
        try ns.exec(["nft", "-f", "-"], input: """
            table inet wtt {
                chain out {
                    type filter hook output priority 0;
                    ct state new counter
                }
            }
            """)
    }

    func statusValue(_ output: String, _ item: String) -> String? {
        for line in output.split(separator: "\n") where line.hasPrefix(item + "  ") {
            return line.dropFirst(item.count).split(separator: " ").first.map(String.init)
        }
        return nil
    }

    @Test func fillingConntrackMovesCountAndUsage() throws {
        try withNamespace(prefix: "wtt") { ns in
            try trackConnections(ns)
            let first = try ns.weir(["status"])
            #expect(first.status == 0, "\(first.stderr)")
            let entries0 = try #require(Int(statusValue(first.stdout, "conntrack entries") ?? ""))
            let usage0 = try #require(Double(statusValue(first.stdout, "conntrack usage")?.dropLast() ?? ""))
            #expect(statusValue(first.stdout, "table inet weir") == "not")   // "not installed"

            // 600 UDP flows over loopback, each to its own destination port so no two share a tuple (nothing
            // listens; the unreplied entries stay for the UDP timeout).
            try ns.exec(["bash", "-c", "for i in $(seq 20001 20600); do echo x > /dev/udp/127.0.0.1/$i; done; true"])
            let second = try ns.weir(["status"])
            #expect(second.status == 0)
            let entries1 = try #require(Int(statusValue(second.stdout, "conntrack entries") ?? ""))
            let usage1 = try #require(Double(statusValue(second.stdout, "conntrack usage")?.dropLast() ?? ""))
            let kernelCount = try #require(Int(try value(ns, "net/netfilter/nf_conntrack_count")))
            #expect(entries1 >= entries0 + 600)
            #expect(abs(kernelCount - entries1) <= 5)
            #expect(usage1 > usage0)
            #expect(second.stdout.contains("from ctnetlink"))
            #expect(second.stdout.contains("CPU  FOUND"))
            print("conntrack fill: entries \(entries0) -> \(entries1), usage \(usage0)% -> \(usage1)%")
        }
    }

    @Test func perCPUStatisticsMatchConntrackTool() throws {
        try withNamespace(prefix: "wtt") { ns in
            try trackConnections(ns)
            // 40 TCP segments with SYN and FIN both set over loopback: conntrack counts them as invalid.
            try ns.exec(["python3", "-c", """
                import socket, struct
                s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
                for i in range(40):
                    s.sendto(struct.pack("!HHIIBBHHH", 40000 + i, 9, 1, 0, 5 << 4, 0x03, 1024, 0, 0), ("127.0.0.1", 0))
                """])
            let status = try ns.weir(["status"])
            let tool = try ns.exec(["conntrack", "-S"])
            // conntrack -S: "cpu=0   \tfound=0 invalid=80 ..." -> per CPU, per counter.
            var expected: [String: [String: String]] = [:]
            for line in tool.split(separator: "\n") {
                let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map { $0.split(separator: "=") }
                guard let cpu = fields.first, cpu.count == 2, cpu[0] == "cpu" else { continue }
                expected[String(cpu[1])] = Dictionary(uniqueKeysWithValues: fields.dropFirst().compactMap {
                    $0.count == 2 ? (String($0[0]), String($0[1])) : nil
                })
            }
            let lines = status.stdout.split(separator: "\n")
            let header = try #require(lines.first { $0.hasPrefix("CPU  ") }).split(separator: " ").map(String.init)
            var seen: [String: [String: String]] = [:]
            for line in lines where line.first?.isNumber == true {
                let cells = line.split(separator: " ").map(String.init)
                guard cells.count == header.count else { continue }
                var row: [String: String] = [:]
                for (name, value) in zip(header.dropFirst(), cells.dropFirst()) {
                    row[name.lowercased().replacingOccurrences(of: "_", with: "")] = value
                }
                seen[cells[0]] = row
            }
            #expect(seen.keys.sorted() == expected.keys.sorted())
            var invalidTotal = 0
            for (cpu, counters) in expected {
                for name in ["found", "invalid", "insert", "insert_failed", "drop", "early_drop", "error",
                             "search_restart", "clash_resolve", "chaintoolong"] {
                    let key = name.replacingOccurrences(of: "_", with: "")
                    #expect(seen[cpu]?[key] == counters[name], "cpu \(cpu) \(name)")
                }
                invalidTotal += Int(counters["invalid"] ?? "0") ?? 0
            }
            #expect(invalidTotal >= 40)
        }
    }

    /// Creates `table inet weir` with the owner flag over raw nfnetlink, runs the command given as arguments while
    /// the owning socket is open, prints its output and then the owning netlink port. nft 1.0.6 cannot set the flag.
    static let ownedTableScript = #"""
        import socket, struct, subprocess, sys
        def nlattr(t, data):
            l = 4 + len(data)
            return struct.pack("=HH", l, t) + data + b"\0" * ((4 - l % 4) % 4)
        def msg(t, flags, seq, family, res_id, payload=b""):
            body = struct.pack("=BBH", family, 0, socket.htons(res_id)) + payload
            return struct.pack("=IHHII", 16 + len(body), t, flags, seq, 0) + body
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)
        s.bind((0, 0))
        attrs = nlattr(1, b"weir\0") + nlattr(2, struct.pack("!I", 0x2))
        batch = msg(0x10, 1, 1, 0, 10) + msg((10 << 8) | 0, 1 | 0x400 | 4, 2, 1, 0, attrs) + msg(0x11, 1, 3, 0, 10)
        s.send(batch)
        reply = s.recv(65536)
        err = struct.unpack("=i", reply[16:20])[0]
        if err != 0:
            sys.exit("create owned table: errno %d" % -err)
        out = subprocess.run(sys.argv[1:], capture_output=True, text=True)
        print(out.stdout, end="")
        print("owner-port %d" % s.getsockname()[0])
        """#

    @Test func statusSeesAnOwnedTable() throws {
        let scratch = try Scratch()
        let script = scratch.base + "/owned.py"
        try Self.ownedTableScript.write(toFile: script, atomically: true, encoding: .utf8)
        try withNamespace(prefix: "wtt") { ns in
            let output = try ns.exec(["python3", script, weirBinary, "status"])
            #expect(statusValue(output, "table inet weir") == "installed")
            #expect(statusValue(output, "table owned") == "yes")
            let port = try #require(output.split(separator: "\n").last?.split(separator: " ").last)
            #expect(output.contains("netlink port \(port)"))
            // The owner exited: the kernel removed the table with it.
            let after = try ns.weir(["status"])
            #expect(statusValue(after.stdout, "table inet weir") == "not")
        }
    }

    @Test func statusSeesTheWeirTableAndGeneration() throws {
        try withNamespace(prefix: "wtt") { ns in
            let before = try ns.weir(["status"])
            let gen0 = try #require(UInt32(statusValue(before.stdout, "nftables generation") ?? ""))
            try ns.exec(["nft", "add", "table", "inet", "weir"])
            let after = try ns.weir(["status"])
            #expect(statusValue(after.stdout, "table inet weir") == "installed")
            #expect(statusValue(after.stdout, "table owned") == "no")
            let gen1 = try #require(UInt32(statusValue(after.stdout, "nftables generation") ?? ""))
            #expect(gen1 > gen0)
        }
    }
}
