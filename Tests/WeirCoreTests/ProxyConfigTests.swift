import Testing
import WeirCore

struct ProxyConfigTests {
    @Test func defaults() throws {
        let c = try ProxyConfig.parse(.init())
        #expect(c.proxyPort == 15001 && c.inboundCapturePort == 15006 && c.mode == .redirect)
        #expect(c.proxyUID == 1337 && c.proxyGID == 1337 && c.tproxyMark == 1337)
        #expect(c.connectTimeoutMs == 5_000 && c.idleTimeoutMs == 3_600_000 && c.drainTimeoutMs == 20_000)
        #expect(c.maxConnections == 10_000 && c.bufferLimit == 65_536 && c.workers == 0)
        #expect(c.tproxySourcePorts == .auto)
    }

    @Test func sourcePorts() throws {
        var f = ProxyConfig.Flags()
        for (text, want) in [("auto", SourcePorts.auto), ("KERNEL", .kernel), ("61000-65535", .range(61000...65535)),
                             ("1024-1087", .range(1024...1087))] {
            f.tproxySourcePorts = text
            #expect(try ProxyConfig.parse(f).tproxySourcePorts == want)
        }
        #expect(SourcePorts.range(61000...65535).text == "61000-65535")
        // `auto`: the ports above ip_local_port_range, when at least 64 are left there.
        #expect(SourcePorts.above(localRange: 32768, 60999) == 61000...65535)
        #expect(SourcePorts.above(localRange: 1024, 65000) == 65001...65535)
        #expect(SourcePorts.above(localRange: 1024, 65472) == nil)
        #expect(SourcePorts.above(localRange: 1024, 65471) == 65472...65535)
    }

    @Test func parsesEveryFlag() throws {
        var f = ProxyConfig.Flags()
        f.proxyPort = "16001"; f.inboundCapturePort = "16006"; f.mode = "tproxy"; f.proxyUID = "1000"
        f.proxyGID = "1001"; f.tproxyMark = "7"; f.connectTimeout = "250ms"; f.idleTimeout = "0"
        f.maxConnections = "5"; f.bufferLimit = "16KiB"; f.drainTimeout = "2m"; f.workers = "3"
        let c = try ProxyConfig.parse(f)
        #expect(c.proxyPort == 16001 && c.inboundCapturePort == 16006 && c.mode == .tproxy)
        #expect(c.proxyUID == 1000 && c.proxyGID == 1001 && c.tproxyMark == 7)
        #expect(c.connectTimeoutMs == 250 && c.idleTimeoutMs == 0 && c.drainTimeoutMs == 120_000)
        #expect(c.maxConnections == 5 && c.bufferLimit == 16_384 && c.workers == 3)
    }

    @Test(arguments: [("0", Int64(0)), ("5s", 5_000), ("1h", 3_600_000), ("10m", 600_000), ("500ms", 500)])
    func durations(text: String, ms: Int64) throws {
        #expect(try ProxyConfig.duration(text, flag: "--x") == ms)
    }

    @Test(arguments: ["", "5", "s", "-1s", "1.5s", "5 s", "1d", "99999999999999999999h"])
    func badDurations(text: String) {
        #expect(throws: ConfigError.self) { try ProxyConfig.duration(text, flag: "--x") }
    }

    static let durations = "expected 0 or a number with ms, s, m or h, like 5s"
    static let sourcePortsProblem =
        "is not a source port choice: expected auto, kernel or LOW-HIGH (1024 to 65535, at least 64 ports)"

    static let badFlags: [(WritableKeyPath<ProxyConfig.Flags, String?>, String, String)] = [
        (\.proxyPort, "0", "--proxy-port '0' is not a port: expected 1 to 65535"),
        (\.proxyPort, "65536", "--proxy-port '65536' is not a port: expected 1 to 65535"),
        (\.inboundCapturePort, "x", "--inbound-capture-port 'x' is not a port: expected 1 to 65535"),
        (\.inboundCapturePort, "15001",
         "--inbound-capture-port '15001' equals --proxy-port: expected two different ports"),
        (\.mode, "NAT", "--mode 'NAT' is not a mode: expected REDIRECT or TPROXY"),
        (\.proxyUID, "-1", "--proxy-uid '-1' is not a UID: expected 0 to 4294967294"),
        (\.proxyGID, "root", "--proxy-gid 'root' is not a GID: expected 0 to 4294967294"),
        // (uid_t)-1 means "unchanged" to setresuid and chown; weir rules refuses it too.
        (\.proxyUID, "4294967295", "--proxy-uid '4294967295' is not a UID: expected 0 to 4294967294"),
        (\.tproxyMark, "0x1", "--tproxy-mark '0x1' is not a mark: expected 1 to 4294967295"),
        // As `weir rules -t 0` refuses it.
        (\.tproxyMark, "0", "--tproxy-mark '0' is not a mark: expected 1 to 4294967295"),
        (\.mode, "RE\nDIRECT", "--mode 'RE\\nDIRECT' is not a mode: expected REDIRECT or TPROXY"),
        (\.connectTimeout, "0", "--connect-timeout '0' is not a duration above 0: expected e.g. 5s"),
        (\.connectTimeout, "5", "--connect-timeout '5' is not a duration: \(durations)"),
        (\.idleTimeout, "1d", "--idle-timeout '1d' is not a duration: \(durations)"),
        (\.drainTimeout, "-", "--drain-timeout '-' is not a duration: \(durations)"),
        (\.maxConnections, "0", "--max-connections '0' is not a positive count: expected 1 to 10000000"),
        (\.bufferLimit, "1KiB", "--buffer-limit '1KiB' is out of range: expected 4KiB to 64MiB"),
        (\.bufferLimit, "lots", "--buffer-limit 'lots' is not a size: expected bytes, or a number with KiB or MiB"),
        (\.workers, "-2", "--workers '-2' is not a worker count: expected 0 (one per usable CPU) to 1024"),
        (\.tproxySourcePorts, "1000-2000", "--tproxy-source-ports '1000-2000' \(sourcePortsProblem)"),
        (\.tproxySourcePorts, "60000-60062", "--tproxy-source-ports '60000-60062' \(sourcePortsProblem)"),
        (\.tproxySourcePorts, "65535-61000", "--tproxy-source-ports '65535-61000' \(sourcePortsProblem)"),
        (\.tproxySourcePorts, "61000-", "--tproxy-source-ports '61000-' \(sourcePortsProblem)"),
        (\.tproxySourcePorts, "61000-70000", "--tproxy-source-ports '61000-70000' \(sourcePortsProblem)"),
    ]

    @Test func badFlagsNameTheValueAndWhatWasExpected() {
        for (key, value, message) in Self.badFlags {
            var f = ProxyConfig.Flags()
            f[keyPath: key] = value
            #expect(throws: ConfigError(message)) { try ProxyConfig.parse(f) }
        }
    }
}
