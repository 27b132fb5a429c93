import Foundation
import Testing

/// The start-up clean-up of a killed agent's upstream conntrack entries (UpstreamConntrack, StaleConntrack): only
/// entries with weir's mark, only in SYN_SENT, and nothing else.
@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct StaleConntrackTests {
    static let mark = "2003134834"  // 0x77656972, as conntrack -L prints it

    /// `conntrack -L` lines of one family (`ipv4`, `ipv6`) toward `port`, with `extra` filters.
    func entries(_ ns: TestNamespace, _ family: String, port: Int, _ extra: [String] = []) throws -> [String] {
        let r = try ns.run(["conntrack", "-L", "-f", family, "-p", "tcp", "--dport", String(port)] + extra)
        return r.stdout.split(separator: "\n").map(String.init)
    }

    @Test func aRestartDeletesOnlyTheKilledAgentsMarkedUpstreamsInSYNSent() throws {
        try withNamespace(prefix: "wtk") { app in
            try withNamespace(prefix: "wtk") { hole in
                // 198.18.2.1 / 2001:db8:2::1 answer nothing on 8080 and 8081: that namespace drops the SYNs.
                let tag = String(UInt32.random(in: 0...0xffff), radix: 16)
                try app.link(to: hole, localName: "wk\(tag)", peerName: "wh\(tag)",
                             localAddresses: ["198.18.2.2/24", "2001:db8:2::2/64"],
                             peerAddresses: ["198.18.2.1/24", "2001:db8:2::1/64"])
                try hole.exec(["nft", "-f", "-"], input: """
                table inet wtdrop {
                  chain input {
                    type filter hook input priority 0; policy accept;
                    tcp dport { 8080, 8081 } drop
                  }
                }

                """)
                // Outbound capture of everything but port 8081 (-o), so a non-proxy UID can leave a SYN_SENT entry of
                // its own there.
                let first = try startAgent(app, ["-i", "*", "-o", "8081", "--connect-timeout", "60s"])
                // Captured connects: the proxy (UID 1337) dials 8080 and waits; its entries stay in SYN_SENT.
                let clients = try BackgroundProcess(app, ["/usr/bin/python3", "-u", "-c", """
                    import socket, time
                    held = []
                    for host in ["198.18.2.1", "2001:db8:2::1"]:
                        for _ in range(2):
                            held.append(socket.create_connection((host, 8080), timeout=5))
                    print("CONNECTED", flush=True)
                    time.sleep(60)
                    """])
                defer { clients.stop() }
                try clients.waitFor("CONNECTED")
                // A non-proxy UID's own connect, not captured (-o 8081): SYN_SENT, no mark.
                let other = try BackgroundProcess(app, ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
                                                        "/usr/bin/python3", "-c", """
                    import socket
                    s = socket.socket(); s.settimeout(60)
                    try: s.connect(("198.18.2.1", 8081))
                    except Exception: pass
                    """])
                defer { other.stop() }
                // Entries no weir made, in SYN_SENT: one with no mark, one with istio's TPROXY mark.
                for (sport, mark) in [("41000", "0"), ("41001", "1337")] {
                    try app.exec(["conntrack", "-I", "-p", "tcp", "-s", "198.18.2.2", "-d", "198.18.2.1",
                                  "--sport", sport, "--dport", "8080", "--state", "SYN_SENT", "-t", "120",
                                  "--mark", mark])
                }
                let marked = ["--mark", Self.mark, "--state", "SYN_SENT"]
                let connecting = try eventually { try entries(app, "ipv4", port: 8080, marked).count == 2
                                                      && entries(app, "ipv6", port: 8080, marked).count == 2 }
                let seen = try entries(app, "ipv4", port: 8080) + entries(app, "ipv6", port: 8080)
                #expect(connecting, "\(seen)")
                #expect(try eventually { try entries(app, "ipv4", port: 8081, ["--state", "SYN_SENT"]).count == 1 })

                first.signal(SIGKILL)
                _ = first.wait()
                first.stop()
                // The killed proxy's connects are still there, with weir's mark.
                #expect(try entries(app, "ipv4", port: 8080, marked).count == 2)
                #expect(try entries(app, "ipv6", port: 8080, marked).count == 2)

                let second = try startAgent(app, ["-i", "*", "-o", "8081", "--drain-timeout", "1s"])
                defer { second.stop() }
                #expect(second.output.contains("event=conntrack_stale_deleted count=4 "), "\(second.output)")
                #expect(try entries(app, "ipv4", port: 8080, marked).isEmpty)
                #expect(try entries(app, "ipv6", port: 8080, marked).isEmpty)
                // Left alone: the other UID's connect and the entries with another mark or none.
                let left = try entries(app, "ipv4", port: 8081, ["--state", "SYN_SENT"])
                #expect(left.count == 1 && left[0].contains("mark=0 "), "\(left)")
                let inserted = try entries(app, "ipv4", port: 8080, ["--state", "SYN_SENT"])
                #expect(inserted.count == 2 && inserted.contains { $0.contains("sport=41000") && $0.contains("mark=0 ") }
                        && inserted.contains { $0.contains("sport=41001") && $0.contains("mark=1337 ") }, "\(inserted)")
                #expect(metricValue(try adminGet(app, "/metrics").1, "weir_conntrack_stale_deleted_total") == 4)
            }
        }
    }
}
