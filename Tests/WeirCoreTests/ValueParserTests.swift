import Testing
import WeirCore
import WeirTestSupport

/// The one parser of each kind of value: bytes in, a typed value or nil out, and one message per kind.
struct ValueParserTests {
    @Test(arguments: [("1", UInt16(1)), ("65535", 65535), ("15001", 15001), ("0080", 80)])
    func ports(text: String, port: UInt16) {
        #expect(ValueKinds.port.value(text) == port)
    }

    @Test(arguments: ["", "0", "65536", "+80", "-1", " 80", "80 ", "8o", "１５００１", "99999999999999999999999"])
    func badPorts(text: String) {
        #expect(ValueKinds.port.value(text) == nil)
    }

    /// Apart from the list above: Swift Testing prints a test's arguments, and a NUL cuts its line short, which hid the
    /// next test's result line from scripts/test.sh's count.
    @Test func aPortWithANULIsRefused() {
        #expect(ValueKinds.port.value("80\u{0}") == nil)
    }

    @Test func oneMessagePerKind() {
        #expect(configError { _ = try ValueKinds.port.parse("0", from: .flag("--proxy-port")) }
            == "--proxy-port '0' is not a port: expected 1 to 65535")
        #expect(configError { _ = try ValueKinds.id("UID").parse("4294967295", from: .variable("PROXY_UID")) }
            == "PROXY_UID '4294967295' is not a UID: expected 0 to 4294967294")
        #expect(configError { _ = try ValueKinds.mark.parse("0", from: .flag("-t")) }
            == "-t '0' is not a mark: expected 1 to 4294967295")
        #expect(configError { _ = try ValueKinds.mode.parse("NAT", from: .flag("-m")) }
            == "-m 'NAT' is not a mode: expected REDIRECT or TPROXY")
    }

    @Test func nonASCIIGivesTheOneLineError() {
        let message = configError { _ = try ValueKinds.port.parse("１５\u{2028}００１", from: .flag("-p")) }
        #expect(message == "-p '１５\\u{2028}００１' is not a port: expected 1 to 65535")
        let cidr = configError {
            _ = try CaptureConfig.parse(flags: ["istio-service-exclude-cidr": ["10.0.0.0/8,１０.0.0.0/8"]])
        }
        #expect(cidr == "-x '１０.0.0.0/8' is not an IP address or CIDR: expected e.g. 10.0.0.0/8 or 2001:db8::/32")
        #expect(ValueKinds.mode.value("tproxy\u{301}") == nil)
    }

    @Test func modesInAnyCase() {
        #expect(ValueKinds.mode.value("tproxy") == .tproxy && ValueKinds.mode.value("Redirect") == .redirect)
        #expect(ValueKinds.mode.value("TPROXYX") == nil && ValueKinds.mode.value("") == nil)
    }

    @Test func durationsAndSizes() {
        #expect(ValueKinds.duration.value("0") == 0 && ValueKinds.duration.value("0s") == 0)
        #expect(ValueKinds.duration.value("250ms") == 250 && ValueKinds.duration.value("2h") == 7_200_000)
        for bad in ["", "ms", "5", "5 s", "5S", "1.5s", "-5s", "5sec"] { #expect(ValueKinds.duration.value(bad) == nil) }
        #expect(ValueKinds.size.value("4096") == 4096 && ValueKinds.size.value("64KiB") == 65536)
        #expect(ValueKinds.size.value("1MiB") == 1 << 20)
        for bad in ["", "KiB", "1kib", "1 KiB", "1GiB", "-1"] { #expect(ValueKinds.size.value(bad) == nil) }
        // Found by the cidr-port-interface fuzzer: a number past UInt64 is refused, not an overflow trap.
        #expect(ValueKinds.size.value("50" + String(repeating: "2", count: 50)) == nil)
        #expect(ValueKinds.size.value(String(Int.max)) == Int.max)
        #expect(ValueParser.decimal(String(UInt64.max), max: .max) == .max)
        #expect(ValueParser.decimal("18446744073709551616", max: .max) == nil)
    }

    @Test func trimmingIsASCIIWhitespaceOnly() throws {
        #expect(ValueParser.withBytes(" \t15001\r\n ") { String(decoding: ValueParser.trimmed($0), as: UTF8.self) }
            == "15001")
        #expect(ValueParser.withBytes("   ") { ValueParser.trimmed($0).isEmpty })
        #expect(try CaptureConfig.parse(flags: ["envoy-port": ["\t15101 \r\n"]]).proxyPort == 15101)
    }

    @Test func emptyEntriesAndWhitespaceInLists() throws {
        #expect(try CaptureConfig.parse(flags: ["istio-inbound-ports": [" 80 ,, ,443,"]]).inboundPorts == .list([80, 443]))
        #expect(try CaptureConfig.parse(flags: ["istio-inbound-ports": [" , ,"]]).inboundPorts == .none)
        #expect(configError { _ = try CaptureConfig.parse(flags: ["proxy-uid": [" , "]]) }
            == "-u is empty: expected at least one UID")
    }

    @Test(arguments: [("0.0.0.0", true), ("255.255.255.255", true), ("10.0.0.1", true), ("01.2.3.4", false),
                      ("1.2.3", false), ("1.2.3.4.5", false), ("256.1.1.1", false), ("1..2.3", false),
                      ("1.2.3.4.", false), (".1.2.3", false), ("1.2.3.0004", false), ("", false),
                      ("::", true), ("::1", true), ("1::", true), ("2001:db8::1", true), ("::ffff:1.2.3.4", true),
                      ("1:2:3:4:5:6:7:8", true), ("1:2:3:4:5:6:7:8:9", false), (":::", false), ("1::2::3", false),
                      ("12345::", false), ("g::", false), ("1:2:3:4:5:6:7", false), ("::1.2.3", false),
                      ("+1::", false), ("1:2:3:4:5:6:1.2.3.4", true)])
    func addresses(text: String, valid: Bool) {
        let address = IPAddress(text)
        #expect((address != nil) == valid, "\(text)")
        if let address { #expect(IPAddress(address.description) == address) }
    }

    @Test func cidrsParseAndRefuse() throws {
        #expect(try CIDR.parse("10.0.0.0/8").get().description == "10.0.0.0/8")
        #expect(try CIDR.parse("2001:db8::/32").get().description == "2001:db8::/32")
        #expect(try CIDR.parse("10.1.2.3/8", allowHostBits: true).get().description == "10.0.0.0/8")
        #expect(configError { _ = try CIDR.parse("10.0.0.0/").get() }
            == "'10.0.0.0/' has a bad prefix length: expected 0 to 32")
        #expect(configError { _ = try CIDR.parse("10.0.0.0/8/8").get() }
            == "'10.0.0.0/8/8' has a bad prefix length: expected 0 to 32")
        #expect(configError { _ = try CIDR.parse("10.0.0.1/8").get() }
            == "'10.0.0.1/8' has host bits set: expected 10.0.0.0/8 (or a /32 for the single address)")
    }

    @Test func rangesThatArePrefixes() throws {
        func range(_ a: String, _ b: String) -> IPRange { IPRange(first: IPAddress(a)!, last: IPAddress(b)!) }
        #expect(range("10.0.0.0", "10.0.0.255").asCIDR?.description == "10.0.0.0/24")
        #expect(range("10.0.0.0", "10.0.1.255").asCIDR?.description == "10.0.0.0/23")
        #expect(range("10.0.0.7", "10.0.0.7").asCIDR?.description == "10.0.0.7")
        #expect(range("0.0.0.0", "255.255.255.255").asCIDR?.description == "0.0.0.0/0")
        #expect(range("10.0.0.1", "10.0.0.2").asCIDR == nil)
        #expect(range("10.0.0.0", "10.0.2.255").asCIDR == nil)
        #expect(range("10.0.0.0", "10.0.1.254").asCIDR == nil)
        #expect(range("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").asCIDR?.description == "::/0")
        #expect(range("2001:db8::", "2001:db8::ffff").asCIDR?.description == "2001:db8::/112")
    }

    @Test func aVeryLongListFileIsReadLineByLine() throws {
        var text = ""
        for i in 0..<100_000 { text += "198.\(18 + i >> 16).\((i >> 8) & 255).\(i & 255)/32\(i % 3 == 0 ? "\r\n" : "\n")" }
        let c = try CaptureConfig.parse(flags: ["istio-service-exclude-cidr": ["@/l"]], readFile: { _ in .success(text) })
        #expect(c.outboundExcludeCIDRs.count == 100_000)
        let message = configError {
            _ = try CaptureConfig.parse(flags: ["istio-service-exclude-cidr": ["@/l"]],
                                        readFile: { _ in .success(text + "banana\n") })
        }
        #expect(message == "-x @/l:100001 'banana' is not an IP address or CIDR: expected e.g. 10.0.0.0/8 or 2001:db8::/32")
    }

    @Test func errorsCarryTheirSource() {
        func source(_ body: () throws -> Void) -> ValueSource? {
            do { try body() } catch let e as ConfigError { return e.source } catch {}
            return nil
        }
        #expect(source { _ = try CaptureConfig.parse(flags: [:], environment: ["ENVOY_PORT": "x"]) }
            == .variable("ENVOY_PORT"))
        #expect(source { _ = try CaptureConfig.parse(flags: ["envoy-port": ["x"]]) } == .flag("-p"))
        #expect(source {
            _ = try CaptureConfig.parse(flags: ["istio-service-cidr": ["@/l"]], readFile: { _ in .success("\n\nx\n") })
        } == .listFile("-i", path: "/l", line: 3))
        let file = ValueSource.configFile(path: "/etc/weir/weir.conf", line: 4, key: "ENVOY_PORT")
        #expect(source {
            _ = try CaptureConfig.parse(flags: [:], environment: ["ENVOY_PORT": "x"], environmentSource: { _ in file })
        } == file)
        #expect(file.description == "/etc/weir/weir.conf:4 ENVOY_PORT")
        #expect(ValueSource.listFile("-i", path: "/a\nb", line: 2).description == "-i @/a\\nb:2")
        #expect(ValueSource.defaultValue("-p").description == "-p (default)")
    }

    @Test func proxyLimitsFromAFileNameTheFile() {
        var flags = ProxyConfig.Flags()
        flags.idleTimeout = "1d"
        flags.sources[\.idleTimeout] = .configFile(path: "w.conf", line: 4, key: "WEIR_IDLE_TIMEOUT")
        #expect(configError { _ = try ProxyConfig.parse(flags) }
            == "w.conf:4 WEIR_IDLE_TIMEOUT '1d' is not a duration: expected 0 or a number with ms, s, m or h, like 5s")
    }

    @Test func proxyConfigFromTheCaptureValues() throws {
        let capture = try CaptureConfig.parse(flags: ["envoy-port": ["16001"], "proxy-uid": ["7,3"], "proxy-gid": ["9"],
                                                      "istio-inbound-interception-mode": ["tproxy"],
                                                      "istio-inbound-tproxy-mark": ["5"]])
        let proxy = ProxyConfig(capture: capture)
        #expect(proxy.proxyPort == 16001 && proxy.inboundCapturePort == 15006 && proxy.mode == .tproxy)
        #expect(proxy.proxyUID == 3 && proxy.proxyGID == 9 && proxy.tproxyMark == 5)
        var limits = ProxyConfig.Flags()
        limits.workers = "2"
        let withLimits = try ProxyConfig.parse(limits, base: proxy)
        #expect(withLimits.workers == 2 && withLimits.proxyPort == 16001)
    }

    @Test func everyFlagsHelpNamesItsVariablesAndDefault() {
        for flag in CaptureFlag.all + CaptureFlag.invocation {
            #expect(!flag.summary.isEmpty, "\(flag.long)")
            for name in flag.environments { #expect(flag.help.contains(name), "\(flag.long)") }
            if let d = flag.defaultText { #expect(flag.help.hasSuffix("(default: \(d))"), "\(flag.long)") }
        }
        #expect(CaptureFlag.proxyPort.help == "Port outbound TCP is redirected to. Env ENVOY_PORT. (default: 15001)")
        #expect(CaptureFlag.proxyPort.longNames(weirFirst: true) == ["proxy-port", "envoy-port"])
    }
}
