/// Everything `weir proxy` needs, validated: built from flag text by `ProxyConfig.parse` (`weir proxy`), or from a
/// `CaptureConfig` and the limits (`weir run`).
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
    /// Where the upstream of an inbound TPROXY connection takes its source port (it keeps the client's address; see
    /// `SourcePorts`).
    public var tproxySourcePorts: SourcePorts = .auto
    /// False (`--no-splice`): move bytes with the bounded copy only, never splice, as HAProxy's `nosplice` does;
    /// for kernels or sockets where splice misbehaves.
    public var splice = true

    public init() {}

    /// The values the proxy shares with the capture, already validated by `CaptureConfig.parse`: its ports, mode,
    /// owner (the first of several -u/-g) and mark. `weir run` builds the proxy from these, never from text again.
    public init(capture c: CaptureConfig) {
        proxyPort = c.proxyPort
        inboundCapturePort = c.inboundCapturePort
        mode = c.mode
        proxyUID = c.proxyUIDs.first ?? proxyUID
        proxyGID = c.proxyGIDs.first ?? proxyGID
        tproxyMark = c.tproxyMark
    }

    /// Raw flag values as typed by the operator; nil keeps the default.
    public struct Flags {
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
        public var tproxySourcePorts: String?
        /// Where a value came from when not from its flag (`weir.conf:4 WEIR_IDLE_TIMEOUT`).
        public var sources: [WritableKeyPath<Flags, String?>: ValueSource] = [:]
        public init() {}

        /// The flag each value stands for, as messages name it: the capture's under weir's long name, then the limits.
        static let flagNames: [WritableKeyPath<Flags, String?>: String] = {
            let capture: [WritableKeyPath<Flags, String?>: CaptureFlag] = [
                \.proxyPort: .proxyPort, \.inboundCapturePort: .inboundCapturePort, \.mode: .mode,
                \.proxyUID: .proxyUID, \.proxyGID: .proxyGID, \.tproxyMark: .tproxyMark,
            ]
            let limits: [WritableKeyPath<Flags, String?>: String] = [
                \.connectTimeout: "--connect-timeout", \.idleTimeout: "--idle-timeout",
                \.maxConnections: "--max-connections", \.bufferLimit: "--buffer-limit",
                \.drainTimeout: "--drain-timeout", \.workers: "--workers",
                \.tproxySourcePorts: "--tproxy-source-ports",
            ]
            return capture.mapValues { "--" + $0.longNames(weirFirst: true)[0] }.merging(limits) { $1 }
        }()

        /// How messages name the flag of `key`: `--proxy-port`.
        public static func flagName(_ key: WritableKeyPath<Flags, String?>) -> String { flagNames[key]! }

        /// The value at `key` with its source, or nil when not given.
        func value(_ key: WritableKeyPath<Flags, String?>) -> (text: String, source: ValueSource)? {
            self[keyPath: key].map { ($0, sources[key] ?? .flag(Self.flagName(key))) }
        }

        func read<T>(_ key: WritableKeyPath<Flags, String?>, _ kind: ValueKind<T>) throws -> T? {
            try value(key).map { try kind.parse($0.text, from: $0.source) }
        }

        /// A value that parsed but is refused: `SOURCE 'TEXT' PROBLEM`.
        func refuse(_ key: WritableKeyPath<Flags, String?>, _ problem: String) -> ConfigError {
            let (text, source) = value(key)!
            return ConfigError(source, text, problem)
        }
    }

    public static let maxConnectionsKind = ValueKinds.number("positive count", 1...10_000_000)
    public static let workersKind = ValueKind<UInt32>(
        problem: "is not a worker count: expected 0 (one per usable CPU) to 1024"
    ) { ValueParser.decimal($0, max: 1024).map(UInt32.init) }

    /// Validates every flag over `base` (the defaults, or `ProxyConfig(capture:)`); the first bad one is reported
    /// as a `ConfigError` naming the value, where it came from and what was expected.
    public static func parse(_ flags: Flags, base: ProxyConfig = ProxyConfig()) throws -> ProxyConfig {
        var c = base
        if let v = try flags.read(\.proxyPort, ValueKinds.port) { c.proxyPort = v }
        if let v = try flags.read(\.inboundCapturePort, ValueKinds.port) { c.inboundCapturePort = v }
        if let v = try flags.read(\.mode, ValueKinds.mode) { c.mode = v }
        if let v = try flags.read(\.proxyUID, ValueKinds.id("UID")) { c.proxyUID = v }
        if let v = try flags.read(\.proxyGID, ValueKinds.id("GID")) { c.proxyGID = v }
        if let v = try flags.read(\.tproxyMark, ValueKinds.mark) { c.tproxyMark = v }
        try c.readLimits(flags)
        if c.proxyPort == c.inboundCapturePort {
            throw ConfigError("--inbound-capture-port '\(c.inboundCapturePort)' equals --proxy-port: "
                              + "expected two different ports", source: .flag("--inbound-capture-port"))
        }
        return c
    }

    private mutating func readLimits(_ flags: Flags) throws {
        if let v = try flags.read(\.connectTimeout, ValueKinds.duration) {
            guard v > 0 else { throw flags.refuse(\.connectTimeout, "is not a duration above 0: expected e.g. 5s") }
            connectTimeoutMs = v
        }
        if let v = try flags.read(\.idleTimeout, ValueKinds.duration) { idleTimeoutMs = v }
        if let v = try flags.read(\.drainTimeout, ValueKinds.duration) { drainTimeoutMs = v }
        if let v = try flags.read(\.maxConnections, Self.maxConnectionsKind) { maxConnections = Int(v) }
        if let v = try flags.read(\.bufferLimit, ValueKinds.size) {
            guard v >= 4096, v <= 64 << 20 else {
                throw flags.refuse(\.bufferLimit, "is out of range: expected 4KiB to 64MiB")
            }
            bufferLimit = v
        }
        if let v = try flags.read(\.workers, Self.workersKind) { workers = Int(v) }
        if let v = try flags.read(\.tproxySourcePorts, SourcePorts.kind) { tproxySourcePorts = v }
    }

    /// `0`, or a number followed by ms, s, m or h (`500ms`, `5s`, `10m`, `1h`). Returns milliseconds.
    public static func duration(_ text: String, flag: String) throws -> Int64 {
        try ValueKinds.duration.parse(text, from: .flag(flag))
    }
}

