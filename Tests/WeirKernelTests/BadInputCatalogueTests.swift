import Foundation
import Testing

/// One malformed input of the bad-input catalogue. `$D` in the arguments, the environment, the files' contents and
/// `expected` stands for the row's own scratch directory, where `files` are created first.
struct BadInput: CustomStringConvertible {
    let name: String
    let arguments: [String]
    var environment: [String: String] = [:]
    var files: [ScratchFile] = []
    /// A piece of the one line weir must print: normally the source and the value as `quotedValue` quotes it.
    let expected: String
    /// Run weir without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so that file modes bind root as they bind anyone.
    var withoutFileOverride = false

    init(_ name: String, _ arguments: [String], env environment: [String: String] = [:],
         files: [ScratchFile] = [], expect expected: String, withoutFileOverride: Bool = false) {
        self.name = name
        self.arguments = arguments
        self.environment = environment
        self.files = files
        self.expected = expected
        self.withoutFileOverride = withoutFileOverride
    }

    var description: String { name }
}

/// A file a row needs, by path relative to the row's scratch directory.
enum ScratchFile {
    case text(String, String)
    case bytes(String, [UInt8])
    case directory(String)
    /// Mode 000 (use with `withoutFileOverride`).
    case unreadable(String, String)
    /// A sparse file of this many bytes.
    case sized(String, Int)
}

