import Foundation
import Testing

/// The `weir proxy` command line: bad flags are one line and exit 2; --help explains the dangerous settings.
@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct ProxyCommandTests {
    @Test(arguments: [
        (["--proxy-port", "0"], "weir: --proxy-port '0' is not a port: expected 1 to 65535"),
        (["-m", "NAT"], "weir: --mode 'NAT' is not a mode: expected REDIRECT or TPROXY"),
        (["--idle-timeout", "forever"],
         "weir: --idle-timeout 'forever' is not a duration: expected 0 or a number with ms, s, m or h, like 5s"),
        (["--max-connections", "0"], "weir: --max-connections '0' is not a positive count: expected 1 to 10000000"),
    ])
    func badFlagExitsTwoWithOneLine(arguments: [String], message: String) throws {
        try withNamespace(prefix: "wtp") { ns in
            let r = try ns.weir(["proxy"] + arguments)
            #expect(r.status == 2)
            #expect(r.stderr == message + "\n")
        }
    }

    @Test func helpWarnsAboutIdleTimeoutZero() throws {
        let r = try runCommand([weirBinary, "proxy", "--help"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("dangerous"))
        for flag in ["--proxy-port", "--inbound-capture-port", "--mode", "--proxy-uid", "--proxy-gid", "--tproxy-mark",
                     "--connect-timeout", "--idle-timeout", "--max-connections", "--buffer-limit", "--drain-timeout",
                     "--workers"] {
            #expect(r.stdout.contains(flag), "\(flag)")
        }
    }

    @Test func workersFollowUsableCPUsAndBacklogFollowsSomaxconn() throws {
        try withNamespace(prefix: "wtp") { ns in
            try ns.exec(["sysctl", "-qw", "net.core.somaxconn=777"])
            // One CPU in the affinity mask: one worker, whatever the host has.
            let proxy = try BackgroundProcess(ns, ["taskset", "-c", "0", weirBinary, "proxy"])
            defer { proxy.stop() }
            try proxy.waitFor("event=started")
            #expect(proxy.output.contains(" workers=1 "))
            #expect(proxy.output.contains(" backlog=777 "))
            // Worker threads carry their names, as top -H and /proc show them.
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(proxy.pid)/task")) ?? []
            let names = tasks.compactMap {
                try? String(contentsOfFile: "/proc/\(proxy.pid)/task/\($0)/comm", encoding: .utf8)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            }
            #expect(names.filter { $0.hasPrefix("weir-worker-") } == ["weir-worker-0"], "threads: \(names)")
            // Listening sockets show their backlog as Send-Q: 4 listeners (2 ports x 2 families), all at 777.
            let listeners = try ns.exec(["ss", "-Hltn"]).split(separator: "\n")
            #expect(listeners.count == 4)
            #expect(listeners.allSatisfy { $0.split(separator: " ", omittingEmptySubsequences: true)[2] == "777" })
        }
    }

    @Test func anotherUnprivilegedUserCannotOwnUpstreamsAndExitsOne() throws {
        try withNamespace(prefix: "wtp") { ns in
            let r = try ns.run(["timeout", "10", "setpriv", "--reuid", "4244", "--regid", "4244", "--clear-groups",
                                weirBinary, "proxy"])
            #expect(r.status == 1)
            // The worker reports to the server, which exits 1 with one line; a worker never exits the process.
            #expect(r.stderr.contains(" cannot own upstream sockets as uid 1337 gid 1337: run as root or as that user"),
                    "\(r.stderr)")
        }
    }

    @Test func portInUseIsARuntimeFailure() throws {
        try withNamespace(prefix: "wtp") { ns in
            // Another program (not weir) holds the outbound capture port.
            let holder = try BackgroundProcess(ns, ["python3", "-c", """
                import socket, time
                s = socket.socket(); s.bind(("0.0.0.0", 15001)); s.listen(1); print("READY", flush=True)
                time.sleep(60)
                """])
            defer { holder.stop() }
            try holder.waitFor("READY")
            let r = try ns.run([weirBinary, "proxy", "--workers", "1"])
            #expect(r.status == 1)
            #expect(r.stderr.contains("bind 0.0.0.0:15001: EADDRINUSE"), "\(r.stderr)")
        }
    }

    @Test func oneDataPlanePerNamespace() throws {
        try withNamespace(prefix: "wtp") { ns in
            let first = try startProxy(ns, ["--workers", "1"])
            defer { first.stop() }
            // A second proxy would share the ports through SO_REUSEPORT and take half the connections.
            for args in [["proxy", "--workers", "1"], ["run", "--admin-address", "127.0.0.1:15029"]] {
                let r = try ns.weir(args)
                #expect(r.status == 1, "\(args)")
                #expect(r.stderr.contains("another weir data plane runs in this network namespace: pid \(first.pid) "),
                        "\(r.stderr)")
                #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
            }
            #expect(try ns.exec(["nft", "list", "ruleset"]).isEmpty)
        }
    }
}
