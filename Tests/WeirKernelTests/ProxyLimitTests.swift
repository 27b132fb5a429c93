import Foundation
import Testing

/// Every limit of the proxy, end to end: idle timeout, maximum connections, descriptor exhaustion, drain, leaks.
@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct ProxyLimitTests {
    @Test func idleConnectionsAreClosedAndResourcesReturn() throws {
        try withOutboundNamespace { ns in
            let server = try startServer(ns, addresses: ["198.18.0.1"])
            defer { server.stop() }
            let proxy = try startProxy(ns, ["--idle-timeout", "1s", "--workers", "2"])
            defer { proxy.stop() }
            let baseline = descriptors(proxy.pid)
            let baselineRSS = anonymousKiB(proxy.pid)
            let reply = try client(ns, "idle-many", "198.18.0.1", "300,15")
            #expect(reply.hasSuffix("held=300 closed_by_proxy=300"))
            // Every socket is gone; only the bounded pipe pools (16 pipes per worker) may remain.
            let after = descriptors(proxy.pid)
            #expect(after.sockets == baseline.sockets)
            #expect(after.pipes <= 2 * 16 * 2)
            // Memory is back near its baseline (connection state is a few hundred bytes; allow malloc slack).
            #expect(anonymousKiB(proxy.pid) < baselineRSS + 512)
            let c = try stopProxy(proxy)
            #expect(c["idle_timeouts"] == 300)
            #expect(c["active"] == 0)
        }
    }

    @Test(arguments: [false, true])
    func bufferLimitHoldsAgainstASlowReader(copy: Bool) throws {
        try withOutboundNamespace { ns in
            let server = try startServer(ns, addresses: ["198.18.0.1"])
            defer { server.stop() }
            // --no-splice forces the bounded copy instead of splice, the path used when splice cannot be.
            let proxy = try startProxy(ns, ["--buffer-limit", "4KiB"] + (copy ? ["--no-splice"] : []))
            defer { proxy.stop() }
            let rss = anonymousKiB(proxy.pid)
            #expect(try client(ns, "slowsha", "198.18.0.1", "\(16 << 20)") == "bytes=\(16 << 20) match=True")
            // The slow reader made the proxy stop reading at its limit, and no buffer grew in the process.
            #expect(anonymousKiB(proxy.pid) < rss + 1024)
            let c = try stopProxy(proxy)
            #expect((c["buffer_full"] ?? 0) > 0)
            #expect(copy ? (c["copy_fallbacks"] ?? 0) > 0 : c["copy_fallbacks"] == 0)
            #expect(c["bytes_from_client"] == 8 + (16 << 20))  // "SLOWSHA\n" and the payload, whichever path
            #expect(c["bytes_from_upstream"] == 8 + 1 + 64 + 1)
        }
    }

    @Test func idleTimeoutZeroKeepsConnections() throws {
        try withOutboundNamespace { ns in
            let server = try startServer(ns, addresses: ["198.18.0.1"])
            defer { server.stop() }
            let proxy = try startProxy(ns, ["--idle-timeout", "0"])
            defer { proxy.stop() }
            #expect(try client(ns, "idle", "198.18.0.1", "2") == "echo=True after_idle=timeout")
            let c = try stopProxy(proxy)
            #expect(c["idle_timeouts"] == 0)
        }
    }

    @Test func maximumConnectionsRefusesNewOnesAndKeepsOldOnes() throws {
        try withOutboundNamespace { ns in
            let server = try startServer(ns, addresses: ["198.18.0.1"])
            defer { server.stop() }
            let proxy = try startProxy(ns, ["--max-connections", "5", "--workers", "2"])
            defer { proxy.stop() }
            let reply = try client(ns, "maxconn", "198.18.0.1", "5")
            #expect(reply == "extra=reset still_working=5 of=5")
            let c = try stopProxy(proxy)
            #expect(c["refused_max_connections"] == 1)
            #expect(c["accepted"] == 6)
        }
    }

    @Test func runningOutOfDescriptorsNeitherSpinsNorSticks() throws {
        try withOutboundNamespace { ns in
            let server = try startServer(ns, addresses: ["198.18.0.1"])
            defer { server.stop() }
            // 64 descriptors: about 25 proxied connections fit; 120 clients arrive at once.
            let proxy = try startProxy(ns, ["--workers", "1"], shellPrefix: "ulimit -n 64;")
            defer { proxy.stop() }
            let flood = try BackgroundProcess(ns, ["python3", "-u", proxyHelper, "client", "flood", "198.18.0.1",
                                                   "8080", "120"])
            defer { flood.stop() }
            try flood.waitFor("FLOODED", timeout: 30)
            // While the proxy is out of descriptors, it must not burn a CPU (100 ticks per second is a full CPU).
            let before = cpuTicks(proxy.pid)
            usleep(1_500_000)
            let ticks = cpuTicks(proxy.pid) - before
            #expect(ticks < 50, "proxy used \(ticks) ticks in 1.5 s while out of descriptors")
            try flood.waitFor("after=", timeout: 30)
            let result = flood.output.split(separator: "\n").last.map(String.init) ?? ""
            let ok = Int(result.split(separator: " ").first?.dropFirst(3) ?? "") ?? 0
            #expect(ok > 5 && ok < 120, "\(result)")
            // Descriptors freed up: a new connection is forwarded again.
            #expect(result.hasSuffix("after=peer=198.18.0.2"), "\(result)")
            let c = try stopProxy(proxy)
            #expect((c["fd_exhausted"] ?? 0) >= 1)
        }
    }

    @Test func drainOnSIGTERMLetsOpenConnectionsFinish() throws {
        try withOutboundNamespace { ns in
            let server = try startServer(ns, addresses: ["198.18.0.1"])
            defer { server.stop() }
            let proxy = try startProxy(ns, ["--drain-timeout", "20s"])
            defer { proxy.stop() }
            let reply = try client(ns, "drain", "198.18.0.1", "\(proxy.pid)")
            // New connections are refused at once (listeners closed); the open one keeps working until it ends.
            #expect(reply == "before=True new=refused after=True")
            // The last connection closed, so the proxy exits 0 without waiting for the 20 s deadline.
            #expect(proxy.wait(timeout: 10) == 0)
            let c = counters(in: proxy.output)
            #expect(c["drain_closed"] == 0)
            #expect(c["closed"] == 1)
        }
    }

    /// A drain that starts while new connections keep arriving: listener events can follow the wake-up in the same
    /// batch of epoll events, after the drain closed the listeners. They must be ignored, never indexed (that
    /// crashed the worker, SIGILL, in about one drain in three under this load).
    @Test func drainWhileConnectionsPourInExitsZero() throws {
        try withOutboundNamespace { ns in
            let load = try loadGenerator()
            let server = try BackgroundProcess(ns.serverSide!, [load, "server", "7000", "198.18.0.1", "2001:db8::1"])
            defer { server.stop() }
            try server.waitFor("READY")
            var statuses: [Int32?] = []
            for _ in 0..<16 {
                let proxy = try startProxy(ns, ["--workers", "2", "--drain-timeout", "1s"])
                defer { proxy.stop() }
                let flood = try BackgroundProcess(ns, [load, "client", "--conns", "200", "--seconds", "5", "--mix",
                                                       "bulk=2,rr=8", "--bulk-max", "1M", "--rounds-max", "3",
                                                       "--think-ms", "0", "--retry-ms", "1", "198.18.0.1:7000",
                                                       "[2001:db8::1]:7000"])
                defer { flood.stop() }
                usleep(500_000)
                proxy.signal(SIGTERM)
                statuses.append(proxy.wait(timeout: 10))
                #expect(statuses.last == 0, "\(proxy.output.suffix(600))")
            }
            #expect(statuses.allSatisfy { $0 == 0 }, "exit statuses: \(statuses)")
        }
    }

    @Test func drainDeadlineClosesWhatIsLeftAndExitsZero() throws {
        try withOutboundNamespace { ns in
            let server = try startServer(ns, addresses: ["198.18.0.1"])
            defer { server.stop() }
            let proxy = try startProxy(ns, ["--drain-timeout", "1s"])
            defer { proxy.stop() }
            #expect(try client(ns, "drain-held", "198.18.0.1", "\(proxy.pid)") == "held=eof")
            #expect(proxy.wait(timeout: 10) == 0)
            let c = counters(in: proxy.output)
            #expect(c["drain_closed"] == 1)
            #expect(c["active"] == 0)
        }
    }

    @Test func noDescriptorLeakAfter100000ShortConnections() throws {
        try withOutboundNamespace { ns in
            let nginx = try startNginx(ns, address: "198.18.0.1")
            defer { nginx.stop() }
            let proxy = try startProxy(ns, ["--workers", "2"])
            defer { proxy.stop() }
            // Just after it starts the proxy may still hold a file for a moment (/proc/self/smaps while it releases
            // its start-up pages): the baseline is two equal counts 100 ms apart.
            var baseline = descriptors(proxy.pid)
            for _ in 0..<20 {
                usleep(100_000)
                let again = descriptors(proxy.pid)
                if again == baseline { break }
                baseline = again
            }
            var requests = 0
            for _ in 0..<30 where requests < 100_000 {
                let out = try ns.exec(["wrk", "-t2", "-c16", "-d4s", "-H", "Connection: close",
                                       "http://198.18.0.1:8080/"])
                let line = out.split(separator: "\n").first { $0.contains("requests in") } ?? ""
                requests += Int(line.trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "") ?? 0
            }
            #expect(requests >= 100_000)
            usleep(300_000)
            let after = descriptors(proxy.pid)
            #expect(after.sockets == baseline.sockets)
            #expect(after.pipes <= 2 * 16 * 2)
            #expect(after.other == baseline.other)
            let c = try stopProxy(proxy)
            #expect((c["accepted"] ?? 0) >= 100_000)
            #expect(c["accepted"] == c["closed"])
            #expect(c["active"] == 0)
        }
    }
}

