/// istio-iptables' flags: letter, long name, environment variable. A flag beats its variable.
public struct CaptureFlag: Hashable, Sendable {
    public let short: Character?
    public let long: String
    public let environment: String?
    public let isList: Bool

    public var display: String { short.map { "-\($0)" } ?? "--\(long)" }

    public static let proxyPort = CaptureFlag(short: "p", long: "envoy-port", environment: "ENVOY_PORT", isList: false)
    public static let inboundCapturePort = CaptureFlag(
        short: "z", long: "inbound-capture-port", environment: "INBOUND_CAPTURE_PORT", isList: false)
    public static let inboundTunnelPort = CaptureFlag(
        short: "e", long: "inbound-tunnel-port", environment: "INBOUND_TUNNEL_PORT", isList: false)
    public static let proxyUID = CaptureFlag(short: "u", long: "proxy-uid", environment: "PROXY_UID", isList: true)
    public static let proxyGID = CaptureFlag(short: "g", long: "proxy-gid", environment: "PROXY_GID", isList: true)
    public static let mode = CaptureFlag(
        short: "m", long: "istio-inbound-interception-mode", environment: "ISTIO_INBOUND_INTERCEPTION_MODE",
        isList: false)
    public static let tproxyMark = CaptureFlag(
        short: "t", long: "istio-inbound-tproxy-mark", environment: "ISTIO_INBOUND_TPROXY_MARK", isList: false)
    public static let tproxyRouteTable = CaptureFlag(
        short: "r", long: "istio-inbound-tproxy-route-table", environment: "ISTIO_INBOUND_TPROXY_ROUTE_TABLE",
        isList: false)
    public static let inboundPorts = CaptureFlag(
        short: "b", long: "istio-inbound-ports", environment: "ISTIO_INBOUND_PORTS", isList: true)
    public static let inboundPortsExclude = CaptureFlag(
        short: "d", long: "istio-local-exclude-ports", environment: "ISTIO_LOCAL_EXCLUDE_PORTS", isList: true)
    public static let outboundPortsExclude = CaptureFlag(
        short: "o", long: "istio-local-outbound-ports-exclude", environment: "ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE",
        isList: true)
    public static let outboundPortsInclude = CaptureFlag(
        short: "q", long: "istio-outbound-ports", environment: "ISTIO_OUTBOUND_PORTS", isList: true)
    public static let outboundIncludeCIDRs = CaptureFlag(
        short: "i", long: "istio-service-cidr", environment: "ISTIO_SERVICE_CIDR", isList: true)
    public static let outboundExcludeCIDRs = CaptureFlag(
        short: "x", long: "istio-service-exclude-cidr", environment: "ISTIO_SERVICE_EXCLUDE_CIDR", isList: true)
    public static let virtualInterfaces = CaptureFlag(
        short: "k", long: "kube-virt-interfaces", environment: "KUBE_VIRT_INTERFACES", isList: true)
    public static let excludeInterfaces = CaptureFlag(
        short: "c", long: "istio-exclude-interfaces", environment: "ISTIO_EXCLUDE_INTERFACES", isList: true)
    public static let ownerGroupsInclude = CaptureFlag(
        short: nil, long: "outbound-owner-groups", environment: "ISTIO_OUTBOUND_OWNER_GROUPS", isList: true)
    public static let ownerGroupsExclude = CaptureFlag(
        short: nil, long: "outbound-owner-groups-exclude", environment: "ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE",
        isList: true)
    public static let ipv4LoopbackCIDR = CaptureFlag(
        short: nil, long: "outbound-ipv4-loopback-cidr", environment: "ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR",
        isList: false)
    public static let dropInvalid = CaptureFlag(
        short: nil, long: "drop-invalid", environment: "INVALID_DROP", isList: false)

    public static let all: [CaptureFlag] = [
        proxyPort, inboundCapturePort, inboundTunnelPort, proxyUID, proxyGID, mode, tproxyMark, tproxyRouteTable,
        inboundPorts, inboundPortsExclude, outboundPortsExclude, outboundPortsInclude, outboundIncludeCIDRs,
        outboundExcludeCIDRs, virtualInterfaces, excludeInterfaces, ownerGroupsInclude, ownerGroupsExclude,
        ipv4LoopbackCIDR, dropInvalid,
    ]
}

