/// istio-iptables' flags (`tools/istio-iptables/pkg/cmd/root.go`): letter, long name, environment variables, what
/// the flag does and its default. The one table of them: argument parsing, `--help` and messages all read it.
///
/// Precedence is istio's: a flag beats its variables; of the variables, the first listed wins (istio's
/// `AdditionalEnv` names, like `ISTIO_META_DNS_CAPTURE`, are applied after the name derived from the flag).
public struct CaptureFlag: Hashable, Sendable {
    public enum Kind: Hashable, Sendable { case value, list, bool }

    public let short: Character?
    /// istio's long name.
    public let long: String
    /// weir's own long name for the flag, when it has one (`--proxy-port` for istio's `--envoy-port`): `weir proxy`
    /// shows it first, the istio commands after istio's.
    public let weirLong: String?
    /// Highest precedence first.
    public let environments: [String]
    public let kind: Kind
    /// What the flag does, for `--help`: one or two sentences.
    public let summary: String
    /// The default as `--help` shows it, when there is one worth showing.
    public let defaultText: String?

    public init(short: Character? = nil, long: String, weirLong: String? = nil, environments: [String] = [],
                kind: Kind = .value, summary: String = "", default defaultText: String? = nil) {
        self.short = short
        self.long = long
        self.weirLong = weirLong
        self.environments = environments
        self.kind = kind
        self.summary = summary
        self.defaultText = defaultText
    }

    public var isList: Bool { kind == .list }
    /// How messages name the flag: `-p`, or `--redirect-dns` for flags without a letter.
    public var display: String { short.map { "-\($0)" } ?? "--\(long)" }

    /// The long names, istio's first (or weir's first with `weirFirst`).
    public func longNames(weirFirst: Bool = false) -> [String] {
        guard let weirLong else { return [long] }
        return weirFirst ? [weirLong, long] : [long, weirLong]
    }

    /// The `--help` text: what it does, its variables and its default.
    public var help: String {
        var text = summary
        if !environments.isEmpty { text += " Env \(environments.joined(separator: ", "))." }
        if let defaultText { text += " (default: \(defaultText))" }
        return text
    }

