import Foundation
import Testing

/// Starts `weir run` in the namespace (extra environment first, as `NAME=value`) and waits until it is ready.
func startAgent(_ ns: TestNamespace, _ arguments: [String], environment: [String] = [],
                waitFor: String = "event=ready") throws -> BackgroundProcess {
    let p = try BackgroundProcess(ns, ["env"] + environment + [weirBinary] + ns.withOwnRunDirectory(["run"] + arguments))
    try p.waitFor(waitFor, timeout: 20)
    return p
}

/// GET on the agent's admin endpoint from inside the namespace (127.0.0.1 unless `host`), with an optional bearer
/// token: status and body (status 0 when nothing answered).
func adminGet(_ ns: TestNamespace, _ path: String, host: String = "127.0.0.1", port: Int = 15020,
              token: String? = nil) throws -> (Int, String) {
    let headers = token.map { "{'Authorization': 'Bearer \($0)'}" } ?? "{}"
    let script = """
        import urllib.request, urllib.error
        try:
            r = urllib.request.urlopen(urllib.request.Request("http://\(host):\(port)\(path)", headers=\(headers)),
                                       timeout=3)
            print(r.status); print(r.read().decode(), end="")
        except urllib.error.HTTPError as e:
            print(e.code); print(e.read().decode(), end="")
        except Exception as e:
            print(0); print(e)
        """
    let out = try ns.run(["/usr/bin/python3", "-c", script]).stdout
    let lines = out.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
    return (Int(lines.first ?? "") ?? 0, lines.count > 1 ? String(lines[1]) : "")
}

/// The value of one sample (`name{labels}` exactly as exposed) in Prometheus text; nil when it is absent, so a check
/// on it fails when the metric disappears.
func metricValue(_ text: String, _ sample: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(sample + " ") {
        return Double(line.dropFirst(sample.count + 1))
    }
    return nil
}

/// A datagram socket in `ns` that stands in for systemd's `$NOTIFY_SOCKET`, at `path`: it prints each message it
/// receives as `MICROSECONDS 'MESSAGE'` (CLOCK_MONOTONIC at receipt). Returned once bound; the caller removes `path`.
func notifyListener(_ ns: TestNamespace, path: String) throws -> BackgroundProcess {
    let listener = try BackgroundProcess(ns, ["python3", "-u", "-c", """
        import socket, time
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind("\(path)"); print("BOUND")
        while True:
            m = s.recv(4096).decode()
            print(int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6), repr(m))
        """])
    try listener.waitFor("BOUND")
    return listener
}

/// Waits until `condition` holds, up to `timeout` seconds.
func eventually(_ timeout: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
    let end = Date().addingTimeInterval(timeout)
    while Date() < end {
        if try condition() { return true }
        usleep(100_000)
    }
    return try condition()
}