/// The bad-input catalogue: every row runs the real `weir` in one namespace that already holds a valid weir table
/// (TPROXY, so also ip rules, routes and `::6`) and a tuned profile, and must exit 2 with exactly one line on stderr
/// that names the value and says what was expected, print nothing on stdout, and leave the ruleset, the rules, the
/// routes, the addresses, every `/proc/sys/net` value and the row's own directory exactly as they were.
///
/// The rows are a plain list: add a row, not a test. Capture rows (`weir rules`, istio variables, `@file` lists)
/// belong in `captureRows`.
@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct BadInputCatalogueTests {
    static let tuneCommon = ["--profiles-dir", "$D/p", "--state-dir", "$D/s"]

    static func tune(_ profile: String, _ text: String) -> [ScratchFile] {
        [.text("p/\(profile).profile", text), .text("p/ok.profile", "net.core.somaxconn = 4096\n")]
    }

    /// A profile row: `weir tune --profile x` of `text`, expecting `expected` after `$D/p/x.profile:`.
    static func profile(_ name: String, _ text: String, line: Int = 1, _ expected: String) -> BadInput {
        BadInput("profile: \(name)", ["tune", "--profile", "x"] + tuneCommon, files: tune("x", text),
                 expect: "$D/p/x.profile:\(line) " + expected)
    }

    static func profileBytes(_ name: String, _ bytes: [UInt8], _ expected: String) -> BadInput {
        BadInput("profile: \(name)", ["tune", "--profile", "x"] + tuneCommon, files: [.bytes("p/x.profile", bytes)],
                 expect: "$D/p/x.profile:1 " + expected)
    }

    /// A `--config` row: `weir run --config $D/w.conf` of `text`.
    static func config(_ name: String, _ text: String, files: [ScratchFile] = [], _ expected: String) -> BadInput {
        BadInput("config: \(name)", ["run", "--config", "$D/w.conf"], files: [.text("w.conf", text)] + files,
                 expect: expected)
    }

    /// Bytes that are not text: the start of an ELF file.
    static let garbage: [UInt8] = [0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00, 0x00, 0x00, 0x3e, 0x00, 0xff, 0xfe,
                                   0x0a, 0x9b, 0x1b, 0x5b, 0x32, 0x4a, 0x0a]
    static let long = String(repeating: "9", count: 100_000)
    static let sixtyFour = String(repeating: "9", count: 64)

    static let proxyRows: [BadInput] = [
        BadInput("proxy: TPROXY mark 0, as rules refuses it", ["proxy", "-m", "TPROXY", "-t", "0"],
                 expect: "--tproxy-mark '0' is not a mark: expected 1 to 4294967295"),
        BadInput("proxy: negative mark", ["proxy", "-t", "-5"], expect: "--tproxy-mark '-5' is not a mark"),
        BadInput("proxy: negative port is a value, not an option", ["proxy", "-p", "-1"],
                 expect: "--proxy-port '-1' is not a port: expected 1 to 65535"),
        BadInput("proxy: port 0", ["proxy", "-p", "0"], expect: "--proxy-port '0' is not a port"),
        BadInput("proxy: port too big", ["proxy", "-z", "70000"],
                 expect: "--inbound-capture-port '70000' is not a port"),
        BadInput("proxy: same two ports", ["proxy", "-p", "15001", "-z", "15001"],
                 expect: "--inbound-capture-port '15001' equals --proxy-port"),
        BadInput("proxy: unknown mode", ["proxy", "-m", "NAT"], expect: "--mode 'NAT' is not a mode"),
        BadInput("proxy: newline in a value", ["proxy", "-m", "RE\nDIRECT"],
                 expect: "--mode 'RE\\nDIRECT' is not a mode"),
        BadInput("proxy: escape sequence in a value", ["proxy", "-p", "\u{1b}[2J"], expect: "--proxy-port '\\x1b[2J'"),
        BadInput("proxy: long value is bounded", ["proxy", "-p", long],
                 expect: "--proxy-port '\(sixtyFour)'…(100000 bytes) is not a port"),
        BadInput("proxy: negative UID", ["proxy", "-u", "-1"], expect: "--proxy-uid '-1' is not a UID"),
        BadInput("proxy: UID (uid_t)-1, as rules refuses it", ["proxy", "-u", "4294967295"],
                 expect: "--proxy-uid '4294967295' is not a UID: expected 0 to 4294967294"),
        BadInput("proxy: GID by name", ["proxy", "-g", "root"], expect: "--proxy-gid 'root' is not a GID"),
        BadInput("proxy: connect timeout 0", ["proxy", "--connect-timeout", "0"],
                 expect: "--connect-timeout '0' is not a duration above 0"),
        BadInput("proxy: connect timeout with a space", ["proxy", "--connect-timeout", " 5s"],
                 expect: "--connect-timeout ' 5s' is not a duration"),
        BadInput("proxy: idle timeout word", ["proxy", "--idle-timeout", "forever"],
                 expect: "--idle-timeout 'forever' is not a duration"),
        BadInput("proxy: option given twice", ["proxy", "--idle-timeout", "1h", "--idle-timeout", "2h"],
                 expect: "--idle-timeout given twice with different values '1h' and '2h'"),
        BadInput("proxy: port given twice", ["proxy", "-p", "15001", "--proxy-port", "15002"],
                 expect: "--proxy-port given twice with different values '15001' and '15002'"),
        BadInput("proxy: max connections 0", ["proxy", "--max-connections", "0"],
                 expect: "--max-connections '0' is not a positive count"),
        BadInput("proxy: buffer too small", ["proxy", "--buffer-limit", "1KiB"],
                 expect: "--buffer-limit '1KiB' is out of range"),
        BadInput("proxy: buffer unit", ["proxy", "--buffer-limit", "1GiB"],
                 expect: "--buffer-limit '1GiB' is not a size"),
        BadInput("proxy: negative drain timeout", ["proxy", "--drain-timeout", "-1s"],
                 expect: "--drain-timeout '-1s' is not a duration"),
        BadInput("proxy: too many workers", ["proxy", "--workers", "2000"],
                 expect: "--workers '2000' is not a worker count"),
        BadInput("proxy: unknown option", ["proxy", "--bogus"], expect: "option '--bogus' is not known"),
        BadInput("proxy: stray argument", ["proxy", "extra"], expect: "argument 'extra' is not expected"),
        BadInput("proxy: value for a flag", ["proxy", "--no-splice=yes"], expect: "--no-splice 'yes' is not expected"),
        BadInput("proxy: missing value", ["proxy", "-t"], expect: "-t has no value: expected -t <tproxy-mark>"),
        BadInput("proxy: short options run together", ["proxy", "-pz", "1"],
                 expect: "option '-pz' is not known: expected an option of weir proxy, or a value after -z"),
    ]

    static let tuneRows: [BadInput] = [
        BadInput("tune: no mode", ["tune"] + tuneCommon, expect: "no mode given: expected exactly one of"),
        BadInput("tune: two modes", ["tune", "--profile", "ok", "--revert"] + tuneCommon, files: tune("ok", ""),
                 expect: "--profile 'ok' and --revert given together: expected exactly one of"),
        BadInput("tune: dry run alone", ["tune", "--list-keys", "--dry-run"],
                 expect: "--dry-run without --profile: expected"),
        BadInput("tune: unknown option after a valid one", ["tune", "--state-dir", "$D/s", "--bogus"],
                 expect: "option '--bogus' is not known: expected an option of weir tune"),
        BadInput("tune: misspelt option", ["tune", "--profil", "ok"], expect: "option '--profil' is not known"),
        BadInput("tune: state dir is a file",
                 ["tune", "--profile", "chg", "--profiles-dir", "$D/p", "--state-dir", "$D/f"],
                 files: tune("chg", "net.core.somaxconn = 9000\n") + [.text("f", "")],
                 expect: "--state-dir '$D/f' is a file: expected a directory for tune-state.json"),
        BadInput("tune: state dir below a file", ["tune", "--revert", "--state-dir", "$D/f/sub"],
                 files: [.text("f", "")],
                 expect: "--state-dir '$D/f/sub': '$D/f' is a file: expected a directory"),
        BadInput("tune: state dir given twice", ["tune", "--revert", "--state-dir", "$D/a", "--state-dir", "$D/b"],
                 expect: "--state-dir given twice with different values '$D/a' and '$D/b'"),
        BadInput("tune: profiles dir is a file",
                 ["tune", "--profile", "ok", "--profiles-dir", "$D/f", "--state-dir", "$D/s"],
                 files: [.text("f", "")], expect: "--profiles-dir '$D/f' is a file: expected a directory"),
        // The tests run in the package directory, which holds profiles/default.profile: never loaded from there.
        BadInput("tune: a profile in the working directory", ["tune", "--profile", "default", "--state-dir", "$D/s"],
                 files: [.directory("s")],
                 expect: "--profile 'default' is not a profile: expected a NAME.profile file in /etc/weir/profiles"),
        BadInput("tune: missing profile", ["tune", "--profile", "nosuch"] + tuneCommon, files: tune("ok", ""),
                 expect: "--profile 'nosuch' is not a profile: expected one of ok"),
        BadInput("tune: no profiles at all",
                 ["tune", "--profile", "ok", "--profiles-dir", "$D/none", "--state-dir", "$D/s"],
                 expect: "--profile 'ok' is not a profile: expected a NAME.profile file in $D/none"),
        BadInput("tune: path as a profile name", ["tune", "--profile", "../etc"] + tuneCommon,
                 expect: "--profile '../etc' is not a profile name: expected letters"),
        BadInput("tune: newline in a profile name", ["tune", "--profile", "a\nb"] + tuneCommon,
                 expect: "--profile 'a\\nb' is not a profile name"),
        BadInput("profile: a directory", ["tune", "--profile", "x"] + tuneCommon,
                 files: [.directory("p/x.profile"), .text("p/ok.profile", "")],
                 expect: "--profile 'x': '$D/p/x.profile' is a directory: expected a readable regular file"),
        BadInput("profile: no read permission", ["tune", "--profile", "x"] + tuneCommon,
                 files: [.unreadable("p/x.profile", "net.core.somaxconn = 4096\n"), .text("p/ok.profile", "")],
                 expect: "--profile 'x': '$D/p/x.profile' cannot be read (EACCES", withoutFileOverride: true),
        BadInput("profile: oversized", ["tune", "--profile", "x"] + tuneCommon,
                 files: [.sized("p/x.profile", 80 << 20)],
                 expect: "--profile 'x': '$D/p/x.profile' is 83886080 bytes: expected a readable regular file"),
        profile("NUL after the value", "net.core.somaxconn = 4096\0\n",
                "net.core.somaxconn '4096\\0' is not valid: expected an integer 128..2147483647"),
        profileBytes("binary garbage", garbage,
                     "'\\x7fELF\\x02\\x01\\x01\\0\\0\\0>\\0\\u{fffd}\\u{fffd}' is not 'key = value'"),
        profile("no '='", "net.core.somaxconn 4096\n", "'net.core.somaxconn 4096' is not 'key = value': expected"),
        profile("no key", " = 5\n", "'= 5' has no key before '=': expected"),
        profile("unknown key", "# ok\nnet.core.somaxconnn = 1\n", line: 2,
                "'net.core.somaxconnn' is not a key weir knows: expected"),
        profile("value of the wrong shape", "net.ipv4.ip_local_port_range = 40000\n",
                "net.ipv4.ip_local_port_range '40000' is not valid: expected two integers"),
        profile("value out of range", "net.core.somaxconn = 99999999999999999999\n",
                "net.core.somaxconn '99999999999999999999' is not valid: expected an integer"),
        profile("key twice", "net.core.somaxconn = 4096\nnet.core.somaxconn = 8192\n", line: 2,
                "'net.core.somaxconn' is set again (first on line 1): expected each key once"),
        profile("unknown parameter", "conntrack.bogus = 1\n", "'conntrack.bogus' is not a parameter: expected one of"),
        profile("bad parameter", "conntrack.per_core = lots\n", "conntrack.per_core 'lots' is not valid: expected"),
        profile("raise-only on a range", "net.ipv4.ip_local_port_range = 1024 2048 raise-only\n",
                "net.ipv4.ip_local_port_range '1024 2048 raise-only' is not valid: raise-only applies"),
        profile("derived elsewhere", "net.core.somaxconn = derived\n", "net.core.somaxconn 'derived' is not valid"),
        profile("min above cap", "conntrack.min = 10\nconntrack.cap = 5\n",
                "conntrack.min '10' is above conntrack.cap 5: expected min <= cap"),
        profile("escape sequence in a value", "net.core.somaxconn = \u{1b}[31m4096\n",
                "net.core.somaxconn '\\x1b[31m4096' is not valid"),
        profile("huge value line", "net.core.somaxconn = \(long)\n",
                "net.core.somaxconn '\(sixtyFour)'…(100000 bytes) is not valid"),
        profile("CRLF line ends, bad value", "# c\r\nnet.core.somaxconn = many\r\n", line: 2,
                "net.core.somaxconn 'many' is not valid"),
    ]

    static let statusRows: [BadInput] = [
        BadInput("status: backlog 0", ["status", "--proxy-backlog", "0"],
                 expect: "--proxy-backlog '0' is not a backlog: expected 1 to 2147483647"),
        BadInput("status: negative backlog", ["status", "--proxy-backlog", "-5"],
                 expect: "--proxy-backlog '-5' is not a backlog"),
        BadInput("status: backlog word", ["status", "--proxy-backlog", "lots"],
                 expect: "--proxy-backlog 'lots' is not a backlog"),
        BadInput("status: backlog twice", ["status", "--proxy-backlog", "1", "--proxy-backlog", "2"],
                 expect: "--proxy-backlog given twice with different values '1' and '2'"),
        BadInput("status: unknown option", ["status", "--bogus"], expect: "option '--bogus' is not known"),
        BadInput("status: stray argument", ["status", "now"], expect: "argument 'now' is not expected"),
    ]

    static let runRows: [BadInput] = [
        BadInput("run: idle timeout word", ["run", "--idle-timeout", "forever"],
                 expect: "--idle-timeout 'forever' is not a duration"),
        BadInput("run: negative workers", ["run", "--workers", "-1"], expect: "--workers '-1' is not a worker count"),
        BadInput("run: reconcile too often", ["run", "--reconcile-interval", "50ms"],
                 expect: "--reconcile-interval '50ms' is too short: expected at least 100ms"),
        BadInput("run: reconcile 0", ["run", "--reconcile-interval", "0"],
                 expect: "--reconcile-interval '0' is too short"),
        BadInput("run: admin address without port", ["run", "--admin-address", "localhost"],
                 expect: "--admin-address 'localhost' is not HOST:PORT"),
        BadInput("run: admin port too big", ["run", "--admin-address", "127.0.0.1:99999"],
                 expect: "--admin-address '127.0.0.1:99999' is not HOST:PORT"),
        BadInput("run: missing profile", ["run", "--profile", "nosuch", "--profiles-dir", "$D/p"],
                 files: tune("ok", ""),
                 expect: "--profile 'nosuch' is not a profile: expected one of ok"),
        BadInput("run: profile is a directory", ["run", "--profile", "x", "--profiles-dir", "$D/p"],
                 files: [.directory("p/x.profile")], expect: "--profile 'x': '$D/p/x.profile' is a directory"),
        BadInput("run: state dir is a file",
                 ["run", "--profile", "chg", "--profiles-dir", "$D/p", "--state-dir", "$D/f"],
                 files: tune("chg", "net.core.somaxconn = 9000\n") + [.text("f", "")],
                 expect: "--state-dir '$D/f' is a file: expected a directory"),
        BadInput("run: config missing", ["run", "--config", "$D/none.conf"],
                 expect: "--config '$D/none.conf' does not exist: expected a readable regular file"),
        BadInput("run: config is a directory", ["run", "--config", "$D"], expect: "--config '$D' is a directory"),
        BadInput("run: config oversized", ["run", "--config", "$D/w.conf"], files: [.sized("w.conf", 2 << 20)],
                 expect: "--config '$D/w.conf' is 2097152 bytes: expected"),
        BadInput("run: config unreadable", ["run", "--config", "$D/w.conf"], files: [.unreadable("w.conf", "")],
                 expect: "--config '$D/w.conf' cannot be read (EACCES", withoutFileOverride: true),
        BadInput("run: config given twice", ["run", "--config", "$D/a.conf", "--config", "$D/b.conf"],
                 expect: "--config given twice with different values"),
        BadInput("run: unknown option", ["run", "--bogus"],
                 expect: "option '--bogus' is not known: expected an option of weir run"),
        BadInput("run: value for a flag", ["run", "--cleanup-on-exit", "-1"],
                 expect: "--cleanup-on-exit '-1' is not expected"),
        // The capture values from the environment (the lead's rows cover `weir rules`; these go through `weir run`).
        BadInput("env: ENVOY_PORT word", ["run"], env: ["ENVOY_PORT": "abc"], expect: "'abc'"),
        BadInput("env: ENVOY_PORT newline", ["run"], env: ["ENVOY_PORT": "1\n2"], expect: "'1\\n2'"),
        BadInput("env: unknown mode", ["run"], env: ["ISTIO_INBOUND_INTERCEPTION_MODE": "NAT"], expect: "'NAT'"),
        BadInput("env: mark 0", ["run", "-m", "TPROXY"], env: ["ISTIO_INBOUND_TPROXY_MARK": "0"], expect: "'0'"),
        BadInput("env: CIDR with host bits", ["run"], env: ["ISTIO_SERVICE_CIDR": "10.0.0.1/8"],
                 expect: "'10.0.0.1/8'"),
        // Two of weir's own settings naming one port: refused before anything is bound, naming both and their sources.
        BadInput("run: admin port equals -p", ["run", "--admin-address", "127.0.0.1:15001"],
                 expect: "-p (default) '15001' and --admin-address '127.0.0.1:15001' name the same port 15001: "
                    + "expected a different port for each"),
        BadInput("run: -p equals -z", ["run", "-p", "15006"],
                 expect: "-p '15006' and -z (default) '15006' name the same port 15006"),
        BadInput("run: ENVOY_PORT equals the default admin port", ["run"], env: ["ENVOY_PORT": "15020"],
                 expect: "ENVOY_PORT '15020' and --admin-address (default) '127.0.0.1:15020' name the same port"),
        BadInput("run: DNS proxy port equals -z", ["run", "--redirect-dns", "--capture-all-dns", "-z", "15053"],
                 expect: "-z '15053' and --dns-proxy-port (default) '15053' name the same port 15053"),
        config("admin port in the file equals -z", "WEIR_ADMIN_ADDRESS=[::1]:15006\n",
               "-z (default) '15006' and $D/w.conf:1 WEIR_ADMIN_ADDRESS '[::1]:15006' name the same port 15006"),
    ]

    static let configRows: [BadInput] = [
        config("unknown key", "FOO=1\n", "$D/w.conf:1 'FOO' is not a known key: expected"),
        config("not KEY=VALUE", "# ok\ngarbage line\n", "$D/w.conf:2 'garbage line' is not KEY=VALUE: expected"),
        config("control character", "WEIR_WORKERS=\u{1}\n",
               "$D/w.conf:1 WEIR_WORKERS '\\x01' holds a control character: expected printable text"),
        config("NUL byte",
               "WEIR_IDLE_TIMEOUT=5s\0\n", "$D/w.conf:1 WEIR_IDLE_TIMEOUT '5s\\0' holds a control character"),
        config("bad duration", "ISTIO_INBOUND_PORTS=*\nWEIR_IDLE_TIMEOUT=forever\n",
               "$D/w.conf:2 WEIR_IDLE_TIMEOUT 'forever' is not a duration: expected"),
        config("reconcile too often", "WEIR_RECONCILE_INTERVAL=50ms\n",
               "$D/w.conf:1 WEIR_RECONCILE_INTERVAL '50ms' is too short: expected at least 100ms"),
        config("admin address",
               "WEIR_ADMIN_ADDRESS=nohost\n", "$D/w.conf:1 WEIR_ADMIN_ADDRESS 'nohost' is not HOST:PORT"),
        config("boolean", "WEIR_CLEANUP_ON_EXIT=maybe\n", "$D/w.conf:1 WEIR_CLEANUP_ON_EXIT 'maybe' is not a boolean"),
        config("boolean 2", "WEIR_IPV4_ONLY=2\n", "$D/w.conf:1 WEIR_IPV4_ONLY '2' is not a boolean"),
        config("max connections",
               "WEIR_MAX_CONNECTIONS=0\n", "$D/w.conf:1 WEIR_MAX_CONNECTIONS '0' is not a positive count"),
        config("buffer unit", "WEIR_BUFFER_LIMIT=1GiB\n", "$D/w.conf:1 WEIR_BUFFER_LIMIT '1GiB' is not a size"),
        config("workers, CRLF", "WEIR_WORKERS=x\r\n", "$D/w.conf:1 WEIR_WORKERS 'x' is not a worker count"),
        config("missing profile", "WEIR_PROFILES_DIR=$D/p\nWEIR_PROFILE=nosuch\n", files: tune("ok", ""),
               "$D/w.conf:2 WEIR_PROFILE 'nosuch' is not a profile: expected one of ok"),
        config("profile name", "WEIR_PROFILE=../etc\n", "$D/w.conf:1 WEIR_PROFILE '../etc' is not a profile name"),
        config("profile is a directory", "WEIR_PROFILES_DIR=$D/p\nWEIR_PROFILE=x\n", files: [.directory("p/x.profile")],
               "$D/w.conf:2 WEIR_PROFILE 'x': '$D/p/x.profile' is a directory"),
        config("state dir is a file", "WEIR_STATE_DIR=$D/f\n", files: [.text("f", "")],
               "$D/w.conf:1 WEIR_STATE_DIR '$D/f' is a file: expected a directory"),
        config("profiles dir is a file", "WEIR_PROFILES_DIR=$D/f\nWEIR_PROFILE=ok\n", files: [.text("f", "")],
               "$D/w.conf:1 WEIR_PROFILES_DIR '$D/f' is a file: expected a directory"),
        BadInput("config: bytes that are not UTF-8", ["run", "--config", "$D/w.conf"],
                 files: [.bytes("w.conf", [0xff, 0xfe, 0x3d, 0x31, 0x0a])],
                 expect: "$D/w.conf:1 '\\u{fffd}\\u{fffd}' is not a known key"),
        config("huge value line", "WEIR_IDLE_TIMEOUT=\(long)\n",
               "$D/w.conf:1 WEIR_IDLE_TIMEOUT '\(sixtyFour)'…(100000 bytes) is not a duration"),
        config("capture value", "ENVOY_PORT=abc\n", "'abc'"),
        BadInput("config: binary garbage", ["run", "--config", "$D/w.conf"], files: [.bytes("w.conf", garbage)],
                 expect: "$D/w.conf:1 '\\x7fELF\\x02\\x01\\x01\\0\\0\\0>\\0\\u{fffd}\\u{fffd}' is not KEY=VALUE"),
    ]

    /// `weir rules` flags, istio variables and `@file` lists.
    /// `weir rules` of `arguments`, with a list file `f` when `list` is given.
    static func rules(_ name: String, _ arguments: [String], env: [String: String] = [:], files: [ScratchFile] = [],
                      _ expected: String) -> BadInput {
        BadInput("rules: \(name)", ["rules"] + arguments, env: env, files: files, expect: expected)
    }

    static let captureRows: [BadInput] = [
        // The known violations of issue 11, fixed.
        rules("list file entry with a NUL", ["-i", "@$D/f"], files: [.bytes("f", Array("10.0.0.0/8\0\n".utf8))],
              "-i @$D/f:1 '10.0.0.0/8\\0' has a bad prefix length: expected 0 to 32"),
        rules("value with a newline", ["-c", "a\nb"], "-c 'a\\nb' is not an interface name: expected"),
        rules("CRLF list file with a bad second line", ["-i", "@$D/f"],
              files: [.text("f", "10.0.0.0/8\r\nbanana\r\n")], "-i @$D/f:2 'banana' is not an IP address or CIDR"),
        rules("50 MiB on one line", ["-i", "@$D/f"], files: [.text("f", String(repeating: "1", count: 50 << 20))],
              "-i list file '$D/f' is larger than 16 MiB: expected a readable file"),
        rules("100 MB list file", ["-x", "@$D/f"], files: [.sized("f", 100_000_000)],
              "-x list file '$D/f' is larger than 16 MiB"),
        rules("-p -1", ["-p", "-1"], "-p '-1' is not a port: expected 1 to 65535"),
        rules("-b -1", ["-b", "-1"], "-b '-1' is not a port"),
        rules("-o -1", ["-o", "-1"], "-o '-1' is not a port"),
        rules("ENVOY_PORT names itself", [], env: ["ENVOY_PORT": "abc"], "ENVOY_PORT 'abc' is not a port"),
        rules("--outbound-owner-groups names itself", ["--outbound-owner-groups", "nosuchgroup"],
              "--outbound-owner-groups 'nosuchgroup' is not a group on this host"),
        rules("-c a:b", ["-c", "a:b"], "-c 'a:b' is not an interface name"),
        // List files.
        rules("list file missing", ["-i", "@$D/none"], "-i list file '$D/none' does not exist: expected"),
        rules("list file reference without a path", ["-i", "@"], "-i '@' names no list file: expected @PATH"),
        rules("validation probe port equals -z", ["--run-validation", "--iptables-probe-port", "15006"],
              "-z (default) '15006' and --iptables-probe-port '15006' name the same port 15006"),
        rules("validation probe port from the environment equals -p", ["--run-validation"],
              env: ["IPTABLES_PROBE_PORT": "15001"],
              "-p (default) '15001' and IPTABLES_PROBE_PORT '15001' name the same port 15001"),
        rules("list file is a directory", ["-x", "@$D/d"], files: [.directory("d")],
              "-x list file '$D/d' is a directory"),
        BadInput("rules: list file unreadable", ["rules", "-x", "@$D/u"], files: [.unreadable("u", "10.0.0.0/8\n")],
                 expect: "-x list file '$D/u' cannot be read (permission denied)", withoutFileOverride: true),
        rules("list file of binary garbage", ["-i", "@$D/g"], files: [.bytes("g", [0xff, 0xfe, 0x01, 0x0a])],
              "-i @$D/g:1 "),
        rules("list file with a bad port", ["-b", "@$D/p"], files: [.text("p", "80\n# web\n8080 # alt\n99999\n")],
              "-b @$D/p:4 '99999' is not a port"),
        rules("list file mixes *", ["-b", "@$D/p"], files: [.text("p", "80\n*\n")], "-b @$D/p:2 mixes '*' with other entries"),
        // Values.
        rules("port out of range", ["-z", "70000"], "-z '70000' is not a port"),
        rules("port is a word", ["-e", "tunnel"], "-e 'tunnel' is not a port"),
        rules("CIDR with host bits", ["-i", "10.0.0.1/8"], "-i '10.0.0.1/8' has host bits set: expected 10.0.0.0/8"),
        rules("CIDR prefix too long", ["-x", "2001:db8::/129"], "-x '2001:db8::/129' has a bad prefix length"),
        rules("-x '*'", ["-x", "*"], "-x does not take '*': expected a list"),
        rules("UID negative", ["-u", "-5"], "-u '-5' is not a UID"),
        rules("GID is a name", ["-g", "istio"], "-g 'istio' is not a GID"),
        rules("mode", ["-m", "TPROX"], "-m 'TPROX' is not a mode: expected REDIRECT or TPROXY"),
        rules("mark 0", ["-m", "TPROXY", "-t", "0"], "-t '0' is not a mark"),
        rules("reserved route table", ["-r", "254"], "-r '254' is a reserved routing table"),
        rules("interface name too long", ["-k", "averyveryverylongname0"], "-k 'averyveryverylongname0' is 22 bytes"),
        rules("flag twice", ["-p", "15001", "-p", "15002"], "-p given twice with different values '15001' and '15002'"),
        rules("owner groups both set", [], env: ["ISTIO_OUTBOUND_OWNER_GROUPS": "1",
                                                 "ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE": "2"],
              "ISTIO_OUTBOUND_OWNER_GROUPS and ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE are both set"),
        rules("loopback CIDR not loopback", [], env: ["ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR": "10.0.0.0/8"],
              "ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR '10.0.0.0/8' is not an IPv4 loopback range"),
        // Environment variables.
        rules("variable: bad list entry", [], env: ["ISTIO_SERVICE_CIDR": "10.0.0.0/8,nope"],
              "ISTIO_SERVICE_CIDR 'nope' is not an IP address or CIDR"),
        rules("variable: bad boolean", [], env: ["INVALID_DROP": "sometimes"], "INVALID_DROP 'sometimes' is not a boolean"),
        rules("variable: bad UID", [], env: ["PROXY_UID": "root"], "PROXY_UID 'root' is not a UID"),
        // istio's other flags.
        rules("--redirect-dns=maybe", ["--redirect-dns=maybe"], "--redirect-dns 'maybe' is not a boolean"),
        rules("DNS server", ["--redirect-dns", "--dns-servers", "10.96.0.10,resolver"],
              "--dns-servers 'resolver' is not an IP address"),
        rules("DNS proxy port", ["--dns-proxy-port", "0"], "--dns-proxy-port '0' is not a port"),
        rules("probe timeout", ["--run-validation", "--probe-timeout", "soon"],
              "--probe-timeout 'soon' is not a duration"),
        rules("probe port", [], env: ["IPTABLES_PROBE_PORT": "99999"], "IPTABLES_PROBE_PORT '99999' is not a port"),
        rules("iptables binary", ["--force-iptables-binary", "iptables-legacy"],
              "--force-iptables-binary 'iptables-legacy' is not an iptables binary"),
        rules("network namespace missing", ["--network-namespace", "/nonexistent"],
              "--network-namespace '/nonexistent' does not exist: expected"),
        rules("network namespace of another kind", ["--network-namespace", "/proc/self/ns/mnt"],
              "--network-namespace '/proc/self/ns/mnt' is not a network namespace"),
        rules("network namespace not a path", [], env: ["NETWORK_NAMESPACE": "pod"],
              "NETWORK_NAMESPACE 'pod' is not a path"),
        rules("dual stack with IPv4 only", ["--dual-stack", "--ipv4-only"], "--dual-stack and --ipv4-only are both set"),
        rules("log level", ["--log_output_level", "loud"], "--log_output_level 'loud' is not a level"),
        rules("cleanup and dry run", ["--cleanup-only", "-n"], "--cleanup-only and --dry-run are both set"),
        BadInput("clean: network namespace", ["clean", "--network-namespace", "/nonexistent"],
                 expect: "--network-namespace '/nonexistent' does not exist"),
        BadInput("status: network namespace", ["status", "--network-namespace", "/etc/hostname"],
                 expect: "--network-namespace '/etc/hostname' is not a network namespace"),
        BadInput("run: network namespace", ["run", "--network-namespace", "/nonexistent"],
                 expect: "--network-namespace '/nonexistent' does not exist"),
        BadInput("run: profile with a network namespace", ["run", "--network-namespace", "/proc/self/ns/net",
                                                           "--profile", "default"],
                 expect: "--profile with --network-namespace is not supported"),
    ]

    static let rows = proxyRows + tuneRows + statusRows + runRows + configRows + captureRows

    /// Everything of the namespace a bad input must leave alone.
    func snapshot(_ ns: TestNamespace) throws -> [String: String] {
        var state: [String: String] = [:]
        for command in [["nft", "list", "ruleset"], ["ip", "-4", "rule"], ["ip", "-6", "rule"],
                        ["ip", "-4", "route", "show", "table", "all"], ["ip", "-6", "route", "show", "table", "all"],
                        ["ip", "addr"]] {
            state[command.joined(separator: " ")] = try ns.exec(command)
        }
        // Every net.* value of the namespace, except the counters that move by themselves.
        state["/proc/sys/net"] = try ns.exec(["sh", "-c",
                                              "grep -r . /proc/sys/net 2>/dev/null | grep -v '_count:' | sort"])
        return state
    }

    func create(_ file: ScratchFile, in dir: String) throws {
        let fm = FileManager.default
        func path(_ p: String) throws -> String {
            let full = dir + "/" + p
            try fm.createDirectory(atPath: URL(fileURLWithPath: full).deletingLastPathComponent().path,
                                   withIntermediateDirectories: true)
            return full
        }
        func expand(_ s: String) -> String { s.replacingOccurrences(of: "$D", with: dir) }
        switch file {
        case .text(let p, let text):
            try Data(expand(text).utf8).write(to: URL(fileURLWithPath: try path(p)))
        case .bytes(let p, let bytes):
            try Data(bytes).write(to: URL(fileURLWithPath: try path(p)))
        case .directory(let p):
            try fm.createDirectory(atPath: try path(p), withIntermediateDirectories: true)
        case .unreadable(let p, let text):
            let full = try path(p)
            try Data(text.utf8).write(to: URL(fileURLWithPath: full))
            try fm.setAttributes([.posixPermissions: 0], ofItemAtPath: full)
        case .sized(let p, let size):
            let full = try path(p)
            guard fm.createFile(atPath: full, contents: nil) else { throw CocoaError(.fileWriteUnknown) }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: full))
            try handle.truncate(atOffset: UInt64(size))
            try handle.close()
        }
    }

    /// Every path below `dir` with its size: weir must create, remove or grow nothing there.
    func listing(_ dir: String) -> [String] {
        let fm = FileManager.default
        return (fm.subpaths(atPath: dir) ?? []).sorted().map { sub in
            let size = (try? fm.attributesOfItem(atPath: dir + "/" + sub))?[.size] as? Int ?? -1
            return "\(sub) \(size)"
        }
    }

    @Test func everyBadInputExitsTwoWithOneLineAndChangesNothing() throws {
        #expect(Self.rows.count >= 50)
        #expect(Set(Self.rows.map(\.name)).count == Self.rows.count, "row names are unique")
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("wtb-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try withNamespace(prefix: "wtb") { ns in
            // A node weir already runs on: a TPROXY capture table with its ip rules, routes and ::6, and a profile.
            let rules = try ns.weir(["rules", "-b", "*", "-i", "*", "-m", "TPROXY"])
            try #require(rules.status == 0, "\(rules.stderr)")
            let setup = scratch + "/setup"
            try create(.text("p/tuned.profile", """
                net.core.somaxconn = 8192                       # test
                net.ipv4.tcp_max_syn_backlog = 8192 raise-only  # test
                net.ipv4.ip_local_port_range = 20000 40000      # test
                """), in: setup)
            let tuned = try ns.weir(["tune", "--profile", "tuned", "--profiles-dir", setup + "/p",
                                     "--state-dir", setup + "/s"])
            try #require(tuned.status == 0, "\(tuned.stdout)\(tuned.stderr)")
            let before = try snapshot(ns)
            try #require(before["nft list ruleset"]?.contains("table inet weir") == true)
            try #require(before["ip -6 rule"]?.contains("lookup 133") == true)
            try #require(before["/proc/sys/net"]?.contains("/proc/sys/net/core/somaxconn:8192") == true)

            for (index, row) in Self.rows.enumerated() {
                let dir = scratch + "/\(index)"
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                for file in row.files { try create(file, in: dir) }
                let expand = { (s: String) in s.replacingOccurrences(of: "$D", with: dir) }
                let files = listing(dir)
                let wrapper = row.withoutFileOverride
                    ? ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                       "--bounding-set=-dac_override,-dac_read_search"] : []
                // A row that is not refused would start serving: kill it rather than hang the suite.
                let r = try ns.run(["timeout", "-s", "KILL", "20"] + wrapper + [weirBinary] + row.arguments.map(expand),
                                   environment: row.environment.mapValues(expand))
                let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: false)
                #expect(r.status == 2, "\(row.name): exit \(r.status): \(r.stderr)")
                #expect(lines.count == 2 && lines[1].isEmpty, "\(row.name): not one line: \(r.stderr)")
                #expect(r.stderr.hasPrefix("weir: ") && r.stderr.contains("expected"), "\(row.name): \(r.stderr)")
                #expect(r.stderr.contains(expand(row.expected)),
                        "\(row.name): wanted \(expand(row.expected)) in: \(r.stderr)")
                #expect(r.stdout.isEmpty, "\(row.name): printed \(r.stdout)")
                #expect(listing(dir) == files, "\(row.name): changed files in \(dir)")
                let after = try snapshot(ns)
                for (what, text) in before where after[what] != text {
                    Issue.record("\(row.name): \(what) changed:\n\(text)\n->\n\(after[what] ?? "")")
                }
            }
        }
    }
}