    public static let proxyPort = CaptureFlag(
        short: "p", long: "envoy-port", weirLong: "proxy-port", environments: ["ENVOY_PORT"],
        summary: "Port outbound TCP is redirected to.", default: "15001")
    public static let inboundCapturePort = CaptureFlag(
        short: "z", long: "inbound-capture-port", environments: ["INBOUND_CAPTURE_PORT"],
        summary: "Port inbound TCP is redirected to.", default: "15006")
    public static let inboundTunnelPort = CaptureFlag(
        short: "e", long: "inbound-tunnel-port", environments: ["INBOUND_TUNNEL_PORT"],
        summary: "Inbound tunnel port, not captured in REDIRECT mode.", default: "15008")
    public static let proxyUID = CaptureFlag(
        short: "u", long: "proxy-uid", environments: ["PROXY_UID"], kind: .list,
        summary: "UIDs (comma list) whose traffic is never captured.", default: "1337")
    public static let proxyGID = CaptureFlag(
        short: "g", long: "proxy-gid", environments: ["PROXY_GID"], kind: .list,
        summary: "GIDs (comma list) whose traffic is never captured.", default: "the -u list")
    public static let mode = CaptureFlag(
        short: "m", long: "istio-inbound-interception-mode", weirLong: "mode",
        environments: ["ISTIO_INBOUND_INTERCEPTION_MODE"], summary: "Inbound capture mode: REDIRECT or TPROXY.",
        default: "REDIRECT")
    public static let tproxyMark = CaptureFlag(
        short: "t", long: "istio-inbound-tproxy-mark", weirLong: "tproxy-mark", environments: ["ISTIO_INBOUND_TPROXY_MARK"],
        summary: "TPROXY packet mark.", default: "1337")
    public static let tproxyRouteTable = CaptureFlag(
        short: "r", long: "istio-inbound-tproxy-route-table", environments: ["ISTIO_INBOUND_TPROXY_ROUTE_TABLE"],
        summary: "TPROXY routing table.", default: "133")
    public static let inboundPorts = CaptureFlag(
        short: "b", long: "istio-inbound-ports", environments: ["ISTIO_INBOUND_PORTS"], kind: .list,
        summary: "Inbound ports to capture: '*' or a comma list; empty captures none.")
    public static let inboundPortsExclude = CaptureFlag(
        short: "d", long: "istio-local-exclude-ports", environments: ["ISTIO_LOCAL_EXCLUDE_PORTS"], kind: .list,
        summary: "Inbound ports never captured; only used with -b '*'.")
    public static let outboundPortsExclude = CaptureFlag(
        short: "o", long: "istio-local-outbound-ports-exclude", environments: ["ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE"],
        kind: .list, summary: "Outbound ports never captured, TCP and UDP.")
    public static let outboundPortsInclude = CaptureFlag(
        short: "q", long: "istio-outbound-ports", environments: ["ISTIO_OUTBOUND_PORTS"], kind: .list,
        summary: "Outbound TCP ports always captured (unless -x excludes the address).")
    public static let outboundIncludeCIDRs = CaptureFlag(
        short: "i", long: "istio-service-cidr", environments: ["ISTIO_SERVICE_CIDR"], kind: .list,
        summary: "Outbound CIDRs to capture: '*' or a comma list; empty captures none.")
    public static let outboundExcludeCIDRs = CaptureFlag(
        short: "x", long: "istio-service-exclude-cidr", environments: ["ISTIO_SERVICE_EXCLUDE_CIDR"], kind: .list,
        summary: "Outbound CIDRs never captured; wins over -i and -q.")
    public static let virtualInterfaces = CaptureFlag(
        short: "k", long: "kube-virt-interfaces", environments: ["KUBE_VIRT_INTERFACES"], kind: .list,
        summary: "Interfaces whose inbound traffic is treated as outbound.")
    public static let excludeInterfaces = CaptureFlag(
        short: "c", long: "istio-exclude-interfaces", environments: ["ISTIO_EXCLUDE_INTERFACES"], kind: .list,
        summary: "Interfaces never captured.")
    public static let ownerGroupsInclude = CaptureFlag(
        long: "outbound-owner-groups", environments: ["ISTIO_OUTBOUND_OWNER_GROUPS"], kind: .list,
        summary: "Only capture outbound traffic of these groups (names or GIDs, '*' for all).")
    public static let ownerGroupsExclude = CaptureFlag(
        long: "outbound-owner-groups-exclude", environments: ["ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE"], kind: .list,
        summary: "Never capture outbound traffic of these groups.")
    public static let ipv4LoopbackCIDR = CaptureFlag(
        long: "outbound-ipv4-loopback-cidr", environments: ["ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR"],
        summary: "IPv4 loopback range never captured.", default: "127.0.0.1/32")
    public static let dropInvalid = CaptureFlag(
        long: "drop-invalid", environments: ["INVALID_DROP", "DROP_INVALID"], kind: .bool,
        summary: "Drop TCP packets in conntrack state INVALID.")
    public static let redirectDNS = CaptureFlag(
        long: "redirect-dns", environments: ["ISTIO_META_DNS_CAPTURE", "REDIRECT_DNS"], kind: .bool,
        summary: "Capture DNS (TCP and UDP port 53) to the DNS servers and send it to --dns-proxy-port.")
    public static let captureAllDNS = CaptureFlag(
        long: "capture-all-dns", environments: ["CAPTURE_ALL_DNS"], kind: .bool,
        summary: "With --redirect-dns: capture DNS to every address, not only the DNS servers.")
    /// weir's: the DNS servers to capture, instead of reading /etc/resolv.conf.
    public static let dnsServers = CaptureFlag(
        long: "dns-servers", environments: ["WEIR_DNS_SERVERS"], kind: .list,
        summary: "DNS servers to capture (comma list; default: the nameserver lines of /etc/resolv.conf, as istio "
            + "reads them).")
    /// weir's: istio's agent DNS port, a constant (15053) in istio.
    public static let dnsProxyPort = CaptureFlag(
        long: "dns-proxy-port", environments: ["WEIR_DNS_PROXY_PORT"],
        summary: "Port DNS is redirected to (istio's agent DNS port).", default: "15053")
    public static let dualStack = CaptureFlag(
        long: "dual-stack", environments: ["ISTIO_DUAL_STACK", "DUAL_STACK"], kind: .bool,
        summary: "Accepted for istio: weir captures IPv4 and IPv6 unless --ipv4-only.")

