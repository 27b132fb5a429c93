import Foundation
import Testing

/// A node namespace (198.18.0.2) next to a "cluster" namespace that holds the API server (198.18.0.1) and an
/// application server (198.18.0.3), both serving the test echo server.
private func withNodeAndCluster<T>(_ body: (TestNamespace) throws -> T) throws -> T {
    try withNamespace(prefix: "wtk") { node in
        let cluster = try TestNamespace(prefix: "wtk")
        node.serverSide = cluster
        let tag = String(UInt32.random(in: 0...0xffff), radix: 16)
        try node.link(to: cluster, localName: "wn\(tag)", peerName: "wk\(tag)",
                      localAddresses: ["198.18.0.2/24"], peerAddresses: ["198.18.0.1/24", "198.18.0.3/24"])
        let servers = try startServer(node, addresses: ["198.18.0.1", "198.18.0.3"])
        defer { servers.stop() }
        return try body(node)
    }
}

/// The client's result line, or nil when the connection failed (refused: captured with no proxy listening).
private func reach(_ ns: TestNamespace, _ host: String) -> String? {
    try? client(ns, "peer", host)
}

private let direct = "peer=198.18.0.2 echo=True eof=True"

/// Kubernetes: a node is never stranded. The control path stays out of capture, and repeated failed starts remove the
/// capture, each checked with real connections through weir's own rules while weir is down.
@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct KubernetesNodeTests {
    /// weir is killed (the persistent table stays, nothing listens on 15001): the API server the pod was told about
    /// is still reached directly, everything else captured is refused. With the exclusion turned off, the API server
    /// is refused too: what a crash-looping weir did to the kubelet before.
    @Test(arguments: [true, false])
    func theAPIServerIsReachedDirectlyWhileWeirIsDown(excluded: Bool) throws {
        try withNodeAndCluster { node in
            let agent = try startAgent(node, ["-i", "198.18.0.0/15", "--drain-timeout", "1s",
                                              "--exclude-control-path", "\(excluded)"],
                                       environment: ["KUBERNETES_SERVICE_HOST=198.18.0.1",
                                                     "KUBERNETES_SERVICE_PORT=443"])
            defer { agent.stop() }
            let table = try node.exec(["nft", "list", "table", "inet", "weir"])
            #expect(table.contains("198.18.0.1") == excluded, "\(table)")
            #expect(reach(node, "198.18.0.1") == direct)
            #expect(reach(node, "198.18.0.3") == direct)  // through the proxy, from the node's address

            agent.signal(SIGKILL)
            agent.wait()
            #expect(try node.exec(["nft", "list", "tables"]).contains("table inet weir"))
            #expect(reach(node, "198.18.0.1") == (excluded ? direct : nil))
            #expect(reach(node, "198.18.0.3") == nil)
        }
    }

    /// `--fail-open-after 3`: after a crash, three starts that never get ready (the admin port is taken) leave the
    /// capture in place; the fourth removes it and traffic flows directly. A start that reaches ready resets the
    /// count.
    @Test func repeatedFailedStartsRemoveTheCaptureAndASuccessResetsTheCount() throws {
        try withNodeAndCluster { node in
            let state = NSTemporaryDirectory() + "wtk-state-\(UInt32.random(in: 0...UInt32.max))"
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: false,
                                                    attributes: [.posixPermissions: 0o700])
            defer { try? FileManager.default.removeItem(atPath: state) }
            let history = state + "/failed-starts"
            func starts() -> Int {
                ((try? String(contentsOfFile: history, encoding: .utf8)) ?? "").split(separator: "\n").count
            }
            let args = ["-i", "198.18.0.0/15", "--drain-timeout", "1s", "--fail-open-after", "3",
                        "--fail-open-window", "10m", "--state-dir", state]

            // Running, then killed: the table stays, captured traffic is refused.
            let agent = try startAgent(node, args)
            #expect(starts() == 0)
            agent.signal(SIGKILL)
            agent.wait()
            #expect(reach(node, "198.18.0.3") == nil)

            // Three starts that fail (another process holds the admin port): counted, the capture stays.
            let blocker = try BackgroundProcess(node, ["/usr/bin/python3", "-u", "-c", """
                import socket, time
                s = socket.socket(); s.bind(("127.0.0.1", 15020)); s.listen(); print("LISTENING"); time.sleep(60)
                """])
            defer { blocker.stop() }
            try blocker.waitFor("LISTENING")
            for n in 1...3 {
                let r = try node.weir(["run"] + args)
                #expect(r.status == 1 && r.stderr.contains("15020"), "\(r.stdout)\(r.stderr)")
                #expect(starts() == n)
                #expect(reach(node, "198.18.0.3") == nil)
            }

            // The fourth fails open: the capture is gone, traffic flows directly, nothing more is recorded.
            let open = try node.weir(["run"] + args)
            #expect(open.status == 1 && open.stderr.contains("failed open: 3 starts within 600s"),
                    "\(open.stdout)\(open.stderr)")
            #expect(open.stdout.contains("event=fail_open starts=3"), "\(open.stdout)")
            #expect(!(try node.exec(["nft", "list", "tables"]).contains("table inet weir")))
            #expect(reach(node, "198.18.0.3") == direct)
            #expect(starts() == 3)

            // A success resets the count: with two failures left in the window, a start that gets ready empties it.
            blocker.stop()
            let now = Int(Date().timeIntervalSince1970)
            try "\(now - 5)\n\(now - 2)\n".write(toFile: history, atomically: true, encoding: .utf8)
            let again = try startAgent(node, args)
            defer { again.stop() }
            #expect(starts() == 0)
            #expect(reach(node, "198.18.0.3") == direct)
        }
    }

    /// Bad fail-open flags are bad input: one line naming the value, exit 2, nothing installed.
    @Test func badFailOpenFlagsAreRefusedBeforeAnythingIsRecorded() throws {
        try withNamespace(prefix: "wtk") { node in
            let state = NSTemporaryDirectory() + "wtk-state-\(UInt32.random(in: 0...UInt32.max))"
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: false,
                                                    attributes: [.posixPermissions: 0o700])
            defer { try? FileManager.default.removeItem(atPath: state) }
            for (args, line) in [
                (["--fail-open-after", "0"], "weir: --fail-open-after '0' is not a count: expected a number of "
                    + "starts from 1 to 999999, e.g. 5\n"),
                (["--fail-open-after", "3", "--fail-open-window", "10ms"],
                 "weir: --fail-open-window '10ms' is too short: expected at least 1s, like 10m\n"),
                (["--fail-open-after", "3", "--network-namespace", "/run/netns/\(node.name)"],
                 "weir: --fail-open-after with --network-namespace is not supported: expected one of them (fail "
                    + "open removes the capture of the namespace weir starts in)\n"),
            ] {
                // Under timeout: an agent that starts instead of refusing is a failure here, not a hang.
                let r = try node.run(["timeout", "10", weirBinary, "run", "--state-dir", state] + args)
                #expect(r.status == 2 && r.stderr == line, "\(r.status) \(r.stderr)")
                // Bad fail-open values are refused before the start is recorded (the namespace check comes after).
                if !args.contains("--network-namespace") {
                    #expect(!FileManager.default.fileExists(atPath: state + "/failed-starts"))
                }
            }
            #expect(!(try node.exec(["nft", "list", "tables"]).contains("weir")))
        }
    }
}