extension CaptureConfig {
    /// Reads and validates istio-iptables flags.
    ///
    /// - Parameters:
    ///   - flags: every value given on the command line, by long name, in order (a flag given twice appears twice).
    ///   - environment: the process environment; used for flags not given.
    ///   - ipv4Only: `--ipv4-only`.
    ///   - readFile: contents of the file named by a `@PATH` list value, or nil if unreadable.
    ///   - resolveGroup: a group name's GID, or nil if unknown.
    /// - Throws: `ConfigError` naming the first bad value and what was expected.
    public static func parse(
        flags: [String: [String]],
        environment: [String: String] = [:],
        ipv4Only: Bool = false,
        readFile: @escaping (String) -> String? = { _ in nil },
        resolveGroup: (String) -> UInt32? = { _ in nil }
    ) throws -> CaptureConfig {
        var reader = FlagReader(flags: flags, environment: environment, readFile: readFile)
        var c = CaptureConfig()
        c.ipv4Only = ipv4Only
        for name in flags.keys.sorted() where !CaptureFlag.all.contains(where: { $0.long == name }) {
            throw ConfigError("unknown capture flag '--\(name)'")
        }
        if let v = try reader.single(.proxyPort) { c.proxyPort = try port(v, .proxyPort) }
        if let v = try reader.single(.inboundCapturePort) { c.inboundCapturePort = try port(v, .inboundCapturePort) }
        if let v = try reader.single(.inboundTunnelPort) { c.inboundTunnelPort = try port(v, .inboundTunnelPort) }
        if let v = try reader.list(.proxyUID) { c.proxyUIDs = try ids(v, .proxyUID, what: "UID") }
        if let v = try reader.list(.proxyGID) {
            c.proxyGIDs = try ids(v, .proxyGID, what: "GID")
        } else if reader.given(.proxyUID) {
            // istio: the GID list defaults to the UID list.
            c.proxyGIDs = c.proxyUIDs
        }
        if let v = try reader.single(.mode) {
            guard let m = InterceptionMode(rawValue: v.uppercased()) else {
                throw ConfigError("\(CaptureFlag.mode.display) '\(v)' is not a mode: expected REDIRECT or TPROXY")
            }
            c.mode = m
        }
        if let v = try reader.single(.tproxyMark) {
            c.tproxyMark = try number(v, .tproxyMark, what: "mark", range: 1...UInt32.max)
        }
        if let v = try reader.single(.tproxyRouteTable) {
            let t = try number(v, .tproxyRouteTable, what: "routing table", range: 1...0xffff_fffe)
            guard !(253...255).contains(t) else {
                throw ConfigError("\(CaptureFlag.tproxyRouteTable.display) '\(v)' is a reserved routing table "
                    + "(default, main, local): expected another number")
            }
            c.tproxyRouteTable = t
        }
        if let v = try reader.list(.inboundPorts) {
            if v == ["*"] {
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
            if v == ["*"] {
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
        if let v = try reader.list(.ownerGroupsInclude), v != ["*"] {
            let groups = try groupList(v, .ownerGroupsInclude, resolve: resolveGroup)
            c.ownerGroupsInclude = groups.isEmpty ? nil : groups
        }
        if let v = try reader.list(.ownerGroupsExclude) {
            c.ownerGroupsExclude = try groupList(v, .ownerGroupsExclude, resolve: resolveGroup)
        }
        if c.ownerGroupsInclude != nil && !c.ownerGroupsExclude.isEmpty {
            throw ConfigError("\(CaptureFlag.ownerGroupsInclude.environment!) and "
                + "\(CaptureFlag.ownerGroupsExclude.environment!) are both set: expected only one of them")
        }
        if let v = try reader.single(.ipv4LoopbackCIDR) {
            // istio's own tests use 127.0.0.1/8 here, so host bits are accepted and masked for this one value.
            let cidr = try CIDR.parse(v, allowHostBits: true).get()
            guard cidr.family == .ipv4 else {
                throw ConfigError("\(CaptureFlag.ipv4LoopbackCIDR.environment!) '\(v)' is not IPv4: expected e.g. "
                    + "127.0.0.1/32")
            }
            c.ipv4LoopbackCIDR = cidr
        }
        if let v = try reader.single(.dropInvalid) {
            switch v.lowercased() {
            case "true", "1", "yes": c.dropInvalid = true
            case "false", "0", "no", "": c.dropInvalid = false
            default: throw ConfigError("--drop-invalid '\(v)' is not a boolean: expected true or false")
            }
        }
        return c
    }

    private static func port(_ text: String, _ flag: CaptureFlag) throws -> UInt16 {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }), let v = Int(text), (1...65535).contains(v)
        else {
            throw ConfigError("\(flag.display) '\(text)' is not a port: expected a number from 1 to 65535")
        }
        return UInt16(v)
    }

    private static func number(_ text: String, _ flag: CaptureFlag, what: String, range: ClosedRange<UInt32>) throws
        -> UInt32
    {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }), let v = UInt64(text), v >= range.lowerBound,
              v <= range.upperBound
        else {
            throw ConfigError("\(flag.display) '\(text)' is not a \(what): expected a number from \(range.lowerBound) "
                + "to \(range.upperBound)")
        }
        return UInt32(v)
    }

    private static func rejectWildcard(_ values: [String], _ flag: CaptureFlag, allowed: Bool) throws {
        guard values.contains("*") else { return }
        if !allowed {
            throw ConfigError("\(flag.display) does not take '*': expected a list")
        }
        throw ConfigError("\(flag.display) mixes '*' with other entries (\(values.joined(separator: ","))): "
            + "expected '*' alone or a list")
    }

    private static func portList(_ values: [String], _ flag: CaptureFlag) throws -> [UInt16] {
        try rejectWildcard(values, flag, allowed: flag == .inboundPorts)
        return Array(Set(try values.map { try port($0, flag) })).sorted()
    }

    private static func ids(_ values: [String], _ flag: CaptureFlag, what: String) throws -> [UInt32] {
        try rejectWildcard(values, flag, allowed: false)
        guard !values.isEmpty else { throw ConfigError("\(flag.display) is empty: expected at least one \(what)") }
        let parsed = try values.map { v -> UInt32 in
            guard !v.isEmpty, v.allSatisfy({ $0.isASCII && $0.isNumber }), let n = UInt32(v), n < UInt32.max else {
                throw ConfigError("\(flag.display) '\(v)' is not a \(what): expected a number from 0 to 4294967294")
            }
            return n
        }
        return Array(Set(parsed)).sorted()
    }

    private static func cidrList(_ values: [String], _ flag: CaptureFlag) throws -> [CIDR] {
        try rejectWildcard(values, flag, allowed: flag == .outboundIncludeCIDRs)
        var out = Set<CIDR>()
        for v in values {
            switch CIDR.parse(v) {
            case .success(let c): out.insert(c)
            case .failure(let e): throw ConfigError("\(flag.display) \(e.message)")
            }
        }
        return out.sorted()
    }

    private static func interfaces(_ values: [String], _ flag: CaptureFlag) throws -> [String] {
        try rejectWildcard(values, flag, allowed: false)
        for v in values {
            guard v.utf8.count <= 15 else {
                throw ConfigError("\(flag.display) interface name '\(v)' is \(v.utf8.count) bytes long: "
                    + "expected at most 15")
            }
            guard !v.contains(where: { $0 == "/" || $0 == "\"" || $0.isWhitespace || !$0.isASCII }), v != ".", v != ".."
            else {
                throw ConfigError("\(flag.display) '\(v)' is not an interface name: expected letters, digits, '-', "
                    + "'_', '.'")
            }
        }
        return Array(Set(values)).sorted()
    }

    private static func groupList(_ values: [String], _ flag: CaptureFlag, resolve: (String) -> UInt32?) throws
        -> [UInt32]
    {
        try rejectWildcard(values, flag, allowed: flag == .ownerGroupsInclude)
        let gids = try values.map { v -> UInt32 in
            if v.allSatisfy({ $0.isASCII && $0.isNumber }), let n = UInt32(v), n < UInt32.max { return n }
            if v.hasPrefix("-") {
                throw ConfigError("\(flag.environment!) '\(v)' is not a group: expected a group name or a GID >= 0")
            }
            guard let gid = resolve(v) else {
                throw ConfigError("\(flag.environment!) group '\(v)' does not exist on this host: expected a known "
                    + "group name or a numeric GID")
            }
            return gid
        }
        return Array(Set(gids)).sorted()
    }
}