    /// Flags that shape the ruleset.
    public static let all: [CaptureFlag] = [
        proxyPort, inboundCapturePort, inboundTunnelPort, proxyUID, proxyGID, mode, tproxyMark, tproxyRouteTable,
        inboundPorts, inboundPortsExclude, outboundPortsExclude, outboundPortsInclude, outboundIncludeCIDRs,
        outboundExcludeCIDRs, virtualInterfaces, excludeInterfaces, ownerGroupsInclude, ownerGroupsExclude,
        ipv4LoopbackCIDR, dropInvalid, redirectDNS, captureAllDNS, dnsServers, dnsProxyPort, dualStack,
    ]

    /// Variables a `weir run --config` file may set: the capture's and `NETWORK_NAMESPACE`.
    public static var environmentNames: Set<String> {
        Set((all + [networkNamespace]).flatMap(\.environments))
    }
}

extension CaptureConfig {
    /// Where istio reads the DNS servers from.
    public static let resolvConf = "/etc/resolv.conf"
    /// The largest `@PATH` list file (and resolv.conf) `readFile` should return: 100,000 CIDRs take about 2 MiB.
    public static let listFileLimit = 16 << 20

    /// Reads and validates istio-iptables flags.
    ///
    /// - Parameters:
    ///   - flags: every value given on the command line, by long name, in order (a flag given twice appears twice).
    ///   - environment: the process environment; used for flags not given.
    ///   - environmentSource: where a variable's value comes from (`ENVOY_PORT`, `weir.conf:3 ISTIO_SERVICE_CIDR`).
    ///   - ipv4Only: `--ipv4-only`.
    ///   - readFile: contents of a `@PATH` list file or of /etc/resolv.conf, or a reason it cannot be read.
    ///   - resolveGroup: a group name's GID, or nil if unknown.
    ///   - resolveUser: a user name's UID, or nil if unknown (istio's default -u is `ENVOY_USER`'s UID).
    /// - Throws: `ConfigError` naming the first bad value, where it came from and what was expected.
    public static func parse(
        flags: [String: [String]],
        environment: [String: String] = [:],
        environmentSource: @escaping (String) -> ValueSource = { .variable($0) },
        ipv4Only: Bool = false,
        readFile: @escaping (String) -> Result<String, ReadFailure> = { _ in .failure(.missing) },
        resolveGroup: (String) -> UInt32? = { _ in nil },
        resolveUser: (String) -> UInt32? = { _ in nil }
    ) throws -> CaptureConfig {
        let reader = FlagReader(flags: flags, environment: environment, environmentSource: environmentSource,
                                readFile: readFile)
        let known = Set((CaptureFlag.all + CaptureFlag.invocation).map(\.long))
        for name in flags.keys.sorted() where !known.contains(name) {
            throw ConfigError("unknown capture flag \(quotedValue("--" + name))")
        }
        // Read in istio's flag order, so the first bad value reported is the one istio would report.
        var c = CaptureConfig()
        c.ipv4Only = ipv4Only
        try c.readPorts(reader)
        try c.readOwners(reader, user: environment["ENVOY_USER"] ?? "istio-proxy", resolveUser: resolveUser)
        try c.readTPROXY(reader)
        try c.readPortLists(reader)
        try c.readAddressLists(reader)
        try c.readOwnerGroups(reader, resolve: resolveGroup)
        try c.readSwitches(reader)
        try c.readDNSServers(reader, readFile: readFile)
        return c
    }

    private mutating func readPorts(_ reader: FlagReader) throws {
        if let v = try reader.single(.proxyPort) { proxyPort = try v.parse(ValueKinds.port) }
        if let v = try reader.single(.inboundCapturePort) { inboundCapturePort = try v.parse(ValueKinds.port) }
        if let v = try reader.single(.inboundTunnelPort) { inboundTunnelPort = try v.parse(ValueKinds.port) }
    }

