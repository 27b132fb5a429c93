import Foundation
import Testing

/// GET http://HOST:PORT/PATH from inside `ns`, with an optional bearer token (`adminGet`).
private func get(_ ns: TestNamespace, _ host: String, _ port: Int, _ path: String,
                 token: String? = nil) throws -> (Int, String) {
    try adminGet(ns, path, host: host, port: port, token: token)
}

/// Probes and metrics apart: /config only for loopback clients, /metrics on a port of its own behind an optional
/// bearer token, that port checked against weir's other ports.
@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct AdminSeparationTests {
    @Test func configIsForLoopbackOnlyAndMetricsHaveTheirOwnPortAndToken() throws {
        try withInboundNamespaces { node, other in
            let tokenFile = NSTemporaryDirectory() + "wtk-token-\(UInt32.random(in: 0...UInt32.max))"
            try "s3cret-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: tokenFile) }
            let agent = try startAgent(node, ["-i", "198.18.0.0/15", "--admin-address", "0.0.0.0:15020",
                                              "--metrics-address", "0.0.0.0:15090",
                                              "--metrics-token-file", tokenFile])
            defer { agent.stop() }
            // /config: the node itself (loopback) is answered, another host is refused; probes answer both.
            #expect(try get(node, "127.0.0.1", 15020, "/config").0 == 200)
            let remote = try get(other, "198.18.1.1", 15020, "/config")
            #expect(remote.0 == 403 && remote.1 == "forbidden: /config answers loopback clients only\n", "\(remote)")
            #expect(try get(other, "198.18.1.1", 15020, "/healthz").0 == 200)
            // The metrics port: /metrics only, and only with the token.
            #expect(try get(other, "198.18.1.1", 15090, "/metrics").0 == 401)
            #expect(try get(other, "198.18.1.1", 15090, "/metrics", token: "wrong").0 == 401)
            let (code, metrics) = try get(other, "198.18.1.1", 15090, "/metrics", token: "s3cret-token")
            #expect(code == 200 && metrics.contains("weir_ready 1\n"), "\(code) \(metrics.prefix(200))")
            #expect(try get(other, "198.18.1.1", 15090, "/config", token: "s3cret-token").0 == 404)
            #expect(try get(node, "127.0.0.1", 15090, "/healthz", token: "s3cret-token").0 == 404)
            // The token is never logged, nor shown in /config.
            let (_, config) = try get(node, "127.0.0.1", 15020, "/config")
            #expect(config.contains("\"metrics_address\": \"0.0.0.0:15090\""), "\(config)")
            #expect(!config.contains("s3cret") && !agent.output.contains("s3cret"))
            #expect(agent.output.contains("event=metrics_listening address=\"0.0.0.0:15090\" token=required")
                    || agent.output.contains("event=metrics_listening address=0.0.0.0:15090 token=required"),
                    "\(agent.output)")
        }
    }

    @Test func theMetricsPortIsCheckedAgainstWeirsOtherPorts() throws {
        try withNamespace(prefix: "wtk") { ns in
            let r = try ns.weir(["run", "--metrics-address", "127.0.0.1:15001"])
            #expect(r.status == 2 && r.stderr == "weir: -p (default) '15001' and --metrics-address '127.0.0.1:15001' "
                    + "name the same port 15001: expected a different port for each\n", "\(r.stderr)")
            let t = try ns.weir(["run", "--metrics-token-file", "/nonexistent"])
            #expect(t.status == 2 && t.stderr == "weir: --metrics-token-file '/nonexistent' without "
                    + "--metrics-address: expected both (the token guards the metrics listener)\n", "\(t.stderr)")
            #expect(!(try ns.exec(["nft", "list", "tables"]).contains("weir")))
        }
    }
}
