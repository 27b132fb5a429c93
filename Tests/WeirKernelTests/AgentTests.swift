import Foundation
import Testing

/// `weir run` end to end: capture + proxy + admin endpoints in a pod namespace wired to a peer.
@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct AgentTests {
    func get(_ ns: TestNamespace, _ path: String) throws -> (Int, String) { try adminGet(ns, path) }

    @Test func runCapturesProxiesServesHealthAndMetricsAndDrains() throws {
        let pod = try TestNamespace(prefix: "wta")
        let peer = try TestNamespace(prefix: "wta")
        defer { pod.delete(); peer.delete() }
        try pod.link(to: peer, localName: "eth0", peerName: "eth0",
                     localAddresses: ["198.18.0.1/24", "2001:db8::1/64"], peerAddresses: ["198.18.0.2/24", "2001:db8::2/64"])
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        server.arguments = ["netns", "exec", peer.name, "/usr/bin/python3", CaptureTopology.probeScript, "serve", "peer", "80"]
        server.standardOutput = FileHandle.nullDevice
        try server.run()
        defer { server.terminate() }

        let agent = Process()
        agent.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        agent.arguments = ["netns", "exec", pod.name, weirBinary, "run", "-i", "198.18.0.0/15,2001:db8::/32", "-b", "*",
                           "--drain-timeout", "2s", "--admin-address", "127.0.0.1:15020"]
        let errors = Pipe()
        agent.standardError = errors
        agent.standardOutput = FileHandle.nullDevice
        try agent.run()
        var log = ""
        let deadline = Date().addingTimeInterval(15)
        while !log.contains("event=ready") && agent.isRunning && Date() < deadline {
            log += String(decoding: errors.fileHandleForReading.availableData, as: UTF8.self)
        }
        try #require(log.contains("event=ready"), "\(log)")

        #expect(try get(pod, "/healthz") == (200, "ok\n"))
        #expect(try get(pod, "/readyz") == (200, "ready\n"))
        #expect(try get(pod, "/nope").0 == 404)
        // An application's connection is captured, proxied as UID 1337 (not captured again) and reaches the peer.
        var replied = 0
        for host in ["198.18.0.2", "2001:db8::2"] {
            let line = try pod.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "/usr/bin/python3",
                                    CaptureTopology.probeScript, "connect", host, "80"]).stdout
            #expect(line.hasPrefix("peer:80 "), "\(host): \(line)")
            replied += line.trimmingCharacters(in: .whitespacesAndNewlines).utf8.count + 1
        }
        let (status, metrics) = try get(pod, "/metrics")
        #expect(status == 200)
        #expect(metrics.contains("# TYPE weir_proxy_connections_accepted_total counter"))
        #expect(metrics.contains("weir_proxy_connections_accepted_total 2\n"), "\(metrics)")
        // The peer spoke one line per connection and the application said nothing.
        #expect(metrics.contains("weir_proxy_bytes_total{direction=\"upstream_to_client\"} \(replied)\n"))
        #expect(metrics.contains("weir_proxy_bytes_total{direction=\"client_to_upstream\"} 0\n"))
        #expect(metrics.contains("weir_ready 1\n"))
        #expect(metrics.contains("weir_nftables_table_owned 1\n"))
        #expect(metrics.contains("weir_conntrack_entries_max "))
        // While the agent runs, nobody else can change its table.
        #expect(try pod.run(["nft", "flush", "table", "inet", "weir"]).status != 0)

        agent.terminate()
        agent.waitUntilExit()
        #expect(agent.terminationStatus == 0)
        log += String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(log.contains("event=stopped"))
        // The table persists: traffic stays captured after the agent is gone, and weir clean removes it.
        #expect(try pod.exec(["nft", "list", "tables"]).contains("table inet weir"))
        #expect(try get(pod, "/healthz").0 == 0)
    }

    @Test func badInputExitsTwoBeforeAnythingChanges() throws {
        try withNamespace(prefix: "wta") { ns in
            for args in [["--admin-address", "localhost"], ["--idle-timeout", "forever"], ["--profile", "nope"],
                         ["-x", "*"]] {
                let r = try ns.weir(["run"] + args)
                #expect(r.status == 2, "\(args): \(r.stderr)")
                #expect(r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
            }
            // Bad values from --config name the file, line and key, whichever setting they are.
            let file = NSTemporaryDirectory() + "wta-bad-\(getpid()).conf"
            defer { try? FileManager.default.removeItem(atPath: file) }
            for (text, message) in [
                ("ISTIO_INBOUND_PORTS=*\nWEIR_IDLE_TIMEOUT=forever\n",
                 "weir: \(file):2 WEIR_IDLE_TIMEOUT 'forever' is not a duration: expected"),
                ("WEIR_ADMIN_ADDRESS=localhost\n", "weir: \(file):1 WEIR_ADMIN_ADDRESS 'localhost' is not HOST:PORT"),
                ("WEIR_RECONCILE_INTERVAL=soon\n", "weir: \(file):1 WEIR_RECONCILE_INTERVAL 'soon' is not a duration"),
            ] {
                try text.write(toFile: file, atomically: true, encoding: .utf8)
                let r = try ns.weir(["run", "--config", file])
                #expect(r.status == 2, "\(text): \(r.stderr)")
                #expect(r.stderr.hasPrefix(message), "\(r.stderr)")
                #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
            }
            #expect(try ns.exec(["nft", "list", "ruleset"]).isEmpty)
        }
    }
}