    private mutating func readOwners(_ reader: FlagReader, user: String, resolveUser: (String) -> UInt32?) throws {
        if let v = try reader.list(.proxyUID) {
            proxyUIDs = try Self.ids(v, .proxyUID, what: "UID")
        } else if let uid = resolveUser(user) {
            // istio: the UID of ENVOY_USER (default istio-proxy) if that user exists, else 1337.
            proxyUIDs = [uid]
        }
        if let v = try reader.list(.proxyGID) {
            proxyGIDs = try Self.ids(v, .proxyGID, what: "GID")
        } else {
            // istio: the GID list defaults to the UID list.
            proxyGIDs = proxyUIDs
        }
    }

    private mutating func readTPROXY(_ reader: FlagReader) throws {
        if let v = try reader.single(.mode) { mode = try v.parse(ValueKinds.mode) }
        if let v = try reader.single(.tproxyMark) { tproxyMark = try v.parse(ValueKinds.mark) }
        if let v = try reader.single(.tproxyRouteTable) {
            let t = try v.parse(ValueKinds.number("routing table", 1...0xffff_fffe))
            guard !(253...255).contains(t) else {
                throw v.error("is a reserved routing table (default, main, local): expected another number")
            }
            tproxyRouteTable = t
        }
    }

    private mutating func readPortLists(_ reader: FlagReader) throws {
        if let v = try reader.list(.inboundPorts) {
            if Value.isWildcard(v) {
                inboundPorts = .all
            } else {
                let ports = try Self.portList(v, .inboundPorts)
                inboundPorts = ports.isEmpty ? .none : .list(ports)
            }
        }
        if let v = try reader.list(.inboundPortsExclude) { inboundPortsExclude = try Self.portList(v, .inboundPortsExclude) }
        if let v = try reader.list(.outboundPortsExclude) {
            outboundPortsExclude = try Self.portList(v, .outboundPortsExclude)
        }
        if let v = try reader.list(.outboundPortsInclude) {
            outboundPortsInclude = try Self.portList(v, .outboundPortsInclude)
        }
    }

    private mutating func readAddressLists(_ reader: FlagReader) throws {
        if let v = try reader.list(.outboundIncludeCIDRs) {
            if Value.isWildcard(v) {
                outboundIncludeCIDRs = .all
            } else {
                let cidrs = try Self.cidrList(v, .outboundIncludeCIDRs)
                outboundIncludeCIDRs = cidrs.isEmpty ? .none : .list(cidrs)
            }
        }
        if let v = try reader.list(.outboundExcludeCIDRs) {
            outboundExcludeCIDRs = try Self.cidrList(v, .outboundExcludeCIDRs)
        }
        if let v = try reader.list(.virtualInterfaces) { virtualInterfaces = try Self.interfaces(v, .virtualInterfaces) }
        if let v = try reader.list(.excludeInterfaces) { excludeInterfaces = try Self.interfaces(v, .excludeInterfaces) }
    }

    private mutating func readOwnerGroups(_ reader: FlagReader, resolve: (String) -> UInt32?) throws {
        var includeSource: ValueSource?
        if let v = try reader.list(.ownerGroupsInclude), !Value.isWildcard(v) {
            let groups = try Self.groupList(v, .ownerGroupsInclude, resolve: resolve)
            ownerGroupsInclude = groups.isEmpty ? nil : groups
            includeSource = v.first?.source
        }
        var excludeSource: ValueSource?
        if let v = try reader.list(.ownerGroupsExclude) {
            ownerGroupsExclude = try Self.groupList(v, .ownerGroupsExclude, resolve: resolve)
            excludeSource = v.first?.source
        }
        if ownerGroupsInclude != nil && !ownerGroupsExclude.isEmpty, let includeSource, let excludeSource {
            throw ConfigError("\(includeSource) and \(excludeSource) are both set: expected only one of them",
                              source: excludeSource)
        }
    }

