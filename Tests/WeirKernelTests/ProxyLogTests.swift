import Foundation
import Testing

@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct ProxyLogTests {
    /// A storm of per-connection events (here: 200 connections straight to the capture port) is counted in full but
    /// logged at most 10 lines per event per second per worker, with the number left out.
    @Test func perConnectionEventLinesAreRateLimited() throws {
        try withOutboundNamespace { ns in
            let proxy = try startProxy(ns, ["--workers", "1"])
            let started = Date()
            let storm = """
                import socket
                for _ in range(200):
                    s = socket.socket()
                    try:
                        s.connect(("127.0.0.1", 15001)); s.recv(1)
                    except OSError:
                        pass
                    s.close()
                """
            _ = try ns.run(["python3", "-c", storm])
            let seconds = Int(Date().timeIntervalSince(started).rounded(.up))
            Thread.sleep(forTimeInterval: 1.1)
            // One more after the window: it carries the count of the lines left out.
            _ = try ns.run(["python3", "-c", "import socket; s=socket.socket(); s.connect(('127.0.0.1', 15001))"])
            let counters = try stopProxy(proxy)
            #expect(counters["not_redirected"] == 201)
            let lines = proxy.output.split(separator: "\n").filter { $0.contains("event=not_redirected") }
            #expect(lines.count <= 10 * (seconds + 2), "\(lines.count) lines in \(seconds) s")
            #expect(lines.count >= 10)
            #expect(lines.contains { $0.contains("suppressed=") })
        }
    }
}
