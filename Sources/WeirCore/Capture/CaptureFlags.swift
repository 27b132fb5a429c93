/// istio-iptables' flags (`tools/istio-iptables/pkg/cmd/root.go`): letter, long name, environment variables.
///
/// Precedence is istio's: a flag beats its variables; of the variables, the first listed wins (istio's
/// `AdditionalEnv` names, like `ISTIO_META_DNS_CAPTURE`, are applied after the name derived from the flag).
public struct CaptureFlag: Hashable, Sendable {
    public enum Kind: Hashable, Sendable { case value, list, bool }

    public let short: Character?
    public let long: String
    /// Highest precedence first.
    public let environments: [String]
    public let kind: Kind

    public init(short: Character? = nil, long: String, environments: [String] = [], kind: Kind = .value) {
        self.short = short
        self.long = long
        self.environments = environments
        self.kind = kind
    }

    public var isList: Bool { kind == .list }
    /// How messages name the flag: `-p`, or `--redirect-dns` for flags without a letter.
    public var display: String { short.map { "-\($0)" } ?? "--\(long)" }

    public static let proxyPort = CaptureFlag(short: "p", long: "envoy-port", environments: ["ENVOY_PORT"])
    public static let inboundCapturePort = CaptureFlag(
        short: "z", long: "inbound-capture-port", environments: ["INBOUND_CAPTURE_PORT"])
    public static let inboundTunnelPort = CaptureFlag(
        short: "e", long: "inbound-tunnel-port", environments: ["INBOUND_TUNNEL_PORT"])
    public static let proxyUID = CaptureFlag(short: "u", long: "proxy-uid", environments: ["PROXY_UID"], kind: .list)
    public static let proxyGID = CaptureFlag(short: "g", long: "proxy-gid", environments: ["PROXY_GID"], kind: .list)
    public static let mode = CaptureFlag(
        short: "m", long: "istio-inbound-interception-mode", environments: ["ISTIO_INBOUND_INTERCEPTION_MODE"])
    public static let tproxyMark = CaptureFlag(
        short: "t", long: "istio-inbound-tproxy-mark", environments: ["ISTIO_INBOUND_TPROXY_MARK"])
    public static let tproxyRouteTable = CaptureFlag(
        short: "r", long: "istio-inbound-tproxy-route-table", environments: ["ISTIO_INBOUND_TPROXY_ROUTE_TABLE"])
    public static let inboundPorts = CaptureFlag(
        short: "b", long: "istio-inbound-ports", environments: ["ISTIO_INBOUND_PORTS"], kind: .list)
    public static let inboundPortsExclude = CaptureFlag(
        short: "d", long: "istio-local-exclude-ports", environments: ["ISTIO_LOCAL_EXCLUDE_PORTS"], kind: .list)
    public static let outboundPortsExclude = CaptureFlag(
        short: "o", long: "istio-local-outbound-ports-exclude", environments: ["ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE"],
        kind: .list)
    public static let outboundPortsInclude = CaptureFlag(
        short: "q", long: "istio-outbound-ports", environments: ["ISTIO_OUTBOUND_PORTS"], kind: .list)
    public static let outboundIncludeCIDRs = CaptureFlag(
        short: "i", long: "istio-service-cidr", environments: ["ISTIO_SERVICE_CIDR"], kind: .list)
    public static let outboundExcludeCIDRs = CaptureFlag(
        short: "x", long: "istio-service-exclude-cidr", environments: ["ISTIO_SERVICE_EXCLUDE_CIDR"], kind: .list)
    public static let virtualInterfaces = CaptureFlag(
        short: "k", long: "kube-virt-interfaces", environments: ["KUBE_VIRT_INTERFACES"], kind: .list)
    public static let excludeInterfaces = CaptureFlag(
        short: "c", long: "istio-exclude-interfaces", environments: ["ISTIO_EXCLUDE_INTERFACES"], kind: .list)
    public static let ownerGroupsInclude = CaptureFlag(
        long: "outbound-owner-groups", environments: ["ISTIO_OUTBOUND_OWNER_GROUPS"], kind: .list)
    public static let ownerGroupsExclude = CaptureFlag(
        long: "outbound-owner-groups-exclude", environments: ["ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE"], kind: .list)
    public static let ipv4LoopbackCIDR = CaptureFlag(
        long: "outbound-ipv4-loopback-cidr", environments: ["ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR"])
    public static let dropInvalid = CaptureFlag(
        long: "drop-invalid", environments: ["INVALID_DROP", "DROP_INVALID"], kind: .bool)
    public static let redirectDNS = CaptureFlag(
        long: "redirect-dns", environments: ["ISTIO_META_DNS_CAPTURE", "REDIRECT_DNS"], kind: .bool)
    public static let captureAllDNS = CaptureFlag(
        long: "capture-all-dns", environments: ["CAPTURE_ALL_DNS"], kind: .bool)
    /// weir's: the DNS servers to capture, instead of reading /etc/resolv.conf.
    public static let dnsServers = CaptureFlag(long: "dns-servers", environments: ["WEIR_DNS_SERVERS"], kind: .list)
    /// weir's: istio's agent DNS port, a constant (15053) in istio.
    public static let dnsProxyPort = CaptureFlag(long: "dns-proxy-port", environments: ["WEIR_DNS_PROXY_PORT"])
    public static let dualStack = CaptureFlag(
        long: "dual-stack", environments: ["ISTIO_DUAL_STACK", "DUAL_STACK"], kind: .bool)

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
    ///   - environmentSource: how a message names a variable's origin (`weir.conf:3 ISTIO_SERVICE_CIDR`).
    ///   - ipv4Only: `--ipv4-only`.
    ///   - readFile: contents of a `@PATH` list file or of /etc/resolv.conf, or a reason it cannot be read.
    ///   - resolveGroup: a group name's GID, or nil if unknown.
    ///   - resolveUser: a user name's UID, or nil if unknown (istio's default -u is `ENVOY_USER`'s UID).
    /// - Throws: `ConfigError` naming the first bad value, where it came from and what was expected.
    public static func parse(
        flags: [String: [String]],
        environment: [String: String] = [:],
        environmentSource: @escaping (String) -> String = { $0 },
        ipv4Only: Bool = false,
        readFile: @escaping (String) -> Result<String, ReadFailure> = { _ in .failure(.missing) },
        resolveGroup: (String) -> UInt32? = { _ in nil },
        resolveUser: (String) -> UInt32? = { _ in nil }
    ) throws -> CaptureConfig {
        let reader = FlagReader(flags: flags, environment: environment, environmentSource: environmentSource,
                                readFile: readFile)
        var c = CaptureConfig()
        c.ipv4Only = ipv4Only
        let known = Set((CaptureFlag.all + CaptureFlag.invocation).map(\.long))
        for name in flags.keys.sorted() where !known.contains(name) {
            throw ConfigError("unknown capture flag \(quotedValue("--" + name))")
        }
        if let v = try reader.single(.proxyPort) { c.proxyPort = try port(v) }
        if let v = try reader.single(.inboundCapturePort) { c.inboundCapturePort = try port(v) }
        if let v = try reader.single(.inboundTunnelPort) { c.inboundTunnelPort = try port(v) }
        if let v = try reader.list(.proxyUID) {
            c.proxyUIDs = try ids(v, .proxyUID, what: "UID")
        } else {
            // istio: the UID of ENVOY_USER (default istio-proxy) if that user exists, else 1337.
            let user = environment["ENVOY_USER"] ?? "istio-proxy"
            if let uid = resolveUser(user) { c.proxyUIDs = [uid] }
        }
        if let v = try reader.list(.proxyGID) {
            c.proxyGIDs = try ids(v, .proxyGID, what: "GID")
        } else {
            // istio: the GID list defaults to the UID list.
            c.proxyGIDs = c.proxyUIDs
        }
        if let v = try reader.single(.mode) {
            guard let m = InterceptionMode(rawValue: v.text.uppercased()) else {
                throw v.error("is not a mode: expected REDIRECT or TPROXY (any case)")
            }
            c.mode = m
        }
        if let v = try reader.single(.tproxyMark) {
            c.tproxyMark = try number(v, what: "mark", range: 1...UInt32.max)
        }
        if let v = try reader.single(.tproxyRouteTable) {
            let t = try number(v, what: "routing table", range: 1...0xffff_fffe)
            guard !(253...255).contains(t) else {
                throw v.error("is a reserved routing table (default, main, local): expected another number")
            }
            c.tproxyRouteTable = t
        }
        if let v = try reader.list(.inboundPorts) {
            if v.map(\.text) == ["*"] {
                c.inboundPorts = .all
            } else {
                let ports = try portList(v, .inboundPorts)
                c.inboundPorts = ports.isEmpty ? .none : .list(ports)
            }
        }
        if let v = try reader.list(.inboundPortsExclude) { c.inboundPortsExclude = try portList(v, .inboundPortsExclude) }
        if let v = try reader.list(.outboundPortsExclude) {
            c.outboundPortsExclude = try portList(v, .outboundPortsExclude)
        }
        if let v = try reader.list(.outboundPortsInclude) {
            c.outboundPortsInclude = try portList(v, .outboundPortsInclude)
        }
        if let v = try reader.list(.outboundIncludeCIDRs) {
            if v.map(\.text) == ["*"] {
                c.outboundIncludeCIDRs = .all
            } else {
                let cidrs = try cidrList(v, .outboundIncludeCIDRs)
                c.outboundIncludeCIDRs = cidrs.isEmpty ? .none : .list(cidrs)
            }
        }
        if let v = try reader.list(.outboundExcludeCIDRs) {
            c.outboundExcludeCIDRs = try cidrList(v, .outboundExcludeCIDRs)
        }
        if let v = try reader.list(.virtualInterfaces) { c.virtualInterfaces = try interfaces(v, .virtualInterfaces) }
        if let v = try reader.list(.excludeInterfaces) { c.excludeInterfaces = try interfaces(v, .excludeInterfaces) }
        var groupsInclude: Value?
        if let v = try reader.list(.ownerGroupsInclude), v.map(\.text) != ["*"] {
            let groups = try groupList(v, .ownerGroupsInclude, resolve: resolveGroup)
            c.ownerGroupsInclude = groups.isEmpty ? nil : groups
            groupsInclude = v.first
        }
        var groupsExclude: Value?
        if let v = try reader.list(.ownerGroupsExclude) {
            c.ownerGroupsExclude = try groupList(v, .ownerGroupsExclude, resolve: resolveGroup)
            groupsExclude = v.first
        }
        if c.ownerGroupsInclude != nil && !c.ownerGroupsExclude.isEmpty {
            throw ConfigError("\(groupsInclude!.source) and \(groupsExclude!.source) are both set: expected only one "
                + "of them")
        }
        if let v = try reader.single(.ipv4LoopbackCIDR) {
            // istio's own tests use 127.0.0.1/8 here, so host bits are accepted and masked for this one value.
            let cidr: CIDR
            switch CIDR.parse(v.text, allowHostBits: true) {
            case .success(let parsed): cidr = parsed
            case .failure(let e): throw ConfigError("\(v.source) \(e.message)")
            }
            guard cidr.family == .ipv4, cidr.address.bytes[0] == 127, cidr.prefixLength >= 8 else {
                throw v.error("is not an IPv4 loopback range: expected a prefix of 127.0.0.0/8 from /8 to /32, like "
                    + "127.0.0.1/32")
            }
            c.ipv4LoopbackCIDR = cidr
        }
        if let v = try reader.bool(.dropInvalid) { c.dropInvalid = v }
        if let v = try reader.bool(.redirectDNS) { c.redirectDNS = v }
        if let v = try reader.bool(.captureAllDNS) { c.captureAllDNS = v }
        if let v = try reader.single(.dnsProxyPort) { c.dnsProxyPort = try port(v) }
        if let v = try reader.bool(.dualStack) {
            if v && ipv4Only {
                throw ConfigError("--dual-stack and --ipv4-only are both set: expected one of them (weir captures "
                    + "IPv4 and IPv6 unless --ipv4-only)")
            }
            c.dualStack = v
        }
        if let v = try reader.list(.dnsServers) {
            c.dnsServers = try addresses(v)
        } else if c.redirectDNS && !c.captureAllDNS {
            // istio reads the servers only when it needs them, so an unreadable file matters only then.
            switch readFile(resolvConf) {
            case .success(let text):
                c.dnsServers = try resolvConfServers(text, path: resolvConf)
            case .failure(let why):
                throw ConfigError("\(resolvConf) \(why.phrase) (--redirect-dns needs the DNS servers): expected a "
                    + "readable resolv.conf, or --dns-servers, or --capture-all-dns")
            }
        }
        return c
    }