    /// The loopback range, the booleans and the DNS port.
    private mutating func readSwitches(_ reader: FlagReader) throws {
        if let v = try reader.single(.ipv4LoopbackCIDR) { ipv4LoopbackCIDR = try Self.loopbackCIDR(v) }
        if let v = try reader.bool(.dropInvalid) { dropInvalid = v }
        if let v = try reader.bool(.redirectDNS) { redirectDNS = v }
        if let v = try reader.bool(.captureAllDNS) { captureAllDNS = v }
        if let v = try reader.single(.dnsProxyPort) { dnsProxyPort = try v.parse(ValueKinds.port) }
        if let v = try reader.single(.dualStack) {
            dualStack = try v.parse(ValueKinds.goBool)
            if dualStack && ipv4Only {
                throw ConfigError("\(v.source) and --ipv4-only are both set: expected one of them (weir captures "
                    + "IPv4 and IPv6 unless --ipv4-only)", source: v.source)
            }
        }
    }

    private mutating func readDNSServers(_ reader: FlagReader,
                                         readFile: (String) -> Result<String, ReadFailure>) throws {
        if let v = try reader.list(.dnsServers) {
            dnsServers = []
            for entry in v {
                let a = try entry.parse(ValueKinds.address)
                if !dnsServers.contains(a) { dnsServers.append(a) }
            }
        } else if redirectDNS && !captureAllDNS {
            // istio reads the servers only when it needs them, so an unreadable file matters only then.
            switch readFile(Self.resolvConf) {
            case .success(let text):
                dnsServers = try Self.resolvConfServers(text, path: Self.resolvConf)
            case .failure(let why):
                throw ConfigError("\(Self.resolvConf) \(why.phrase) (--redirect-dns needs the DNS servers): expected "
                    + "a readable resolv.conf, or --dns-servers, or --capture-all-dns")
            }
        }
    }

    /// `nameserver` lines of a resolv.conf, in order, without duplicates; a link-local zone (`%eth0`) is dropped.
    public static func resolvConfServers(_ text: String, path: String) throws -> [IPAddress] {
        var out: [IPAddress] = []
        let whole = Substring(text)
        try ValueParser.withBytes(whole) { bytes in
            try forEachLine(bytes) { n, line in
                let words = line.split(whereSeparator: { $0 == 0x20 || $0 == 0x09 })
                guard words.count >= 2, words[0].elementsEqual("nameserver".utf8) else { return }
                let zone = words[1].firstIndex(of: UInt8(ascii: "%")) ?? words[1].endIndex
                guard let address = IPAddress(bytes: words[1][..<zone]) else {
                    throw ConfigError("\(path):\(n) nameserver \(quotedValue(whole.slice(words[1]))) is not an IP "
                        + "address: expected e.g. nameserver 10.96.0.10")
                }
                if !out.contains(address) { out.append(address) }
            }
        }
        return out
    }

    /// istio's own tests use 127.0.0.1/8 here, so host bits are accepted and masked for this one value.
    private static func loopbackCIDR(_ v: Value) throws -> CIDR {
        let cidr: CIDR
        switch CIDR.parse(v.text, allowHostBits: true) {
        case .success(let parsed): cidr = parsed
        case .failure(let e): throw ConfigError("\(v.source) \(e.message)", source: v.source)
        }
        guard cidr.family == .ipv4, cidr.address.bytes[0] == 127, cidr.prefixLength >= 8 else {
            throw v.error("is not an IPv4 loopback range: expected a prefix of 127.0.0.0/8 from /8 to /32, like "
                + "127.0.0.1/32")
        }
        return cidr
    }

    private static func rejectWildcard(_ values: [Value], _ flag: CaptureFlag, allowed: Bool) throws {
        guard let star = values.first(where: \.isWildcard) else { return }
        if !allowed {
            throw ConfigError("\(star.source) does not take '*': expected a list", source: star.source)
        }
        throw ConfigError("\(star.source) mixes '*' with other entries "
            + "(\(quotedValue(values.map(\.text).joined(separator: ",")))): expected '*' alone or a list",
            source: star.source)
    }

    private static func portList(_ values: [Value], _ flag: CaptureFlag) throws -> [UInt16] {
        try rejectWildcard(values, flag, allowed: flag == .inboundPorts)
        return Array(Set(try values.map { try $0.parse(ValueKinds.port) })).sorted()
    }

