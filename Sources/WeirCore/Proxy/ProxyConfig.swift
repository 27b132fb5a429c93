/// Everything `weir proxy` needs, validated. Built from flag text by `ProxyConfig.parse`.
public struct ProxyConfig: Equatable, Sendable {
    /// Outbound capture port (`-p`).
    public var proxyPort: UInt16 = 15001
    /// Inbound capture port (`-z`).
    public var inboundCapturePort: UInt16 = 15006
    public var mode: InterceptionMode = .redirect
    /// Owner of every upstream socket, so the owner-match capture rules let it out.
    public var proxyUID: UInt32 = 1337
    public var proxyGID: UInt32 = 1337
    /// Mark of TPROXY upstream sockets, so replies route back through the policy table.
    public var tproxyMark: UInt32 = 1337
    /// Milliseconds. The client is reset when the upstream connect takes longer.
    public var connectTimeoutMs: Int64 = 5_000
    /// Milliseconds; 0 turns the idle timeout off.
    public var idleTimeoutMs: Int64 = 3_600_000
    /// Ceiling of proxied connections over all workers.
    public var maxConnections: Int = 10_000
    /// Bytes the proxy holds in flight per direction of one connection.
    public var bufferLimit: Int = 65_536
    /// Milliseconds open connections get to finish after SIGTERM.
    public var drainTimeoutMs: Int64 = 20_000
    /// Worker threads; 0 means one per usable CPU.
    public var workers: Int = 0
    /// False (`--no-splice`): move bytes with the bounded copy only, never splice, as HAProxy's `nosplice` does;
    /// for kernels or sockets where splice misbehaves.
    public var splice = true

    public init() {}

    /// Raw flag values as typed by the operator; nil keeps the default.
    public struct Flags: Sendable {
        public var proxyPort: String?
        public var inboundCapturePort: String?
        public var mode: String?
        public var proxyUID: String?
        public var proxyGID: String?
        public var tproxyMark: String?
        public var connectTimeout: String?
        public var idleTimeout: String?
        public var maxConnections: String?
        public var bufferLimit: String?
        public var drainTimeout: String?
        public var workers: String?
        public init() {}
    }

    /// Validates every flag; the first bad one is reported as a `ConfigError` naming the value and what was expected.
    public static func parse(_ flags: Flags) throws -> ProxyConfig {
        var c = ProxyConfig()
        if let v = flags.proxyPort { c.proxyPort = try port(v, flag: "--proxy-port") }
        if let v = flags.inboundCapturePort { c.inboundCapturePort = try port(v, flag: "--inbound-capture-port") }
        if let v = flags.mode {
            guard let m = InterceptionMode(rawValue: v.uppercased()) else {
                throw ConfigError("--mode \(quotedValue(v)) is not a mode: expected REDIRECT or TPROXY")
            }
            c.mode = m
        }
        if let v = flags.proxyUID { c.proxyUID = try id(v, flag: "--proxy-uid", what: "UID") }
        if let v = flags.proxyGID { c.proxyGID = try id(v, flag: "--proxy-gid", what: "GID") }
        if let v = flags.tproxyMark {
            // As `weir rules -t` refuses it: mark 0 is every unmarked packet, so the policy rule would catch all.
            guard let mark = UInt32(v), mark >= 1 else {
                throw ConfigError("--tproxy-mark \(quotedValue(v)) is not a mark: expected 1 to 4294967295")
            }
            c.tproxyMark = mark
        }
        if let v = flags.connectTimeout {
            c.connectTimeoutMs = try duration(v, flag: "--connect-timeout")
            if c.connectTimeoutMs == 0 {
                throw ConfigError("--connect-timeout \(quotedValue(v)) is not a duration above 0: expected e.g. 5s")
            }
        }
        if let v = flags.idleTimeout { c.idleTimeoutMs = try duration(v, flag: "--idle-timeout") }
        if let v = flags.drainTimeout { c.drainTimeoutMs = try duration(v, flag: "--drain-timeout") }
        if let v = flags.maxConnections { c.maxConnections = try positive(v, flag: "--max-connections") }
        if let v = flags.bufferLimit {
            c.bufferLimit = try size(v, flag: "--buffer-limit")
            guard c.bufferLimit >= 4096, c.bufferLimit <= 64 << 20 else {
                throw ConfigError("--buffer-limit \(quotedValue(v)) is out of range: expected 4KiB to 64MiB")
            }
        }
        if let v = flags.workers {
            guard let n = Int(v), n >= 0, n <= 1024 else {
                throw ConfigError("--workers \(quotedValue(v)) is not a worker count: "
                    + "expected 0 (one per usable CPU) to 1024")
            }
            c.workers = n
        }
        if c.proxyPort == c.inboundCapturePort {
            throw ConfigError("--inbound-capture-port '\(c.inboundCapturePort)' equals --proxy-port: "
                              + "expected two different ports")
        }
        return c
    }

    static func port(_ text: String, flag: String) throws -> UInt16 {
        guard let n = Int(text), n >= 1, n <= 65535 else {
            throw ConfigError("\(flag) \(quotedValue(text)) is not a port: expected 1 to 65535")
        }
        return UInt16(n)
    }

    /// A UID or GID, as `weir rules -u/-g` takes them: 4294967295 is (uid_t)-1, which chown and setresuid read as
    /// "leave unchanged", so the upstream sockets would keep weir's own owner and be captured again.
    static func id(_ text: String, flag: String, what: String) throws -> UInt32 {
        guard let n = UInt32(text), n < UInt32.max else {
            throw ConfigError("\(flag) \(quotedValue(text)) is not a \(what): expected 0 to 4294967294")
        }
        return n
    }

    static func positive(_ text: String, flag: String) throws -> Int {
        guard let n = Int(text), n >= 1, n <= 10_000_000 else {
            throw ConfigError("\(flag) \(quotedValue(text)) is not a positive count: expected 1 to 10000000")
        }
        return n
    }

    /// `0`, or a number followed by ms, s, m or h (`500ms`, `5s`, `10m`, `1h`). Returns milliseconds.
    public static func duration(_ text: String, flag: String) throws -> Int64 {
        let bad = ConfigError(
            "\(flag) \(quotedValue(text)) is not a duration: expected 0 or a number with ms, s, m or h, like 5s")
        if text == "0" { return 0 }
        let units: [(String, Int64)] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int64(number),
                  n <= Int64.max / scale / 1000 else { throw bad }
            return n * scale
        }
        throw bad
    }

    /// A byte count, optionally with KiB or MiB (`65536`, `64KiB`, `1MiB`).
    public static func size(_ text: String, flag: String) throws -> Int {
        let bad = ConfigError("\(flag) \(quotedValue(text)) is not a size: expected bytes, or a number with KiB or MiB")
        let units: [(String, Int)] = [("KiB", 1024), ("MiB", 1 << 20), ("", 1)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(number),
                  n <= Int.max / scale else { throw bad }
            return n * scale
        }
        throw bad
    }
}
