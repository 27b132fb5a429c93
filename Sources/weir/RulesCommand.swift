import ArgumentParser
import WeirAgent
import WeirCore
import WeirNetfilter
import WeirSystem

struct RulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Install the capture rules (istio-iptables semantics) as one nftables table, over netlink.",
        discussion: """
            Computes weir's table (inet weir; ip weir with --ipv4-only) from istio-iptables' flags and applies it in \
            one atomic netlink batch, replacing weir's previous table. Re-applying an unchanged configuration sends \
            nothing and prints 'unchanged'. The table carries the owner and persist flags (kernel >= 6.9): no other \
            process can edit it while weir holds it, and it stays in place when weir exits. In TPROXY mode the policy \
            routing (ip rule fwmark <-t> lookup <-r>, local default route in table <-r>) is installed too. List \
            flags take comma lists and '@PATH' (one entry per line, '#' comments). Also runs as \
            'weir istio-iptables', taking every flag of istio's 'pilot-agent istio-iptables'; boolean flags also \
            take '--flag=true|false'. --run-validation exits 126 when the capture is not in place.
            """,
        aliases: ["istio-iptables"]
    )

    @OptionGroup var capture: CaptureOptions
    @OptionGroup(title: "istio-iptables run options") var invocationOptions: InvocationOptions
    @OptionGroup(title: "istio logging (mapped onto weir's output)") var logging: IstioLogOptions

    @Flag(help: "Stay running and keep owning the table (no other process can change it) until SIGTERM or SIGINT.")
    var hold = false

    func run() throws {
        let (environment, source) = capture.environment(file: nil)
        var flags = invocationOptions.flagValues
        if !capture.networkNamespace.isEmpty { flags[CaptureFlag.networkNamespace.long] = capture.networkNamespace }
        let invocation = try CaptureInvocation.parse(flags: flags, environment: environment,
                                                     environmentSource: source)
        let log = try logging.log()
        let config = try capture.config()
        if invocation.runValidation {
            // Validation listens on -p and -z and connects to the probe port: a probe port equal to either would
            // reach the listener without any capture and pass.
            let captureFlags = capture.flagValues
            func setting(_ flag: CaptureFlag, _ port: UInt16) -> PortSetting {
                flag.portSetting(port, flags: flag == .probePort ? flags : captureFlags, environment: environment,
                                 environmentSource: source)
            }
            try PortSetting.requireDistinct([setting(.proxyPort, config.proxyPort),
                                             setting(.inboundCapturePort, config.inboundCapturePort),
                                             setting(.probePort, invocation.probePort)])
        }
        let table = CaptureRuleset.build(config)
        if config.redirectDNS && !config.capturesDNS {
            log.warn("--redirect-dns is set, but --capture-all-dns is not and no DNS servers are known: DNS is not "
                + "captured (as istio does)")
        }
        if invocation.dryRun {
            log.info(NftText.render(table, header: ["weir capture ruleset (weir rules --dry-run)"]), raw: true)
            return
        }
        try enterNetworkNamespace(invocation.networkNamespace)
        if invocation.cleanupOnly {
            try removeCapture(log)
            return
        }
        var installer: CaptureInstaller?
        if !invocation.skipRuleApply {
            installer = try installCapture(config, table, claim: hold, force: invocation.forceApply, log: log)
        }
        if invocation.runValidation {
            let outcome = CaptureValidation.run(config, probePort: invocation.probePort,
                                                timeoutMs: invocation.probeTimeoutMs)
            guard outcome.passed else {
                printError("weir: \(outcome.description)")
                ProcessEnvironment.exit(ExitStatus.validationFailed)
            }
            log.info(outcome.description)
        }
        guard hold else { return }
        log.info("holding table \(table.family.rawValue) \(table.name) until SIGTERM")
        Signals.block()
        _ = Signals.waitForTermination()
        // Exiting closes the netlink socket: the persistent table stays, unowned, until weir claims it again.
        withExtendedLifetime(installer) {}
    }
}

/// istio-iptables' flags that say what to do (see `CaptureInvocation`).
struct InvocationOptions: ParsableArguments {
    @Flag(name: CaptureFlag.dryRun.names(), help: CaptureFlag.dryRun.argumentHelp)
    var dryRun = false
    @Flag(name: .customLong("no-dry-run"), help: .hidden)
    var noDryRun = false

    @Flag(.skipRuleApply)
    var skipRuleApply: Bool?

    @Flag(.cleanupOnly)
    var cleanupOnly: Bool?

    @Flag(.runValidation)
    var runValidation: Bool?

    @Option(.probePort)
    var probePort: [String]

    @Option(.probeTimeout)
    var probeTimeout: [String]

    @Flag(.forceApply)
    var forceApply: Bool?

    @Flag(.reconcile)
    var reconcile: Bool?

    @Flag(.cniMode)
    var cniMode: Bool?

    @Flag(.nativeNftables)
    var nativeNftables: Bool?

    @Option(.forceIptablesBinary)
    var forceIptablesBinary: [String]

    var flagValues: [String: [String]] {
        let bools: [(CaptureFlag, Bool?)] = [
            (.dryRun, dryRun ? true : noDryRun ? false : nil),
            (.skipRuleApply, skipRuleApply), (.cleanupOnly, cleanupOnly), (.runValidation, runValidation),
            (.forceApply, forceApply), (.reconcile, reconcile), (.cniMode, cniMode), (.nativeNftables, nativeNftables),
        ]
        return flagDictionary([(.probePort, probePort), (.probeTimeout, probeTimeout),
                               (.forceIptablesBinary, forceIptablesBinary)], bools)
    }
}

/// Moves this process (still single-threaded) into `--network-namespace`: every socket, thread and /proc/sys/net
/// file it opens afterwards belongs to that namespace. Bad paths are bad input (exit 2); nothing has changed yet.
func enterNetworkNamespace(_ path: String?) throws {
    guard let path else { return }
    do {
        try NetworkNamespace.enter(path)
    } catch {
        throw namespaceFailure(path, error)
    }
}

/// What `NetworkNamespace.check` or `enter` refusing `path` means: a wrong path is bad input (exit 2), a namespace
/// this process may not enter a runtime failure (exit 1).
func namespaceFailure(_ path: String, _ error: Error) -> Error {
    switch error {
    case NetworkNamespace.Failure.denied(let why):
        return RuntimeFailure(message: "--network-namespace \(quotedValue(path)) \(why)")
    default:
        return ConfigError("--network-namespace \(quotedValue(path)) \(error): expected /var/run/netns/NAME or "
            + "/proc/PID/ns/net")
    }
}

/// `weir clean` and `--cleanup-only`.
func removeCapture(_ log: OutputLog) throws {
    do {
        let removed = try CaptureInstaller().removeAll()
        removed.forEach { log.info($0) }
        if removed.isEmpty { log.info("nothing to remove") }
    } catch let error as AgentError {
        throw RuntimeFailure(message: error.description)
    }
}