/// `weir run` as a node service: both capture directions with weir's own rules, probes that never block, nothing
/// changed by a failed start, reconcile, reload, notify and watchdog, restart after kill -9.
@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct AgentLifecycleTests {
    @Test(arguments: ["REDIRECT", "TPROXY"])
    func capturesBothDirectionsWithItsOwnRules(mode: String) throws {
        try withInboundNamespaces { app, cl in
            let appServer = try startServer(app, addresses: ["198.18.1.1", "2001:db8:1::1"])
            defer { appServer.stop() }
            let world = try startServer(cl, addresses: ["198.18.1.2", "2001:db8:1::2"])
            defer { world.stop() }
            let agent = try startAgent(app, ["-m", mode, "-b", "*", "-i", "*", "--drain-timeout", "1s"])
            defer { agent.stop() }
            // Inbound: the application sees the real client under TPROXY, the hand-off address under REDIRECT.
            let tproxy = mode == "TPROXY"
            #expect(try client(cl, "peer", "198.18.1.1") == "peer=\(tproxy ? "198.18.1.2" : "127.0.0.6") echo=True eof=True")
            #expect(try client(cl, "peer", "2001:db8:1::1") == "peer=\(tproxy ? "2001:db8:1::2" : "::6") echo=True eof=True")
            // Outbound, in the same run: the world sees the proxy's upstream from the pod's address.
            #expect(try client(app, "peer", "198.18.1.2") == "peer=198.18.1.1 echo=True eof=True")
            #expect(try client(app, "peer", "2001:db8:1::2") == "peer=2001:db8:1::1 echo=True eof=True")
            let (_, m) = try adminGet(app, "/metrics")
            #expect(m.contains("weir_proxy_connections_total{direction=\"inbound\"} 2\n"), "\(m)")
            #expect(m.contains("weir_proxy_connections_total{direction=\"outbound\"} 2\n"))
            #expect(m.contains("weir_proxy_connections_accepted_total 4\n"))
            #expect(m.contains("weir_proxy_upstream_connect_seconds_count 4\n"))
            #expect(m.contains("weir_proxy_connection_duration_seconds_count 4\n"))
        }
    }

    @Test func probesAnswerWhileSlowAndIdleClientsCrowdTheAdminPort() throws {
        try withNamespace(prefix: "wta") { ns in
            let agent = try startAgent(ns, ["-i", "198.18.0.0/15"])
            defer { agent.stop() }
            // 1,000 idle connections and 100 clients sending a request one byte a second, then 24 probes.
            let r = try ns.run(["sh", "-c", "ulimit -n 4096; exec python3 '\(proxyHelper)' client crowd 127.0.0.1 15020 1000"])
            let line = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(line.hasPrefix("statuses=200 "), "\(line) \(r.stderr)")
            print("admin probe latency with 1000 idle + 100 slow clients: \(line)")
            let (_, m) = try adminGet(ns, "/metrics")
            #expect(m.contains("weir_ready 1\n"))
        }
    }

    @Test func aFailedStartChangesNothing() throws {
        try withNamespace(prefix: "wta") { ns in
            let state = NSTemporaryDirectory() + "wta-state-\(getpid())"
            defer { try? FileManager.default.removeItem(atPath: state) }
            let somaxconn = try ns.exec(["sysctl", "-n", "net.core.somaxconn"])
            for (holder, args, message) in [
                ("127.0.0.1:15020", [String](), "admin listener 127.0.0.1:15020: EADDRINUSE"),
                ("", ["--admin-address", "198.18.9.9:15020"], "admin listener 198.18.9.9:15020: EADDRNOTAVAIL"),
                ("0.0.0.0:15001", [], "bind 0.0.0.0:15001: EADDRINUSE"),
            ] {
                var held: BackgroundProcess?
                if !holder.isEmpty {
                    let parts = holder.split(separator: ":")
                    held = try BackgroundProcess(ns, ["python3", "-c", """
                        import socket, time
                        s = socket.socket(); s.bind(("\(parts[0])", \(parts[1]))); s.listen(1); print("READY", flush=True)
                        time.sleep(60)
                        """])
                    try held!.waitFor("READY")
                }
                let r = try ns.weir(["run", "-b", "*", "-i", "*", "--profile", "ingress", "--profiles-dir",
                                     "profiles", "--state-dir", state] + args)
                held?.stop()
                #expect(r.status == 1, "\(args): \(r.stderr)")
                #expect(r.stderr.contains(message), "\(r.stderr)")
                #expect(try ns.exec(["nft", "list", "ruleset"]).isEmpty, "\(message)")
                #expect(!(try ns.exec(["ip", "-6", "addr", "show", "dev", "lo"]).contains("::6/128")))
                #expect(try ns.exec(["sysctl", "-n", "net.core.somaxconn"]) == somaxconn)
            }
            // The capture itself fails halfway (no IPv6 on lo: the IPv6 TPROXY route cannot be added) after the new
            // table went in: the table, the rules and the profile are all taken back.
            try ns.exec(["sysctl", "-q", "-w", "net.ipv6.conf.lo.disable_ipv6=1"])
            let r = try ns.weir(["run", "-m", "TPROXY", "-b", "*", "--profile", "ingress", "--profiles-dir", "profiles",
                                 "--state-dir", state])
            #expect(r.status == 1, "\(r.stderr)")
            #expect(r.stderr.contains("add ip -6 route local default dev lo table 133"), "\(r.stderr)")
            #expect(try ns.exec(["nft", "list", "ruleset"]).isEmpty)
            #expect(!(try ns.exec(["ip", "-4", "rule"]).contains("lookup 133")))
            #expect(try ns.exec(["sysctl", "-n", "net.core.somaxconn"]) == somaxconn)
        }
    }

    @Test func noConnectionIsRefusedWhileTheAgentStarts() throws {
        try withInboundNamespaces { app, cl in
            let world = try startServer(cl, addresses: ["198.18.1.2"])
            defer { world.stop() }
            // Back-to-back connections from the pod while the agent starts, and then while it restarts.
            let loop = try BackgroundProcess(app, ["python3", "-u", proxyHelper, "client", "loop", "198.18.1.2", "8080", "6"])
            defer { loop.stop() }
            try loop.waitFor("LOOPING")
            let agent = try startAgent(app, ["-i", "*", "--drain-timeout", "1s"])
            defer { agent.stop() }
            try loop.waitFor("ok=", timeout: 15)
            #expect(loop.output.contains(" refused=0 other=0 "), "\(loop.output)")
            let (_, m) = try adminGet(app, "/metrics")
            let proxied = metricValue(m, "weir_proxy_connections_total{direction=\"outbound\"}")
            #expect((proxied ?? 0) >= 1, "nothing was proxied, or the metric is gone: \(m)")

            // A restart, with the persisted table redirecting meanwhile: measure the gap (a figure, not a test).
            let again = try BackgroundProcess(app, ["python3", "-u", proxyHelper, "client", "loop", "198.18.1.2", "8080", "5"])
            defer { again.stop() }
            try again.waitFor("LOOPING")
            usleep(500_000)
            agent.signal(SIGTERM)
            _ = agent.wait(timeout: 10)
            let second = try startAgent(app, ["-i", "*", "--drain-timeout", "1s"])
            defer { second.stop() }
            try again.waitFor("ok=", timeout: 15)
            print("restart gap (SIGTERM, drain, start): \(again.output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    @Test func reconcileRepairsDriftAndReadinessSaysWhatIsMissing() throws {
        try withNamespace(prefix: "wta") { ns in
            let agent = try startAgent(ns, ["-m", "TPROXY", "-b", "*", "-i", "*", "--reconcile-interval", "300ms"])
            defer { agent.stop() }
            #expect(try adminGet(ns, "/readyz") == (200, "ready\n"))
            // Drift reconcile cannot repair yet: IPv6 off on lo takes ::6 with it, and neither ::6 nor the IPv6
            // table-133 route can be added back. The TPROXY rules and the IPv4 route, deleted too, it does put back.
            try ns.exec(["sysctl", "-q", "-w", "net.ipv6.conf.lo.disable_ipv6=1"])
            for family in ["-4", "-6"] {
                try ns.exec(["ip", family, "rule", "del", "fwmark", "1337", "lookup", "133"])
                _ = try ns.run(["ip", family, "route", "del", "local", "default", "dev", "lo", "table", "133"])
            }
            #expect(try eventually { try adminGet(ns, "/readyz").0 == 503 })
            let (code, reason) = try adminGet(ns, "/readyz")
            // What is wrong, in words: the failed repair, or what is missing.
            #expect(code == 503 && (reason.hasPrefix("not ready: reconcile failed: add ip -6 route local default dev lo")
                                    || reason.hasPrefix("not ready: capture incomplete: ")), "\(reason)")
            #expect(try eventually { try ns.exec(["ip", "-4", "rule"]).contains("fwmark 0x539 lookup 133") })
            #expect(try ns.exec(["ip", "-4", "route", "show", "table", "133"]).contains("local default dev lo"))
            var (_, m) = try adminGet(ns, "/metrics")
            #expect((metricValue(m, "weir_capture_apply_failures_total") ?? 0) >= 1, "\(m)")
            #expect(agent.output.contains("event=reconcile_failed"))
            // IPv6 back: the next pass adds ::6 and readiness returns.
            try ns.exec(["sysctl", "-q", "-w", "net.ipv6.conf.lo.disable_ipv6=0"])
            #expect(try eventually { try adminGet(ns, "/readyz") == (200, "ready\n") })
            #expect(try ns.exec(["ip", "-6", "addr", "show", "dev", "lo"]).contains("::6/128"))
            #expect(try ns.exec(["ip", "-6", "route", "show", "table", "133"]).contains("local default dev lo"))
            (_, m) = try adminGet(ns, "/metrics")
            for object in ["rule", "route"] {
                #expect(m.contains("weir_reconcile_repairs_total{object=\"\(object)\"} 2\n"), "\(m)")
            }
            #expect(m.contains("weir_reconcile_repairs_total{object=\"address\"} 1\n"))
            #expect(agent.output.contains("event=reconcile_repaired object=rule"))
            // Nothing drifted since: reconcile passes read and write nothing (same handles, applies unchanged).
            let before = try ns.exec(["nft", "-a", "list", "ruleset"])
            let applies = m.split(separator: "\n").first { $0.hasPrefix("weir_capture_applies_total ") }
            let runs = m.split(separator: "\n").first { $0.hasPrefix("weir_reconcile_runs_total ") }
            usleep(1_500_000)
            #expect(try ns.exec(["nft", "-a", "list", "ruleset"]) == before)
            (_, m) = try adminGet(ns, "/metrics")
            #expect(m.split(separator: "\n").first { $0.hasPrefix("weir_capture_applies_total ") } == applies)
            #expect(m.split(separator: "\n").first { $0.hasPrefix("weir_reconcile_runs_total ") } != runs)
        }
    }

    /// Reconcile with 30,000 excluded CIDRs and nothing drifted: the kernel is not read back on every pass (a
    /// read-back of that set costs about a second of CPU, 22% of a CPU at 100,000 CIDRs every 10 s), yet drift is
    /// still repaired.
    @Test func idleReconcileOfALargeSetCostsNoCPU() throws {
        try withNamespace(prefix: "wta") { ns in
            let file = NSTemporaryDirectory() + "wta-cidrs-\(getpid()).txt"
            defer { try? FileManager.default.removeItem(atPath: file) }
            // 30,000 /32s that do not merge into fewer ranges: every other address of 198.18.0.0/16 and 198.19.0.0/16.
            let lines = (0..<30_000).map { i in "198.\(18 + i % 2).\(i / 2 / 128).\(i / 2 % 128 * 2)" }
            try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
            let agent = try startAgent(ns, ["-i", "198.18.0.0/15", "-x", "@\(file)", "--reconcile-interval", "200ms"])
            defer { agent.stop() }
            usleep(1_000_000)
            let runs = { () throws -> Int in
                let m = try adminGet(ns, "/metrics").1
                let line = m.split(separator: "\n").first { $0.hasPrefix("weir_reconcile_runs_total ") } ?? ""
                return Int(Double(line.split(separator: " ").last ?? "") ?? -1)
            }
            let runs0 = try runs()
            let ticks0 = cpuTicks(agent.pid)
            usleep(3_000_000)
            let used = Double(cpuTicks(agent.pid) - ticks0) / Double(sysconf(Int32(_SC_CLK_TCK))) / 3 * 100
            #expect(try runs() - runs0 >= 10, "reconcile ran")
            #expect(used < 10, "\(used)% of a CPU while idle")
            print("idle CPU with 30,000 excluded CIDRs, reconcile every 200 ms: \(used)%")
            // Another process's commit changes the generation: the next pass compares the whole table again and
            // finds it unchanged (nothing replaced, nothing counted as repaired).
            let before = try adminGet(ns, "/metrics").1.split(separator: "\n")
                .first { $0.hasPrefix("weir_capture_applies_total ") }
            try ns.exec(["nft", "add", "table", "inet", "other"])
            usleep(1_500_000)
            let m = try adminGet(ns, "/metrics").1
            #expect(m.split(separator: "\n").first { $0.hasPrefix("weir_capture_applies_total ") } == before)
            #expect(m.contains("weir_reconcile_repairs_total{object=\"table\"} 0\n"), "\(m)")
        }
    }

    @Test func reloadAppliesChangedRulesKeepsConnectionsAndRefusesBadFiles() throws {
        try withInboundNamespaces { app, cl in
            let world = try startServer(cl, addresses: ["198.18.1.2"])
            defer { world.stop() }
            let file = NSTemporaryDirectory() + "wta-\(getpid()).conf"
            defer { try? FileManager.default.removeItem(atPath: file) }
            try "# weir\nISTIO_SERVICE_CIDR=*\nISTIO_INBOUND_PORTS=*\nISTIO_LOCAL_EXCLUDE_PORTS=22\n"
                .write(toFile: file, atomically: true, encoding: .utf8)
            let agent = try startAgent(app, ["--config", file])
            defer { agent.stop() }
            let pid = agent.pid
            let held = try BackgroundProcess(app, ["python3", "-u", proxyHelper, "client", "hold", "198.18.1.2", "8080", "8"])
            defer { held.stop() }
            try held.waitFor("HOLDING")

            try "ISTIO_SERVICE_CIDR=*\nISTIO_INBOUND_PORTS=*\nISTIO_LOCAL_EXCLUDE_PORTS=22,10250\n"
                .write(toFile: file, atomically: true, encoding: .utf8)
            agent.signal(SIGHUP)
            try agent.waitFor("event=reloaded rules=changed")
            #expect(try app.exec(["nft", "list", "set", "inet", "weir", "inbound-ports-exclude"]).contains("22, 10250"))
            var (_, config) = try adminGet(app, "/config")
            #expect(config.contains("\"inbound_ports_exclude\": [\n      22,\n      10250\n    ]"), "\(config)")

            // A bad file, and a change that needs a restart: refused, logged, counted; the rules stay.
            let rules = try app.exec(["nft", "list", "table", "inet", "weir"])
            for (text, reason) in [("ISTIO_INBOUND_PORTS=nope\n", ":1 ISTIO_INBOUND_PORTS 'nope' is not a port"),
                                   ("ISTIO_SERVICE_CIDR=*\nWEIR_PROFILE=default\n",
                                    "changed settings need a restart: WEIR_PROFILE")] {
                try text.write(toFile: file, atomically: true, encoding: .utf8)
                agent.signal(SIGHUP)
                try agent.waitFor(reason)
            }
            #expect(try app.exec(["nft", "list", "table", "inet", "weir"]) == rules)
            var (_, m) = try adminGet(app, "/metrics")
            #expect(m.contains("weir_config_reload_failures_total 2\n"), "\(m)")
            #expect(m.contains("weir_config_reloads_total 1\n"))
            (_, config) = try adminGet(app, "/config")
            #expect(config.contains("      10250\n"))

            // New proxy ports: a new data plane binds them, the rules move to it, the old one retires.
            try "ISTIO_SERVICE_CIDR=*\nISTIO_INBOUND_PORTS=*\nISTIO_LOCAL_EXCLUDE_PORTS=22,10250\nENVOY_PORT=15101\n"
                .write(toFile: file, atomically: true, encoding: .utf8)
            agent.signal(SIGHUP)
            try agent.waitFor("event=reloaded rules=changed changes=1 proxy=replaced")
            #expect(try app.exec(["nft", "list", "chain", "inet", "weir", "redirect-outbound"]).contains("to :15101"))
            #expect(try client(app, "peer", "198.18.1.2") == "peer=198.18.1.1 echo=True eof=True")
            #expect(try eventually { !(try app.exec(["ss", "-Hltn"]).contains(":15001 ")) })
            #expect(try app.exec(["ss", "-Hltn"]).contains(":15101 "))
            (_, m) = try adminGet(app, "/metrics")
            #expect(m.contains("weir_config_reloads_total 2\n"), "\(m)")
            try held.waitFor("pings=", timeout: 15)
            #expect(held.output.contains("broken=False"), "\(held.output)")
            #expect(agent.pid == pid && agent.process.isRunning)
        }
    }

    /// A reload that replaces the data plane retires the old one, and its connections in use go on as long as they
    /// are used: only the idle timeout closes them. They used to be closed at max(--idle-timeout, --drain-timeout)
    /// after the reload, busy or not.
    @Test func connectionsInUseOutliveTheRetiredDataPlane() throws {
        try withInboundNamespaces { app, cl in
            let world = try startServer(cl, addresses: ["198.18.1.2"])
            defer { world.stop() }
            let file = NSTemporaryDirectory() + "wta-retire-\(getpid()).conf"
            defer { try? FileManager.default.removeItem(atPath: file) }
            let base = "ISTIO_SERVICE_CIDR=*\nWEIR_IDLE_TIMEOUT=2s\nWEIR_DRAIN_TIMEOUT=1s\n"
            try base.write(toFile: file, atomically: true, encoding: .utf8)
            let agent = try startAgent(app, ["--config", file])
            defer { agent.stop() }
            // A ping every 0.2 s for 7 s: never idle, and alive well past both timeouts after the reload.
            let held = try BackgroundProcess(app, ["python3", "-u", proxyHelper, "client", "hold", "198.18.1.2",
                                                   "8080", "7"])
            defer { held.stop() }
            try held.waitFor("HOLDING")
            try (base + "WEIR_BUFFER_LIMIT=128KiB\n").write(toFile: file, atomically: true, encoding: .utf8)
            agent.signal(SIGHUP)
            try agent.waitFor("proxy=replaced")
            try held.waitFor("pings=", timeout: 15)
            #expect(held.output.contains("broken=False"), "\(held.output)")
            // Its last connection ended: the retired data plane is joined and gone.
            #expect(try eventually(5) { agent.output.contains("event=retired") }, "\(agent.output)")
        }
    }

    /// Reloads that replace the data plane while new connections pour in. Closing the retiring listeners reset what
    /// waited in their queues (about 6 per reload here); accepting it first left the handshakes that completed
    /// between the last accept and the close (0 to 10 over 5 reloads). Now the new data plane takes the same
    /// listening sockets, so nothing closes: the sockets are the same before and after, and nothing is reset.
    @Test func reloadsResetNoConnectionWaitingInTheListenQueue() throws {
        try withInboundNamespaces { app, cl in
            let load = try loadGenerator()
            let server = try BackgroundProcess(cl, [load, "server", "7000", "198.18.1.2"])
            defer { server.stop() }
            try server.waitFor("READY")
            let file = NSTemporaryDirectory() + "wta-queue-\(getpid()).conf"
            defer { try? FileManager.default.removeItem(atPath: file) }
            try "ISTIO_SERVICE_CIDR=*\n".write(toFile: file, atomically: true, encoding: .utf8)
            try app.exec(["sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65000", "net.ipv4.tcp_tw_reuse=1"])
            let agent = try startAgent(app, ["--config", file])
            defer { agent.stop() }
            let churn = try BackgroundProcess(app, [load, "client", "--conns", "200", "--seconds", "11", "--mix", "rr=1",
                                                    "--rounds-max", "1", "--think-ms", "0", "--retry-ms", "1",
                                                    "198.18.1.2:7000"])
            defer { churn.stop() }
            // Each listening socket by inode: "ino:N" of every capture listener.
            let sockets = { () throws -> [String] in
                try app.exec(["ss", "-Hltne", "( sport = :15001 or sport = :15006 )"]).split(separator: " ")
                    .filter { $0.hasPrefix("ino:") }.map(String.init).sorted()
            }
            let before = try sockets()
            #expect(!before.isEmpty)
            for i in 1...5 {
                usleep(2_000_000)
                try "ISTIO_SERVICE_CIDR=*\nWEIR_BUFFER_LIMIT=\(i % 2 == 1 ? 128 : 64)KiB\n"
                    .write(toFile: file, atomically: true, encoding: .utf8)
                agent.signal(SIGHUP)
                try agent.waitFor("proxy=replaced", timeout: 5)
            }
            try churn.waitFor("client started=", timeout: 30)
            let line = churn.output.split(separator: "\n").first { $0.hasPrefix("client ") } ?? ""
            let field = { (key: String) -> Int in
                Int(line.split(separator: " ").first { $0.hasPrefix(key + "=") }?.dropFirst(key.count + 1) ?? "") ?? -1
            }
            #expect(agent.output.components(separatedBy: "proxy=replaced").count == 6, "\(agent.output)")
            #expect(try sockets() == before)
            #expect(agent.output.components(separatedBy: "event=reload_listeners kept=\(before.count) closed=0")
                .count == 6, "\(agent.output)")
            #expect(field("ok") > 10_000, "\(line)")
            #expect(field("corrupt_bytes") == 0)
            #expect(field("failed") == 0, "\(line)")
            print("resets over 5 reloads under churn: \(field("failed")) of \(field("started"))")
        }
    }

    @Test func notifiesReadyStatusWatchdogAndStopping() throws {
        try withNamespace(prefix: "wta") { ns in
            let socketPath = NSTemporaryDirectory() + "wta-notify-\(getpid()).sock"
            defer { try? FileManager.default.removeItem(atPath: socketPath) }
            let listener = try notifyListener(ns, path: socketPath)
            defer { listener.stop() }
            let agent = try startAgent(ns, ["-i", "198.18.0.0/15", "--drain-timeout", "1s"],
                                       environment: ["NOTIFY_SOCKET=\(socketPath)", "WATCHDOG_USEC=400000"])
            #expect(try eventually { listener.output.components(separatedBy: "WATCHDOG=1").count > 4 })
            agent.signal(SIGTERM)
            #expect(agent.wait(timeout: 10) == 0)
            let seen = listener.output
            #expect(seen.contains("'READY=1\\nSTATUS=proxying 0 connections;"), "\(seen)")
            #expect(seen.contains("WATCHDOG=1\\nSTATUS=proxying 0 connections; last reconcile") || seen.contains("WATCHDOG=1\\nSTATUS=proxying 0 connections; no reconcile yet"))
            #expect(seen.contains("STOPPING=1"))
            #expect(agent.output.contains("event=ready") && agent.output.contains("watchdog_ms=200"))
            // Healthy all along: every loop counted as alive from its start, so no ping was ever withheld.
            #expect(!agent.output.contains("event=watchdog_withheld"), "\(agent.output)")
        }
    }

    @Test func restartsAfterKillNineWithoutDuplicatesAndCleansUpOnRequest() throws {
        try withInboundNamespaces { app, cl in
            let world = try startServer(cl, addresses: ["198.18.1.2"])
            defer { world.stop() }
            let first = try startAgent(app, ["-m", "TPROXY", "-b", "*", "-i", "*"])
            first.signal(SIGKILL)
            _ = first.wait()
            first.stop()
            // The persisted table still redirects; a new agent re-claims it and traffic flows again.
            let second = try startAgent(app, ["-m", "TPROXY", "-b", "*", "-i", "*", "--cleanup-on-exit",
                                              "--drain-timeout", "1s"])
            #expect(second.output.contains("claimed table inet weir"), "\(second.output)")
            #expect(try client(app, "peer", "198.18.1.2") == "peer=198.18.1.1 echo=True eof=True")
            #expect(try app.exec(["nft", "list", "tables"]) == "table inet weir\n")
            for family in ["-4", "-6"] {
                #expect(try app.exec(["ip", family, "rule"]).components(separatedBy: "lookup 133").count == 2)
                #expect(try app.exec(["ip", family, "route", "show", "table", "133"]).split(separator: "\n").count == 1)
            }
            #expect(try app.exec(["ip", "-6", "addr", "show", "dev", "lo"]).components(separatedBy: "::6/128").count == 2)
            #expect(try adminGet(app, "/metrics").1.contains("weir_nftables_table_owned 1\n"))
            // --cleanup-on-exit: after the drain nothing of weir is left.
            second.signal(SIGTERM)
            #expect(second.wait(timeout: 10) == 0)
            #expect(try app.exec(["nft", "list", "ruleset"]).isEmpty)
            #expect(!(try app.exec(["ip", "-4", "rule"]).contains("lookup 133")))
            #expect(!(try app.exec(["ip", "-6", "addr", "show", "dev", "lo"]).contains("::6/128")))
        }
    }

    /// While the agent is down (killed, not yet restarted by systemd) the persisted table keeps capturing: a new
    /// inbound connection under TPROXY waits for the proxy, as under REDIRECT, and never reaches the application
    /// directly. (nft's tproxy falls through to the next rule when nothing listens on the capture port.)
    @Test func tproxyInboundWaitsForTheProxyWhileTheAgentIsDown() throws {
        try withInboundNamespaces { app, cl in
            let appServer = try startServer(app, addresses: ["198.18.1.1", "2001:db8:1::1"])
            defer { appServer.stop() }
            let first = try startAgent(app, ["-m", "TPROXY", "-b", "*"])
            first.signal(SIGKILL)
            _ = first.wait()
            first.stop()
            for host in ["198.18.1.1", "2001:db8:1::1"] {
                let r = try cl.run(["python3", "-c", """
                    import socket
                    s = socket.socket(socket.AF_INET6 if ":" in "\(host)" else socket.AF_INET)
                    s.settimeout(1.5)
                    try:
                        s.connect(("\(host)", \(appPort)))
                        print("connected directly")
                    except OSError as e:
                        print("not connected: " + type(e).__name__)
                    """])
                #expect(r.stdout.hasPrefix("not connected: TimeoutError"), "\(host): \(r.stdout) \(r.stderr)")
            }
            let second = try startAgent(app, ["-m", "TPROXY", "-b", "*", "--cleanup-on-exit", "--drain-timeout", "1s"])
            defer { second.stop() }
            #expect(second.output.contains("claimed table inet weir"), "\(second.output)")
            #expect(try client(cl, "peer", "198.18.1.1") == "peer=198.18.1.2 echo=True eof=True")
            #expect(try client(cl, "peer", "2001:db8:1::1") == "peer=2001:db8:1::2 echo=True eof=True")
            second.signal(SIGTERM)
            #expect(second.wait(timeout: 10) == 0)
        }
    }

    /// A client reconnects from the port of its connection that the agent has just reset (the application reset
    /// its side): conntrack still holds that 4-tuple, state CLOSE, and files the new SYN under it as established.
    /// Under TPROXY that SYN must still go to the proxy, not be diverted straight to the application.
    @Test func tproxyReconnectFromAResetConnectionsPortIsStillProxied() throws {
        try withInboundNamespaces { app, cl in
            let server = try BackgroundProcess(app, ["python3", "-u", "-c", """
                import socket, struct
                s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("198.18.1.1", \(appPort))); s.listen(16); print("READY", flush=True)
                while True:
                    c, peer = s.accept()
                    line = c.makefile("rb").readline().strip()
                    if line == b"RESET":
                        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    else:
                        c.sendall(("peer=%s:%d\\n" % peer).encode())
                    c.close()
                """])
            defer { server.stop() }
            try server.waitFor("READY")
            let agent = try startAgent(app, ["-m", "TPROXY", "-b", "*"])
            defer { agent.stop() }
            let r = try cl.run(["python3", "-c", """
                import socket
                def conn(line):
                    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind(("198.18.1.2", 40001)); s.settimeout(5); s.connect(("198.18.1.1", \(appPort)))
                    s.sendall(line)
                    try:
                        return s.makefile("rb").readline().decode().strip() or "eof"
                    except ConnectionResetError:
                        return "reset"
                    finally:
                        s.close()
                print(conn(b"RESET\\n"), conn(b"PEER\\n"))
                """])
            // The first one was reset; the second reached the application through the proxy, whose upstream has
            // a port of its own (the client's 40001 would mean it went around the proxy).
            #expect(r.stdout.hasPrefix("reset peer=198.18.1.2:"), "\(r.stdout) \(r.stderr)")
            #expect(!r.stdout.contains(":40001"), "went around the proxy: \(r.stdout)")
        }
    }

    @Test func metricsPassPromtoolAndConfigAndVersionAreServed() throws {
        try withNamespace(prefix: "wta") { ns in
            let agent = try startAgent(ns, ["-b", "*", "-i", "*", "-d", "22"])
            defer { agent.stop() }
            let (status, metrics) = try adminGet(ns, "/metrics")
            #expect(status == 200)
            let lint = try runCommand(["promtool", "check", "metrics"], input: metrics)
            #expect(lint.status == 0 && lint.stdout.isEmpty && lint.stderr.isEmpty, "\(lint.stdout)\(lint.stderr)")
            for family in ["weir_build_info{commit=", "weir_proxy_upstream_failures_total{reason=\"refused\"} 0",
                           "weir_proxy_upstream_connect_seconds_bucket{le=\"+Inf\"} 0",
                           "weir_capture_last_apply_timestamp_seconds ", "weir_reconcile_repairs_total{object=\"table\"} 0",
                           "weir_config_reload_failures_total 0", "weir_proxy_connections_forwarded_active{direction="] {
                #expect(metrics.contains(family), "\(family)")
            }
            // Every family says what it is: no HELP that only repeats the name.
            for line in metrics.split(separator: "\n") where line.hasPrefix("# HELP ") {
                let words = line.dropFirst(7).split(separator: " ", maxSplits: 1)
                let repeated = words.count < 2 || words[1] == words[0].replacingOccurrences(of: "_", with: " ")
                #expect(!repeated, "HELP repeats the name: \(line)")
            }
            // The standard process metrics, with this process's real values.
            let now = Date().timeIntervalSince1970
            #expect((metricValue(metrics, "process_resident_memory_bytes") ?? 0) > 1_000_000)
            #expect((metricValue(metrics, "process_open_fds") ?? 0) >= 8)
            #expect((metricValue(metrics, "process_max_fds") ?? 0) >= (metricValue(metrics, "process_open_fds") ?? 1))
            #expect((metricValue(metrics, "process_cpu_seconds_total") ?? -1) >= 0)
            let started = metricValue(metrics, "process_start_time_seconds") ?? 0
            #expect(started > now - 120 && started <= now + 1, "start \(started) now \(now)")
            // Each listener's own accept queue: its limit is the backlog (somaxconn), nothing waits, nothing dropped.
            let backlog = metricValue(metrics, "weir_proxy_listen_backlog") ?? -1
            for listener in ["inbound", "outbound"] {
                let labels = "{family=\"ipv4\",listener=\"\(listener)\",worker=\"0\"}"
                #expect(metricValue(metrics, "weir_proxy_listen_queue_limit" + labels) == backlog, "\(labels)")
                #expect(metricValue(metrics, "weir_proxy_listen_queue_length" + labels) == 0, "\(labels)")
                #expect(metricValue(metrics, "weir_proxy_listen_drops_total" + labels) == 0, "\(labels)")
            }
            #expect(metricValue(metrics, "weir_proxy_draining") == 0)
            #expect(metricValue(metrics, "weir_proxy_connections_idle") == 0)
            #expect(!metrics.contains("weir_proxy_upstream_connect_failures_total"), "counted twice again")
            let (code, config) = try adminGet(ns, "/config")
            #expect(code == 200)
            let json = try JSONSerialization.jsonObject(with: Data(config.utf8)) as? [String: Any]
            let capture = json?["capture"] as? [String: Any]
            #expect(capture?["inbound_ports"] as? String == "*")
            #expect(capture?["inbound_ports_exclude"] as? [Int] == [22])
            let version = try runCommand([weirBinary, "--version"])
            #expect(version.stdout.hasPrefix("weir "), "\(version.stdout)")
            #expect(metrics.contains("version=\"\(version.stdout.split(separator: " ")[1])\""))
        }
    }

    /// /healthz follows the watchdog's rule: with the workers stopped (ptrace; the admin thread runs on) it turns 503
    /// naming them once they have made no progress for 3 s, and 200 again when they run.
    @Test func healthzFailsWhileAWorkerMakesNoProgress() throws {
        try withNamespace(prefix: "wth") { ns in
            let agent = try startAgent(ns, ["--workers", "2"])
            defer { agent.stop() }
            #expect(try adminGet(ns, "/healthz") == (200, "ok\n"))
            let freezer = try BackgroundProcess(ns, ["/usr/bin/python3", freezeWorkersScript, "\(agent.pid)"])
            defer { freezer.stop() }
            try freezer.waitFor("frozen 2")
            var last = (0, "")
            #expect(try eventually(10) { last = try adminGet(ns, "/healthz"); return last.0 == 503 }, "\(last)")
            #expect(last.1 == "unhealthy: no progress in worker-0, worker-1\n", "\(last)")
            freezer.stop()
            #expect(try eventually(10) { try adminGet(ns, "/healthz") == (200, "ok\n") })
        }
    }

    /// The accept queue and drops come from each listener itself: with the workers stopped (ptrace, the admin thread
    /// runs on), connections wait in the outbound listener's queue, and past its tiny backlog the kernel drops them.
    @Test func listenerQueueAndDropsAreReadFromTheListenerItself() throws {
        try withNamespace(prefix: "wtq") { ns in
            try ns.exec(["sysctl", "-qw", "net.core.somaxconn=2"])
            let agent = try startAgent(ns, ["--workers", "1"])
            defer { agent.stop() }
            let freezer = try BackgroundProcess(ns, ["/usr/bin/python3", freezeWorkersScript, "\(agent.pid)"])
            defer { freezer.stop() }
            try freezer.waitFor("frozen 1")
            let clients = try BackgroundProcess(ns, ["/usr/bin/python3", "-c", """
                import socket, time
                socks = []
                for i in range(12):
                    s = socket.socket(); s.setblocking(False)
                    try: s.connect(("127.0.0.1", 15001))
                    except BlockingIOError: pass
                    socks.append(s)
                print("connecting", flush=True)
                time.sleep(30)
                """])
            defer { clients.stop() }
            try clients.waitFor("connecting")
            let labels = "{family=\"ipv4\",listener=\"outbound\",worker=\"0\"}"
            var metrics = ""
            let seen = try eventually(10) {
                metrics = try adminGet(ns, "/metrics").1
                return (metricValue(metrics, "weir_proxy_listen_queue_length" + labels) ?? 0) > 0
                    && (metricValue(metrics, "weir_proxy_listen_drops_total" + labels) ?? 0) > 0
            }
            #expect(seen, "\(metrics)")
            // somaxconn 2: the queue holds at most 3; the limit is the backlog.
            #expect(metricValue(metrics, "weir_proxy_listen_queue_limit" + labels) == 2)
            #expect((metricValue(metrics, "weir_proxy_listen_queue_length" + labels) ?? 0) <= 3)
            // The other listeners saw none of it.
            let inbound = "{family=\"ipv4\",listener=\"inbound\",worker=\"0\"}"
            #expect(metricValue(metrics, "weir_proxy_listen_drops_total" + inbound) == 0)
            freezer.stop()
            // Running again, the worker takes the queue.
            #expect(try eventually(10) {
                metricValue(try adminGet(ns, "/metrics").1, "weir_proxy_listen_queue_length" + labels) == 0
            })
        }
    }

    /// A connection that moves nothing becomes idle after 10 s; on SIGTERM the drain gauges say how many are left
    /// and when the drain ends at the latest, while /metrics still answers.
    @Test func idleAndDrainGaugesFollowARealConnection() throws {
        try withInboundNamespaces { app, cl in
            let world = try startServer(cl, addresses: ["198.18.1.2"])
            defer { world.stop() }
            let agent = try startAgent(app, ["-i", "*", "--drain-timeout", "6s", "--idle-timeout", "0"])
            defer { agent.stop() }
            let held = try BackgroundProcess(app, ["/usr/bin/python3", "-c", """
                import socket, time
                s = socket.create_connection(("198.18.1.2", \(appPort)), timeout=5)
                print("connected", flush=True)
                time.sleep(40)
                """])
            defer { held.stop() }
            try held.waitFor("connected")
            var m = ""
            #expect(try eventually(20) {
                m = try adminGet(app, "/metrics").1
                return metricValue(m, "weir_proxy_connections_idle") == 1
            }, "\(m)")
            #expect(metricValue(m, "weir_proxy_connections_draining") == 0)
            #expect(metricValue(m, "weir_proxy_drain_deadline_timestamp_seconds") == 0)
            agent.signal(SIGTERM)
            #expect(try eventually(5) {
                m = try adminGet(app, "/metrics").1
                return metricValue(m, "weir_proxy_draining") == 1 && metricValue(m, "weir_proxy_connections_draining") == 1
            }, "\(m)")
            let started = metricValue(m, "weir_proxy_drain_started_timestamp_seconds") ?? 0
            let deadline = metricValue(m, "weir_proxy_drain_deadline_timestamp_seconds") ?? 0
            #expect(deadline - started == 6, "started \(started) deadline \(deadline)")
            #expect(abs(started - Date().timeIntervalSince1970) < 5)
            // The deadline closes it and the agent exits.
            #expect(agent.wait(timeout: 15) == 0)
            #expect(agent.output.contains("drain_closed=1"), "\(agent.output)")
        }
    }
}

let freezeWorkersScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Support/freeze_workers.py").path