    private static func ids(_ values: [Value], _ flag: CaptureFlag, what: String) throws -> [UInt32] {
        try rejectWildcard(values, flag, allowed: false)
        guard !values.isEmpty else {
            throw ConfigError("\(flag.display) is empty: expected at least one \(what)", source: .flag(flag.display))
        }
        let kind = ValueKinds.id(what)
        return Array(Set(try values.map { try $0.parse(kind) })).sorted()
    }

    private static func cidrList(_ values: [Value], _ flag: CaptureFlag) throws -> [CIDR] {
        try rejectWildcard(values, flag, allowed: flag == .outboundIncludeCIDRs)
        var out = Set<CIDR>(minimumCapacity: values.count)
        for v in values {
            switch CIDR.parse(v.text) {
            case .success(let c): out.insert(c)
            case .failure(let e): throw ConfigError("\(v.source) \(e.message)", source: v.source)
            }
        }
        return out.sorted()
    }

    /// Linux's rule for interface names (`dev_valid_name`): 1 to 15 bytes, not `.` or `..`, no `/`, `:` or
    /// whitespace. weir also refuses quotes and non-ASCII, which nft cannot print back.
    private static func interfaces(_ values: [Value], _ flag: CaptureFlag) throws -> [String] {
        try rejectWildcard(values, flag, allowed: false)
        for v in values {
            let bytes = v.text.utf8
            guard bytes.count <= 15 else {
                throw v.error("is \(bytes.count) bytes long: expected an interface name of at most 15 bytes")
            }
            guard !bytes.contains(where: {
                $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: "\"")
                    || $0 == UInt8(ascii: "'") || $0 <= 0x20 || $0 >= 0x7f
            }), v.text != ".", v.text != ".."
            else {
                throw v.error("is not an interface name: expected printable ASCII without '/', ':', quotes or spaces")
            }
        }
        return Array(Set(values.map { String($0.text) })).sorted()
    }

    private static func groupList(_ values: [Value], _ flag: CaptureFlag, resolve: (String) -> UInt32?) throws
        -> [UInt32]
    {
        try rejectWildcard(values, flag, allowed: flag == .ownerGroupsInclude)
        let gid = ValueKinds.id("GID")
        let gids = try values.map { v -> UInt32 in
            if let n = gid.value(v.text) { return n }
            if v.text.utf8.first == UInt8(ascii: "-") {
                throw v.error("is not a group: expected a group name or a GID >= 0")
            }
            guard let n = resolve(String(v.text)) else {
                throw v.error("is not a group on this host: expected a known group name or a numeric GID")
            }
            return n
        }
        return Array(Set(gids)).sorted()
    }
}

/// Why a file could not be read, for messages.
public enum ReadFailure: Error, Equatable, Sendable {
    case missing, directory, permission, tooLarge(limit: Int), other(String)

    public var phrase: String {
        switch self {
        case .missing: return "does not exist"
        case .directory: return "is a directory"
        case .permission: return "cannot be read (permission denied)"
        case .tooLarge(let limit): return "is larger than \(limit >> 20) MiB"
        case .other(let why): return "cannot be read (\(why))"
        }
    }
}

/// A value and where it came from, for messages: `-p`, `ENVOY_PORT`, `weir.conf:3 ENVOY_PORT` or `-i @list:7`.
struct Value {
    /// A slice of the flag, variable or list file: list entries are never copied.
    let text: Substring
    let source: ValueSource

    func error(_ problem: String) -> ConfigError { ConfigError(source, text, problem) }

    func parse<T>(_ kind: ValueKind<T>) throws -> T { try kind.parse(text, from: source) }

    var isWildcard: Bool { text.utf8.elementsEqual(CollectionOfOne(UInt8(ascii: "*"))) }

    /// A list that is `*` alone.
    static func isWildcard(_ values: [Value]) -> Bool { values.count == 1 && values[0].isWildcard }
}

