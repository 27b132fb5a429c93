import Foundation
import Testing

/// `weir status` asks the running agent (GET /status on the admin endpoint) as well as the node.
@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct StatusCommandTests {
    func agentJSON(_ ns: TestNamespace, _ arguments: [String] = []) throws -> [String: Any] {
        let result = try ns.weir(["status", "--json"] + arguments)
        #expect(result.status == 0, "\(result.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        #expect(object?["node"] is [String: Any], "\(result.stdout)")
        return object?["agent"] as? [String: Any] ?? [:]
    }

    @Test func saysSoWhenNoAgentAnswers() throws {
        try withNamespace { ns in
            let text = try ns.weir(["status"])
            #expect(text.status == 0)
            #expect(text.stdout.hasPrefix("agent at 127.0.0.1:15020: not answering (connect: connection refused)"),
                    "\(text.stdout)")
            #expect(text.stdout.contains("conntrack"), "the node's part still follows: \(text.stdout)")
            let required = try ns.weir(["status", "--require-agent"])
            #expect(required.status == 1)
            #expect(required.stderr == "weir: no agent answers at 127.0.0.1:15020 (connect: connection refused); "
                + "--require-agent\n", "\(required.stderr)")
            let agent = try agentJSON(ns)
            #expect(agent["answering"] as? Bool == false)
            #expect(agent["error"] as? String == "connect: connection refused")
            // Bad input: one line, exit 2.
            let bad = try ns.weir(["status", "--admin-address", "localhost"])
            #expect(bad.status == 2)
            #expect(bad.stderr.hasPrefix("weir: --admin-address 'localhost' is not HOST:PORT"), "\(bad.stderr)")
        }
    }

    @Test func asksTheRunningAgent() throws {
        try withInboundNamespaces { app, cl in
            let world = try startServer(cl, addresses: ["198.18.1.2"])
            defer { world.stop() }
            let agent = try startAgent(app, ["-b", "*", "-i", "*", "--drain-timeout", "1s",
                                             "--admin-address", "127.0.0.1:15120", "--reconcile-interval", "200ms"])
            defer { agent.stop() }
            // A proxied connection held open (outbound, through weir's own rules).
            let held = try BackgroundProcess(app, ["python3", "-u", proxyHelper, "client", "hold", "198.18.1.2",
                                                   "8080", "8"])
            defer { held.stop() }
            try held.waitFor("HOLDING")
            #expect(eventually(5) { (try? agentJSON(app, ["--admin-address", "127.0.0.1:15120"]))?["reconciles"]
                as? Int ?? 0 >= 1 })

            let status = try agentJSON(app, ["--admin-address", "127.0.0.1:15120"])
            #expect(status["answering"] as? Bool == true)
            #expect(status["ready"] as? Bool == true, "\(status)")
            #expect(status["connections_active"] as? Int == 1, "\(status)")
            #expect(status["connections_accepted"] as? Int ?? 0 >= 1, "\(status)")
            let last = status["last_reconcile_unix"] as? Int ?? 0
            #expect(abs(last - Int(Date().timeIntervalSince1970)) < 30, "\(status)")

            let text = try app.weir(["status", "--admin-address", "127.0.0.1:15120"])
            #expect(text.status == 0)
            #expect(text.stdout.hasPrefix("agent at 127.0.0.1:15120: ready (weir "), "\(text.stdout)")
            #expect(text.stdout.contains("  connections: 1 active"), "\(text.stdout)")
            #expect(text.stdout.contains("  last reconcile: "), "\(text.stdout)")

            // The default admin address answers nothing here: another port was chosen.
            let other = try agentJSON(app)
            #expect(other["answering"] as? Bool == false)
        }
    }
}
