import ArgumentParser
import WeirCore
import WeirSystem

/// istio-iptables' flags, every name, variable, help and default from `CaptureFlag`'s table. Every option collects
/// each occurrence so a flag given twice with different values is refused rather than silently overridden.
struct CaptureOptions: ParsableArguments {
    @Option(.proxyPort)
    var proxyPort: [String]

    @Option(.inboundCapturePort)
    var inboundCapturePort: [String]

    @Option(.inboundTunnelPort)
    var inboundTunnelPort: [String]

    @Option(.proxyUID)
    var proxyUID: [String]

    @Option(.proxyGID)
    var proxyGID: [String]

    @Option(.mode)
    var mode: [String]

    @Option(.tproxyMark)
    var tproxyMark: [String]

    @Option(.tproxyRouteTable)
    var tproxyRouteTable: [String]

    @Option(.inboundPorts)
    var inboundPorts: [String]

    @Option(.inboundPortsExclude)
    var inboundPortsExclude: [String]

    @Option(.outboundPortsExclude)
    var outboundPortsExclude: [String]

    @Option(.outboundPortsInclude)
    var outboundPortsInclude: [String]

    @Option(.outboundIncludeCIDRs)
    var outboundIncludeCIDRs: [String]

    @Option(.outboundExcludeCIDRs)
    var outboundExcludeCIDRs: [String]

    @Option(.virtualInterfaces)
    var virtualInterfaces: [String]

    @Option(.excludeInterfaces)
    var excludeInterfaces: [String]

    @Option(.ownerGroupsInclude)
    var ownerGroupsInclude: [String]

    @Option(.ownerGroupsExclude)
    var ownerGroupsExclude: [String]

    @Option(.ipv4LoopbackCIDR)
    var ipv4LoopbackCIDR: [String]

    @Flag(.dropInvalid)
    var dropInvalid: Bool?

    @Flag(.redirectDNS)
    var redirectDNS: Bool?

    @Flag(.captureAllDNS)
    var captureAllDNS: Bool?

    @Option(.dnsServers)
    var dnsServers: [String]

    @Option(.dnsProxyPort)
    var dnsProxyPort: [String]

    @Flag(.dualStack)
    var dualStack: Bool?

    @Flag(name: .customLong("ipv4-only"), help: "Capture IPv4 only (an 'ip' table); IPv6 is then not captured.")
    var ipv4Only = false

    @Option(.networkNamespace)
    var networkNamespace: [String]

    /// Values by istio long name, for `CaptureConfig.parse`.
    var flagValues: [String: [String]] {
        let pairs: [(CaptureFlag, [String])] = [
            (.proxyPort, proxyPort), (.inboundCapturePort, inboundCapturePort), (.inboundTunnelPort, inboundTunnelPort),
            (.proxyUID, proxyUID), (.proxyGID, proxyGID), (.mode, mode), (.tproxyMark, tproxyMark),
            (.tproxyRouteTable, tproxyRouteTable), (.inboundPorts, inboundPorts),
            (.inboundPortsExclude, inboundPortsExclude), (.outboundPortsExclude, outboundPortsExclude),
            (.outboundPortsInclude, outboundPortsInclude), (.outboundIncludeCIDRs, outboundIncludeCIDRs),
            (.outboundExcludeCIDRs, outboundExcludeCIDRs), (.virtualInterfaces, virtualInterfaces),
            (.excludeInterfaces, excludeInterfaces), (.ownerGroupsInclude, ownerGroupsInclude),
            (.ownerGroupsExclude, ownerGroupsExclude), (.ipv4LoopbackCIDR, ipv4LoopbackCIDR),
            (.dnsServers, dnsServers), (.dnsProxyPort, dnsProxyPort), (.networkNamespace, networkNamespace),
        ]
        return flagDictionary(pairs, [(.dropInvalid, dropInvalid), (.redirectDNS, redirectDNS),
                                      (.captureAllDNS, captureAllDNS), (.dualStack, dualStack)])
    }

    /// The process environment with `--config` file values laid over it, and how messages name each variable.
    func environment(file: ConfigFile?) -> (values: [String: String], source: (String) -> ValueSource) {
        var environment = ProcessEnvironment.all
        let fromFile = Set(file?.values.keys.filter { CaptureFlag.environmentNames.contains($0) } ?? [])
        for key in fromFile { environment[key] = file!.values[key] }
        return (environment, { key in fromFile.contains(key) ? file!.valueSource(key) : .variable(key) })
    }

    /// Parses and validates everything; throws `ConfigError` (exit 2) before anything touches the system.
    /// `file` values (`weir run --config`) stand in for flags not given and beat the process environment.
    func config(file: ConfigFile? = nil, flags extra: [String: [String]] = [:]) throws -> CaptureConfig {
        let (environment, source) = self.environment(file: file)
        return try CaptureConfig.parse(
            flags: flagValues.merging(extra) { $1 },
            environment: environment,
            environmentSource: source,
            ipv4Only: try ipv4Only || (file?.bool(ConfigFile.key(forFlag: "--ipv4-only")) ?? false),
            readFile: { path in
                readSmallFile(path, limit: CaptureConfig.listFileLimit).map { String(decoding: $0, as: UTF8.self) }
                    .mapError { ReadFailure($0, limit: CaptureConfig.listFileLimit) }
            },
            resolveGroup: ProcessEnvironment.groupID(named:),
            resolveUser: ProcessEnvironment.userID(named:)
        )
    }
}

extension CaptureFlag {
    /// ArgumentParser's names: the letter, then the long names (istio's first, or weir's with `weirFirst`).
    func names(weirFirst: Bool = false) -> NameSpecification {
        NameSpecification((short.map { [.customShort($0)] } ?? []) + longNames(weirFirst: weirFirst).map {
            .customLong($0)
        })
    }

    var argumentHelp: ArgumentHelp { ArgumentHelp(help) }
}

extension Option where Value == [String] {
    /// An option of `CaptureFlag`'s table, its names and help from there; every occurrence is collected.
    init(_ flag: CaptureFlag) { self.init(wrappedValue: [], name: flag.names(), help: flag.argumentHelp) }
}

extension Flag where Value == Bool? {
    /// A boolean of `CaptureFlag`'s table (`--x` and `--no-x`), its names and help from there.
    init(_ flag: CaptureFlag) { self.init(name: flag.names(), inversion: .prefixedNo, help: flag.argumentHelp) }
}

/// Values by istio long name, as `CaptureConfig.parse` and `CaptureInvocation.parse` take them: the options given,
/// and each boolean given either way (`--x` or `--no-x`) as "true" or "false".
func flagDictionary(_ values: [(CaptureFlag, [String])], _ bools: [(CaptureFlag, Bool?)]) -> [String: [String]] {
    var out: [String: [String]] = [:]
    for (flag, v) in values where !v.isEmpty { out[flag.long] = v }
    for (flag, value) in bools { if let value { out[flag.long] = [String(value)] } }
    return out
}

extension ReadFailure {
    /// The capture parser's wording of why `readSmallFile` refused a list file or /etc/resolv.conf.
    init(_ problem: FileProblem, limit: Int) {
        switch problem {
        case .missing: self = .missing
        case .directory: self = .directory
        case .notRegular: self = .other("not a regular file")
        case .unreadable(let e) where e == Errno.EACCES: self = .permission
        case .unreadable(let e): self = .other(errnoMessage(e))
        case .tooLarge: self = .tooLarge(limit: limit)
        }
    }
}
