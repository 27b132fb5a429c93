import Foundation
import Testing

/// Real connections through `weir proxy` in throwaway namespaces: where they go, from which source, and that the
/// proxy's own upstream connections are never captured again.
@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct ProxyForwardingTests {
    @Test(arguments: ["198.18.0.1", "2001:db8::1"])
    func outboundRedirectReachesOriginalDestination(address: String) throws {
        try withOutboundNamespace { ns in
            let server = try startServer(ns, addresses: ["198.18.0.1", "2001:db8::1"])
            defer { server.stop() }
            let proxy = try startProxy(ns, ["--workers", "2"])
            defer { proxy.stop() }
            let reply = try client(ns, "peer", address)
            // The server saw the proxy's upstream, whose source is the namespace's own address; echo and EOF work.
            #expect(reply == "peer=\(address == "198.18.0.1" ? "198.18.0.2" : "2001:db8::2") echo=True eof=True")
            let c = try stopProxy(proxy)
            // Exactly one accepted connection: the upstream passed the owner match instead of looping into 15001.
            #expect(c["accepted"] == 1)
            #expect(c["closed"] == 1)
            #expect(c["not_redirected"] == 0)
        }
    }

    @Test func upstreamIsOwnedByTheProxyUIDFlag() throws {
        // Rules that exempt UID 4242 only: forwarding works exactly once when the proxy runs with -u 4242 -g 4242,
        // so every upstream socket is owned by that UID (root keeps its capabilities; see docs/proxy.md).
        try withOutboundNamespace(proxyUID: 4242) { ns in
            let server = try startServer(ns, addresses: ["198.18.0.1"])
            defer { server.stop() }
            let proxy = try startProxy(ns, ["-u", "4242", "-g", "4242", "--workers", "1"])
            defer { proxy.stop() }
            #expect(try client(ns, "peer", "198.18.0.1") == "peer=198.18.0.2 echo=True eof=True")
            let c = try stopProxy(proxy)
            #expect(c["accepted"] == 1)
        }
    }

    @Test(arguments: [("198.18.1.1", "127.0.0.6"), ("2001:db8:1::1", "::6")])
    func inboundRedirectHandsOffFromLocalSource(address: String, source: String) throws {
        try withInboundNamespaces { app, cl in
            try installInboundRedirect(app)
            let server = try startServer(app, addresses: ["198.18.1.1", "2001:db8:1::1"])
            defer { server.stop() }
            let proxy = try startProxy(app, ["--workers", "2"])
            defer { proxy.stop() }
            #expect(try client(cl, "peer", address) == "peer=\(source) echo=True eof=True")
            let c = try stopProxy(proxy)
            #expect(c["accepted"] == 1)
        }
    }

    @Test(arguments: [("198.18.1.1", "198.18.1.2"), ("2001:db8:1::1", "2001:db8:1::2")])
    func inboundTPROXYKeepsClientAddress(address: String, clientAddress: String) throws {
        try withInboundNamespaces { app, cl in
            try installInboundTPROXY(app)
            let server = try startServer(app, addresses: ["198.18.1.1", "2001:db8:1::1"])
            defer { server.stop() }
            let proxy = try startProxy(app, ["--mode", "TPROXY", "--workers", "2"])
            defer { proxy.stop() }
            // The application sees the real client, which lives in another namespace.
            #expect(try client(cl, "peer", address) == "peer=\(clientAddress) echo=True eof=True")
            let c = try stopProxy(proxy)
            #expect(c["accepted"] == 1)
        }
    }

    /// As systemd starts it: `User=` the proxy user, `AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW`.
    static let asProxyUser = ["setpriv", "--reuid", "1337", "--regid", "1337", "--clear-groups",
                              "--inh-caps", "+net_admin,+net_raw", "--ambient-caps", "+net_admin,+net_raw"]

    @Test func outboundWorksWhenStartedAsTheProxyUser() throws {
        try withOutboundNamespace { ns in
            let server = try startServer(ns, addresses: ["198.18.0.1"])
            defer { server.stop() }
            let proxy = try BackgroundProcess(ns, Self.asProxyUser + [weirBinary, "proxy"])
            defer { proxy.stop() }
            try proxy.waitFor("event=started")
            #expect(try client(ns, "peer", "198.18.0.1") == "peer=198.18.0.2 echo=True eof=True")
            let c = try stopProxy(proxy)
            #expect(c["accepted"] == 1)
        }
    }

    @Test func tproxyWorksWhenStartedAsTheProxyUser() throws {
        try withInboundNamespaces { app, cl in
            try installInboundTPROXY(app)
            let server = try startServer(app, addresses: ["198.18.1.1"])
            defer { server.stop() }
            let proxy = try BackgroundProcess(app, Self.asProxyUser + [weirBinary, "proxy", "-m", "TPROXY"])
            defer { proxy.stop() }
            try proxy.waitFor("event=started")
            #expect(try client(cl, "peer", "198.18.1.1") == "peer=198.18.1.2 echo=True eof=True")
            let c = try stopProxy(proxy)
            #expect(c["accepted"] == 1)
        }
    }

    @Test func directConnectionToCapturePortIsRefusedNotForwarded() throws {
        try withOutboundNamespace { ns in
            let proxy = try startProxy(ns, ["--workers", "1"])
            defer { proxy.stop() }
            for target in ["127.0.0.1", "::1"] {
                for port: UInt16 in [15001, 15006] {
                    let r = try client(ns, "expect", target, port: port, "5")
                    #expect(r.hasPrefix("outcome=reset") || r.hasPrefix("outcome=eof"), "\(target):\(port) \(r)")
                }
            }
            let c = try stopProxy(proxy)
            #expect(c["not_redirected"] == 4)
            #expect(c["active"] == 0)
        }
    }

    @Test func oneGiBWithChecksumAtBothEnds() throws {
        try withOutboundNamespace { ns in
            let server = try startServer(ns, addresses: ["198.18.0.1"])
            defer { server.stop() }
            let proxy = try startProxy(ns, ["--workers", "2"])
            defer { proxy.stop() }
            #expect(try client(ns, "sha", "198.18.0.1", "\(1 << 30)") == "bytes=\(1 << 30) match=True")
            let c = try stopProxy(proxy)
            #expect(c["accepted"] == 1)
            #expect(c["copy_fallbacks"] == 0)
            // Every byte is counted once: "SHA\n" and 1 GiB up; "<count> <sha256 hex>\n" (76 bytes) back.
            #expect(c["bytes_from_client"] == 4 + (1 << 30))
            #expect(c["bytes_from_upstream"] == 76)
        }
    }

    @Test func tproxyLargeTransferWithChecksum() throws {
        try withInboundNamespaces { app, cl in
            try installInboundTPROXY(app)
            let server = try startServer(app, addresses: ["198.18.1.1"])
            defer { server.stop() }
            let proxy = try startProxy(app, ["--mode", "TPROXY"])
            defer { proxy.stop() }
            #expect(try client(cl, "sha", "198.18.1.1", "\(64 << 20)") == "bytes=\(64 << 20) match=True")
            _ = try stopProxy(proxy)
        }
    }
}