    /// `nameserver` lines of a resolv.conf, in order, without duplicates; a link-local zone (`%eth0`) is dropped.
    public static func resolvConfServers(_ text: String, path: String) throws -> [IPAddress] {
        var out: [IPAddress] = []
        for (n, line) in lines(text).enumerated() {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.first == "nameserver" else { continue }
            guard words.count >= 2 else { continue }
            let word = words[1].split(separator: "%", maxSplits: 1)[0]
            guard let address = IPAddress(String(word)) else {
                throw ConfigError("\(path):\(n + 1) nameserver \(quotedValue(String(words[1]))) is not an IP "
                    + "address: expected e.g. nameserver 10.96.0.10")
            }
            if !out.contains(address) { out.append(address) }
        }
        return out
    }

    private static func port(_ v: Value) throws -> UInt16 {
        guard !v.text.isEmpty, v.text.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(v.text.prefix(6)),
              (1...65535).contains(n)
        else {
            throw v.error("is not a port: expected a number from 1 to 65535")
        }
        return UInt16(n)
    }

    private static func number(_ v: Value, what: String, range: ClosedRange<UInt32>) throws -> UInt32 {
        guard !v.text.isEmpty, v.text.allSatisfy({ $0.isASCII && $0.isNumber }), let n = UInt64(v.text.prefix(11)),
              n >= range.lowerBound, n <= range.upperBound
        else {
            throw v.error("is not a \(what): expected a number from \(range.lowerBound) to \(range.upperBound)")
        }
        return UInt32(n)
    }