/// Calls `body` with each line of `bytes` and its number from 1; lines end at `\n`, `\r\n` or a lone `\r`.
func forEachLine(_ bytes: UTF8Bytes, _ body: (Int, UTF8Bytes) throws -> Void) rethrows {
    var start = bytes.startIndex, i = start, n = 1
    while i < bytes.endIndex {
        let b = bytes[i]
        i += 1
        guard b == 0x0a || b == 0x0d else { continue }
        try body(n, bytes[start..<(i - 1)])
        n += 1
        if b == 0x0d, i < bytes.endIndex, bytes[i] == 0x0a { i += 1 }
        start = i
    }
    try body(n, bytes[start...])
}

/// Calls `body` with each comma-separated entry of `bytes`, trimmed of ASCII spaces; empty entries are dropped.
func forEachEntry(_ bytes: UTF8Bytes, _ body: (UTF8Bytes) throws -> Void) rethrows {
    var start = bytes.startIndex
    while true {
        let end = bytes[start...].firstIndex(of: UInt8(ascii: ",")) ?? bytes.endIndex
        let entry = ValueParser.trimmed(bytes[start..<end])
        if !entry.isEmpty { try body(entry) }
        guard end < bytes.endIndex else { return }
        start = end + 1
    }
}

/// Collects each flag's value from the command line or the environment, expanding `@PATH` lists.
struct FlagReader {

    let flags: [String: [String]]
    let environment: [String: String]
    let environmentSource: (String) -> ValueSource
    let readFile: (String) -> Result<String, ReadFailure>

    /// The raw value: the flag if given (once, or several times with the same value), else the first variable set.
    func raw(_ flag: CaptureFlag) throws -> Value? {
        if let values = flags[flag.long], let first = values.first {
            if let other = values.first(where: { $0 != first }) {
                throw ConfigError("\(flag.display) given twice with different values \(quotedValue(first)) "
                    + "and \(quotedValue(other)): expected one value", source: .flag(flag.display))
            }
            return Value(text: Substring(first), source: .flag(flag.display))
        }
        for name in flag.environments {
            if let v = environment[name] { return Value(text: Substring(v), source: environmentSource(name)) }
        }
        return nil
    }

    /// A single value with surrounding spaces trimmed.
    func single(_ flag: CaptureFlag) throws -> Value? {
        try raw(flag).map { Value(text: $0.text.trimmingSpaces, source: $0.source) }
    }

    /// Go's `strconv.ParseBool`, as istio's flags and variables take it; a bare flag is `true`.
    func bool(_ flag: CaptureFlag) throws -> Bool? {
        try single(flag).map { try $0.parse(ValueKinds.goBool) }
    }

    /// A comma list; `@PATH` reads one entry per line from a file (`#` starts a comment). Empty entries are dropped.
    func list(_ flag: CaptureFlag) throws -> [Value]? {
        guard let value = try raw(flag) else { return nil }
        var entries: [Value] = []
        try ValueParser.withBytes(value.text) { bytes in
            try forEachEntry(bytes) { entry in
                let token = value.text.slice(entry)
                guard entry.first == UInt8(ascii: "@") else {
                    entries.append(Value(text: token, source: value.source))
                    return
                }
                try readList(token, of: value, into: &entries)
            }
        }
        return entries
    }

    /// The entries of the list file `token` (`@PATH`) names, each with its line as its source.
    private func readList(_ token: Substring, of value: Value, into entries: inout [Value]) throws {
        let path = String(token.dropFirst())
        guard !path.isEmpty else {
            throw ConfigError("\(value.source) \(quotedValue(token)) names no list file: expected @PATH, a "
                + "file with one entry per line", source: value.source)
        }
        let text: String
        switch readFile(path) {
        case .success(let t): text = t
        case .failure(let why):
            throw ConfigError("\(value.source) list file \(quotedValue(path)) \(why.phrase): expected a "
                + "readable file with one entry per line", source: value.source)
        }
        let list = value.source.description
        let whole = Substring(text)
        ValueParser.withBytes(whole) { bytes in
            forEachLine(bytes) { n, line in
                let content = line[..<(line.firstIndex(of: UInt8(ascii: "#")) ?? line.endIndex)]
                forEachEntry(content) {
                    entries.append(Value(text: whole.slice($0), source: .listFile(list, path: path, line: n)))
                }
            }
        }
    }
}