/// Collects each flag's value from the command line or the environment, expanding `@PATH` lists.
struct FlagReader {
    let flags: [String: [String]]
    let environment: [String: String]
    let readFile: (String) -> String?

    func given(_ flag: CaptureFlag) -> Bool {
        flags[flag.long] != nil || (flag.environment.flatMap { environment[$0] } != nil)
    }

    /// The raw value: the flag if given (once, or several times with the same value), else the variable.
    mutating func raw(_ flag: CaptureFlag) throws -> String? {
        if let values = flags[flag.long], let first = values.first {
            if let other = values.first(where: { $0 != first }) {
                throw ConfigError("\(flag.display) given twice with different values '\(first)' and '\(other)': "
                    + "expected one value")
            }
            return first
        }
        if let env = flag.environment, let v = environment[env] { return v }
        return nil
    }

    mutating func single(_ flag: CaptureFlag) throws -> String? {
        try raw(flag).map { $0.trimmingSpaces }
    }

    /// A comma list; `@PATH` reads one entry per line from a file (`#` starts a comment).
    mutating func list(_ flag: CaptureFlag) throws -> [String]? {
        guard let value = try raw(flag) else { return nil }
        var entries: [String] = []
        for item in value.split(separator: ",", omittingEmptySubsequences: true) {
            let token = String(item).trimmingSpaces
            if token.hasPrefix("@") {
                let path = String(token.dropFirst())
                guard let text = readFile(path) else {
                    throw ConfigError("\(flag.display) cannot read list file '\(path)': expected a readable file "
                        + "with one entry per line")
                }
                for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) {
                    let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
                    for entry in content.split(separator: ",") {
                        let e = String(entry).trimmingSpaces
                        if !e.isEmpty { entries.append(e) }
                    }
                }
            } else if !token.isEmpty {
                entries.append(token)
            }
        }
        return entries
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