    private static func rejectWildcard(_ values: [Value], _ flag: CaptureFlag, allowed: Bool) throws {
        guard let star = values.first(where: { $0.text == "*" }) else { return }
        if !allowed {
            throw ConfigError("\(star.source) does not take '*': expected a list")
        }
        throw ConfigError("\(star.source) mixes '*' with other entries "
            + "(\(quotedValue(values.map(\.text).joined(separator: ",")))): expected '*' alone or a list")
    }

    private static func portList(_ values: [Value], _ flag: CaptureFlag) throws -> [UInt16] {
        try rejectWildcard(values, flag, allowed: flag == .inboundPorts)
        return Array(Set(try values.map { try port($0) })).sorted()
    }

    private static func ids(_ values: [Value], _ flag: CaptureFlag, what: String) throws -> [UInt32] {
        try rejectWildcard(values, flag, allowed: false)
        guard !values.isEmpty else { throw ConfigError("\(flag.display) is empty: expected at least one \(what)") }
        let parsed = try values.map { v -> UInt32 in
            guard !v.text.isEmpty, v.text.allSatisfy({ $0.isASCII && $0.isNumber }), let n = UInt32(v.text.prefix(11)),
                  n < UInt32.max
            else {
                throw v.error("is not a \(what): expected a number from 0 to 4294967294")
            }
            return n
        }
        return Array(Set(parsed)).sorted()
    }