/// nginx-light answering `ok` on port 8080, for connection-rate tests.
func startNginx(_ ns: TestNamespace, address: String) throws -> BackgroundProcess {
    let dir = NSTemporaryDirectory() + "wtp-nginx-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let conf = """
    daemon off; master_process off; worker_processes 1; pid \(dir)/nginx.pid; error_log stderr warn;
    events { worker_connections 8192; }
    http {
      access_log off; client_body_temp_path \(dir); proxy_temp_path \(dir); fastcgi_temp_path \(dir);
      uwsgi_temp_path \(dir); scgi_temp_path \(dir);
      server { listen \(address):8080 backlog=4096; location / { return 200 "ok\\n"; } }
    }
    """
    try conf.write(toFile: dir + "/nginx.conf", atomically: true, encoding: .utf8)
    let host = ns.serverSide ?? ns
    let p = try BackgroundProcess(host, ["nginx", "-c", dir + "/nginx.conf", "-e", "stderr"])
    p.cleanupPaths.append(dir)
    let end = Date().addingTimeInterval(5)
    while Date() < end {
        // Asked with ss, not by connecting: connections to 8080 are captured.
        if let out = try? host.exec(["ss", "-Hltn", "sport = :8080"]), out.contains("8080") { return p }
        usleep(50_000)
    }
    throw HarnessError("nginx did not start: \(p.output)")
}
