import Foundation
import Testing

/// A reload that can fail: `weir run --check-config` (what systemd's ExecReload= runs before it signals) and the
/// RELOADING=1 / READY=1 pair the agent sends around a SIGHUP.
@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct ReloadNotifyTests {
    @Test func checkConfigChangesAndBindsNothing() throws {
        try withNamespace(prefix: "wtr") { ns in
            let file = NSTemporaryDirectory() + "wtr-\(getpid()).conf"
            defer { try? FileManager.default.removeItem(atPath: file) }
            try "ISTIO_SERVICE_CIDR=*\nISTIO_INBOUND_PORTS=*\n".write(toFile: file, atomically: true, encoding: .utf8)
            // Something else holds the admin port: a start would fail, a check does not bind.
            let holder = try BackgroundProcess(ns, ["python3", "-u", "-c", """
                import socket
                s = socket.socket(); s.bind(("127.0.0.1", 15020)); s.listen(); print("BOUND")
                import time; time.sleep(60)
                """])
            defer { holder.stop() }
            try holder.waitFor("BOUND")
            let good = try ns.weir(["run", "--check-config", "--config", file])
            #expect(good.status == 0, "\(good.stderr)")
            #expect(good.stdout == "weir: configuration ok (\(file))\n", "\(good.stdout)")
            #expect(good.stderr.isEmpty, "\(good.stderr)")
            #expect(try ns.exec(["nft", "list", "ruleset"]).isEmpty)

            try "ISTIO_SERVICE_CIDR=*\nWEIR_IDLE_TIMEOUT=forever\n".write(toFile: file, atomically: true,
                                                                          encoding: .utf8)
            let bad = try ns.weir(["run", "--check-config", "--config", file])
            #expect(bad.status == 2)
            #expect(bad.stderr == "weir: \(file):2 WEIR_IDLE_TIMEOUT 'forever' is not a duration: expected 0 or a "
                + "number with ms, s, m or h, like 5s\n", "\(bad.stderr)")
            #expect(bad.stdout.isEmpty)
            #expect(try ns.exec(["nft", "list", "ruleset"]).isEmpty)
        }
    }

    @Test func sighupSaysReloadingThenReady() throws {
        try withNamespace(prefix: "wtr") { ns in
            let socketPath = NSTemporaryDirectory() + "wtr-notify-\(getpid()).sock"
            defer { try? FileManager.default.removeItem(atPath: socketPath) }
            // Prints each message with CLOCK_MONOTONIC at receipt (µs), which MONOTONIC_USEC is compared with.
            let listener = try notifyListener(ns, path: socketPath)
            defer { listener.stop() }
            let file = NSTemporaryDirectory() + "wtr-\(getpid())-hup.conf"
            defer { try? FileManager.default.removeItem(atPath: file) }
            try "ISTIO_SERVICE_CIDR=*\n".write(toFile: file, atomically: true, encoding: .utf8)
            let agent = try startAgent(ns, ["--config", file, "--drain-timeout", "1s"],
                                       environment: ["NOTIFY_SOCKET=\(socketPath)"])
            defer { agent.stop() }
            try listener.waitFor("READY=1")
            try "ISTIO_SERVICE_CIDR=*\nISTIO_LOCAL_EXCLUDE_PORTS=22\n".write(toFile: file, atomically: true,
                                                                             encoding: .utf8)
            agent.signal(SIGHUP)
            try agent.waitFor("event=reloaded")
            #expect(eventually(5) { listener.output.components(separatedBy: "READY=1").count == 3 })
            let lines = listener.output.split(separator: "\n").map(String.init)
            let reloading = try #require(lines.firstIndex { $0.contains("'RELOADING=1\\nMONOTONIC_USEC=") },
                                         "\(lines)")
            let readyAgain = try #require(lines.lastIndex { $0.contains("READY=1") })
            #expect(reloading < readyAgain, "\(lines)")
            // MONOTONIC_USEC is CLOCK_MONOTONIC in microseconds: within 5 s of the receiver's own clock.
            let parts = lines[reloading].split(separator: " ", maxSplits: 1)
            let received = try #require(Int64(parts[0]))
            let sent = try #require(Int64(parts[1].split(separator: "=")[2].prefix { $0.isNumber }))
            #expect(abs(received - sent) < 5_000_000, "\(lines[reloading])")
            agent.signal(SIGTERM)
            #expect(agent.wait(timeout: 10) == 0)
            _ = try? ns.weir(["clean"])
        }
    }
}