    private static func cidrList(_ values: [Value], _ flag: CaptureFlag) throws -> [CIDR] {
        try rejectWildcard(values, flag, allowed: flag == .outboundIncludeCIDRs)
        var out = Set<CIDR>()
        for v in values {
            switch CIDR.parse(v.text) {
            case .success(let c): out.insert(c)
            case .failure(let e): throw ConfigError("\(v.source) \(e.message)")
            }
        }
        return out.sorted()
    }

    private static func addresses(_ values: [Value]) throws -> [IPAddress] {
        var out: [IPAddress] = []
        for v in values {
            guard let a = IPAddress(v.text) else {
                throw v.error("is not an IP address: expected e.g. 10.96.0.10 or 2001:db8::53")
            }
            if !out.contains(a) { out.append(a) }
        }
        return out
    }

    /// Linux's rule for interface names (`dev_valid_name`): 1 to 15 bytes, not `.` or `..`, no `/`, `:` or
    /// whitespace. weir also refuses quotes and non-ASCII, which nft cannot print back.
    private static func interfaces(_ values: [Value], _ flag: CaptureFlag) throws -> [String] {
        try rejectWildcard(values, flag, allowed: false)
        for v in values {
            guard v.text.utf8.count <= 15 else {
                throw v.error("is \(v.text.utf8.count) bytes long: expected an interface name of at most 15 bytes")
            }
            guard !v.text.unicodeScalars.contains(where: {
                $0 == "/" || $0 == ":" || $0 == "\"" || $0 == "'" || $0.value <= 0x20 || $0.value >= 0x7f
            }), v.text != ".", v.text != ".."
            else {
                throw v.error("is not an interface name: expected printable ASCII without '/', ':', quotes or spaces")
            }
        }
        return Array(Set(values.map(\.text))).sorted()
    }