/// The source ports of inbound TPROXY upstream connections. Under TPROXY the upstream keeps the client's address; were
/// it also to take a port the kernel picks from this namespace's `ip_local_port_range`, that port can be one the same
/// client is using (or will use) toward the same application: two connections on one 4-tuple, one conntrack entry,
/// and one of them fails. A range the clients do not pick from cannot collide.
public enum SourcePorts: Equatable, Sendable {
    /// The ports above this namespace's `ip_local_port_range` (61000-65535 on Linux's default range), where Linux
    /// clients never pick an ephemeral port; the kernel's choice when fewer than `minimumSpan` are left there.
    case auto
    /// The kernel's choice from `ip_local_port_range` (the behaviour before weir chose).
    case kernel
    case range(ClosedRange<UInt16>)

    /// Fewer ports than this are not a range: one client address would run out under a modest load.
    public static let minimumSpan = 64

    /// `auto`, `kernel`, or `LOW-HIGH` with 1024 <= LOW and at least `minimumSpan` ports.
    public static let kind = ValueKind<SourcePorts>(
        problem: "is not a source port choice: expected auto, kernel or LOW-HIGH (1024 to 65535, at least 64 ports)"
    ) { bytes in
        if ValueParser.asciiCaseInsensitive(bytes, equals: "AUTO") { return .auto }
        if ValueParser.asciiCaseInsensitive(bytes, equals: "KERNEL") { return .kernel }
        guard let dash = bytes.firstIndex(of: UInt8(ascii: "-")),
              let low = ValueParser.decimal(bytes[bytes.startIndex..<dash], max: 65535),
              let high = ValueParser.decimal(bytes[(dash + 1)..<bytes.endIndex], max: 65535),
              low >= 1024, high >= low, Int(high - low) + 1 >= minimumSpan else { return nil }
        return .range(UInt16(low)...UInt16(high))
    }

    /// What `auto` means in a namespace whose `ip_local_port_range` is `low`-`high`: the ports above it, or nil (the
    /// kernel's choice) when fewer than `minimumSpan` are left there.
    public static func above(localRange low: Int, _ high: Int) -> ClosedRange<UInt16>? {
        guard high >= low, high + minimumSpan <= 65535 else { return nil }
        return UInt16(high + 1)...65535
    }

    /// The setting as the event log and `--config` write it.
    public var text: String {
        switch self {
        case .auto: "auto"
        case .kernel: "kernel"
        case .range(let r): "\(r.lowerBound)-\(r.upperBound)"
        }
    }
}
