import ArgumentParser
import WeirCore
import WeirSystem

/// istio-iptables' flags, every name, variable, help and default from `CaptureFlag`'s table. Every option collects
/// each occurrence so a flag given twice with different values is refused rather than silently overridden.
struct CaptureOptions: ParsableArguments {
    @Option(name: CaptureFlag.proxyPort.names(), help: CaptureFlag.proxyPort.argumentHelp)
    var proxyPort: [String] = []

    @Option(name: CaptureFlag.inboundCapturePort.names(), help: CaptureFlag.inboundCapturePort.argumentHelp)
    var inboundCapturePort: [String] = []

    @Option(name: CaptureFlag.inboundTunnelPort.names(), help: CaptureFlag.inboundTunnelPort.argumentHelp)
    var inboundTunnelPort: [String] = []

    @Option(name: CaptureFlag.proxyUID.names(), help: CaptureFlag.proxyUID.argumentHelp)
    var proxyUID: [String] = []

    @Option(name: CaptureFlag.proxyGID.names(), help: CaptureFlag.proxyGID.argumentHelp)
    var proxyGID: [String] = []

    @Option(name: CaptureFlag.mode.names(), help: CaptureFlag.mode.argumentHelp)
    var mode: [String] = []

    @Option(name: CaptureFlag.tproxyMark.names(), help: CaptureFlag.tproxyMark.argumentHelp)
    var tproxyMark: [String] = []

    @Option(name: CaptureFlag.tproxyRouteTable.names(), help: CaptureFlag.tproxyRouteTable.argumentHelp)
    var tproxyRouteTable: [String] = []

    @Option(name: CaptureFlag.inboundPorts.names(), help: CaptureFlag.inboundPorts.argumentHelp)
    var inboundPorts: [String] = []

    @Option(name: CaptureFlag.inboundPortsExclude.names(), help: CaptureFlag.inboundPortsExclude.argumentHelp)
    var inboundPortsExclude: [String] = []

    @Option(name: CaptureFlag.outboundPortsExclude.names(), help: CaptureFlag.outboundPortsExclude.argumentHelp)
    var outboundPortsExclude: [String] = []

    @Option(name: CaptureFlag.outboundPortsInclude.names(), help: CaptureFlag.outboundPortsInclude.argumentHelp)
    var outboundPortsInclude: [String] = []

    @Option(name: CaptureFlag.outboundIncludeCIDRs.names(), help: CaptureFlag.outboundIncludeCIDRs.argumentHelp)
    var outboundIncludeCIDRs: [String] = []

    @Option(name: CaptureFlag.outboundExcludeCIDRs.names(), help: CaptureFlag.outboundExcludeCIDRs.argumentHelp)
    var outboundExcludeCIDRs: [String] = []

    @Option(name: CaptureFlag.virtualInterfaces.names(), help: CaptureFlag.virtualInterfaces.argumentHelp)
    var virtualInterfaces: [String] = []

    @Option(name: CaptureFlag.excludeInterfaces.names(), help: CaptureFlag.excludeInterfaces.argumentHelp)
    var excludeInterfaces: [String] = []

    @Option(name: CaptureFlag.ownerGroupsInclude.names(), help: CaptureFlag.ownerGroupsInclude.argumentHelp)
    var ownerGroupsInclude: [String] = []

    @Option(name: CaptureFlag.ownerGroupsExclude.names(), help: CaptureFlag.ownerGroupsExclude.argumentHelp)
    var ownerGroupsExclude: [String] = []

    @Option(name: CaptureFlag.ipv4LoopbackCIDR.names(), help: CaptureFlag.ipv4LoopbackCIDR.argumentHelp)
    var ipv4LoopbackCIDR: [String] = []

    @Flag(name: CaptureFlag.dropInvalid.names(), inversion: .prefixedNo, help: CaptureFlag.dropInvalid.argumentHelp)
    var dropInvalid: Bool?

    @Flag(name: CaptureFlag.redirectDNS.names(), inversion: .prefixedNo, help: CaptureFlag.redirectDNS.argumentHelp)
    var redirectDNS: Bool?

    @Flag(name: CaptureFlag.captureAllDNS.names(), inversion: .prefixedNo, help: CaptureFlag.captureAllDNS.argumentHelp)
    var captureAllDNS: Bool?

    @Option(name: CaptureFlag.dnsServers.names(), help: CaptureFlag.dnsServers.argumentHelp)
    var dnsServers: [String] = []

    @Option(name: CaptureFlag.dnsProxyPort.names(), help: CaptureFlag.dnsProxyPort.argumentHelp)
    var dnsProxyPort: [String] = []

    @Flag(name: CaptureFlag.dualStack.names(), inversion: .prefixedNo, help: CaptureFlag.dualStack.argumentHelp)
    var dualStack: Bool?

    @Flag(name: .customLong("ipv4-only"), help: "Capture IPv4 only (an 'ip' table); IPv6 is then not captured.")
    var ipv4Only = false

    @Option(name: CaptureFlag.networkNamespace.names(), help: CaptureFlag.networkNamespace.argumentHelp)
    var networkNamespace: [String] = []

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
            ipv4Only: try ipv4Only || (file?.bool("WEIR_IPV4_ONLY") ?? false),
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
        case .unreadable(let e): self = .other(errorText(e))
        case .tooLarge: self = .tooLarge(limit: limit)
        }
    }
}