    private static func groupList(_ values: [Value], _ flag: CaptureFlag, resolve: (String) -> UInt32?) throws
        -> [UInt32]
    {
        try rejectWildcard(values, flag, allowed: flag == .ownerGroupsInclude)
        let gids = try values.map { v -> UInt32 in
            if v.text.allSatisfy({ $0.isASCII && $0.isNumber }), let n = UInt32(v.text.prefix(11)), n < UInt32.max {
                return n
            }
            if v.text.hasPrefix("-") { throw v.error("is not a group: expected a group name or a GID >= 0") }
            guard let gid = resolve(v.text) else {
                throw v.error("is not a group on this host: expected a known group name or a numeric GID")
            }
            return gid
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
    let text: String
    let source: String

    func error(_ problem: String) -> ConfigError {
        ConfigError("\(source) \(quotedValue(text)) \(problem)")
    }
}

/// Splits text into lines at `\n`, `\r\n` or a lone `\r` (`\r\n` is one Character in Swift).
func lines(_ text: String) -> [Substring] {
    text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
}

/// Collects each flag's value from the command line or the environment, expanding `@PATH` lists.
struct FlagReader {

    let flags: [String: [String]]
    let environment: [String: String]
    let environmentSource: (String) -> String
    let readFile: (String) -> Result<String, ReadFailure>

    /// The raw value: the flag if given (once, or several times with the same value), else the first variable set.
    func raw(_ flag: CaptureFlag) throws -> Value? {
        if let values = flags[flag.long], let first = values.first {
            if let other = values.first(where: { $0 != first }) {
                throw ConfigError("\(flag.display) given twice with different values \(quotedValue(first)) "
                    + "and \(quotedValue(other)): expected one value")
            }
            return Value(text: first, source: flag.display)
        }
        for name in flag.environments {
            if let v = environment[name] { return Value(text: v, source: environmentSource(name)) }
        }
        return nil
    }

    /// A single value with surrounding spaces trimmed.
    func single(_ flag: CaptureFlag) throws -> Value? {
        try raw(flag).map { Value(text: $0.text.trimmingSpaces, source: $0.source) }
    }

    /// Go's `strconv.ParseBool`, as istio's flags and variables take it; a bare flag is `true`.
    func bool(_ flag: CaptureFlag) throws -> Bool? {
        guard let v = try single(flag) else { return nil }
        guard let b = parseGoBool(v.text) else {
            throw v.error("is not a boolean: expected true or false (or 1, 0, t, f)")
        }
        return b
    }

    /// A comma list; `@PATH` reads one entry per line from a file (`#` starts a comment). Empty entries are dropped.
    func list(_ flag: CaptureFlag) throws -> [Value]? {
        guard let value = try raw(flag) else { return nil }
        var entries: [Value] = []
        for item in value.text.split(separator: ",", omittingEmptySubsequences: true) {
            let token = String(item).trimmingSpaces
            if token.hasPrefix("@") {
                let path = String(token.dropFirst())
                guard !path.isEmpty else {
                    throw ConfigError("\(value.source) \(quotedValue(token)) names no list file: expected @PATH, a "
                        + "file with one entry per line")
                }
                let text: String
                switch readFile(path) {
                case .success(let t): text = t
                case .failure(let why):
                    throw ConfigError("\(value.source) list file \(quotedValue(path)) \(why.phrase): expected a "
                        + "readable file with one entry per line")
                }
                let origin = "\(value.source) @\(oneLineMessage(path)):"
                for (n, line) in lines(text).enumerated() {
                    let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
                    for entry in content.split(separator: ",") {
                        let e = String(entry).trimmingSpaces
                        if !e.isEmpty {
                            entries.append(Value(text: e, source: origin + String(n + 1)))
                        }
                    }
                }
            } else if !token.isEmpty {
                entries.append(Value(text: token, source: value.source))
            }
        }
        return entries
    }
}

/// Go's `strconv.ParseBool`: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False.
public func parseGoBool(_ text: String) -> Bool? {
    switch text {
    case "1", "t", "T", "TRUE", "true", "True": return true
    case "0", "f", "F", "FALSE", "false", "False": return false
    default: return nil
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
