import ArgumentParser
import WeirAgent
import WeirCore
import WeirProxy
import WeirSystem
import WeirTuning

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the node agent: tune, capture, proxy, and serve health and metrics, until SIGTERM.",
        discussion: """
            Validates everything first (flags, --config file, profile, admin address): bad input exits 2 with \
            nothing changed. Then acquires what can fail (the namespace's data-plane lock, the admin socket, the \
            proxy listeners) and starts serving, so no failed start leaves the node changed and no redirected \
            connection is refused. Only then applies the profile (previous values saved in --state-dir for \
            'weir tune --revert') and installs the capture table, owned while weir runs. Under systemd \
            (Type=notify) it says READY=1, STATUS= and, when WatchdogSec= is set, WATCHDOG=1 while every worker and \
            the admin loop make progress. It reconciles the table, TPROXY routing and ::6 every --reconcile-interval \
            and on netlink events, repairing drift in one step. SIGHUP re-reads --config and applies what changed: capture \
            settings atomically, proxy settings by a new data plane that takes over while the old one finishes its \
            connections; a new admin address or profile needs a restart. SIGTERM says \
            STOPPING=1, turns /readyz to 503, drains for at most --drain-timeout and exits 0; the capture table \
            persists (owner released) unless --cleanup-on-exit. Endpoints: GET /healthz, /readyz, /metrics, /config \
            (and /pods with --pod-mode: docs/pod-mode.md). \
            Config file keys: istio-iptables' environment variables and \
            \(ConfigFile.weirKeys.map(\.key).joined(separator: ", ")). /config answers loopback \
            clients only. The control path (the API server, the registry, the node's DNS servers) is kept \
            out of outbound capture unless --exclude-control-path false (docs/kubernetes.md). Flags beat the \
            file; the file beats the environment. The proxy's -p -z -m -u -g -t are the capture values; with several -u/-g the first is the proxy's. With --network-namespace (or \
            NETWORK_NAMESPACE) the lock, the proxy listeners, the capture and the workers live in that namespace; \
            the admin endpoint stays where weir was started.
            """
    )

    @OptionGroup(title: "Capture (istio-iptables flags)") var capture: CaptureOptions
    @OptionGroup(title: "Proxy") var limits: ProxyLimitOptions

    @Option(help: "Configuration file of KEY=VALUE lines (istio variables and WEIR_* settings); re-read on SIGHUP.")
    var config: [String] = []
    @Option(help: "Sysctl profile to apply at start (default, ingress, low-latency, throughput). None by default.")
    var profile: [String] = []
    @Option(help: "Directory with NAME.profile files (default /etc/weir/profiles; never the working directory).")
    var profilesDir: [String] = []
    @Option(help: "Directory for the tuning state file (default /var/lib/weir).")
    var stateDir: [String] = []
    @Option(help: "HOST:PORT of the health and metrics endpoint ([v6]:port for IPv6; default 127.0.0.1:15020).")
    var adminAddress: [String] = []
    @Option(help: ArgumentHelp("HOST:PORT of a listener for /metrics alone (e.g. 0.0.0.0:15090 for Prometheus, "
        + "while probes stay on a loopback --admin-address). None by default: /metrics is on the admin address.",
        valueName: "address"))
    var metricsAddress: [String] = []
    @Option(help: ArgumentHelp("File holding a bearer token the --metrics-address listener requires "
        + "(Authorization: Bearer TOKEN); read at start, never logged.", valueName: "path"))
    var metricsTokenFile: [String] = []
    @Option(help: "How often to compare the capture with the kernel and repair drift (default 10s).")
    var reconcileInterval: [String] = []
    @Flag(help: "Remove the capture (as 'weir clean' does) after the drain, instead of keeping the table.")
    var cleanupOnExit = false
    @Flag(help: """
        Check the flags, --config file and profile exactly as a start would, then exit: 0 and one line when they \
        are good, 2 and the one-line error when not. Nothing is changed or bound (systemd's ExecReload= runs it \
        before signalling, so 'systemctl reload weir' fails on a file weir would refuse).
        """)
    var checkConfig = false

    @Option(help: ArgumentHelp("Keep the node's control path out of outbound capture: the API server "
        + "(KUBERNETES_SERVICE_HOST and --api-servers), the image registry (--registry-cidrs, --registry-ports) and "
        + "the DNS servers of /etc/resolv.conf. true (default) or false.", valueName: "bool"))
    var excludeControlPath: [String] = []
    @Option(help: ArgumentHelp("API server addresses never captured, besides KUBERNETES_SERVICE_HOST (comma list; "
        + "e.g. the kubeconfig's real endpoint).", valueName: "addresses"))
    var apiServers: [String] = []
    @Option(help: ArgumentHelp("Image registry prefixes never captured (comma list; none by default).",
                               valueName: "cidrs"))
    var registryCidrs: [String] = []
    @Option(help: ArgumentHelp("Image registry ports never captured on any address (comma list; none by default).",
                               valueName: "ports"))
    var registryPorts: [String] = []

    @Flag(help: """
        Pod mode: serve every pod the CNI plugin ('type: weir' in the node's conflist) attaches, from this one         process. Each pod gets the same capture as host mode (an owned, persistent table in its network namespace)         and listeners inside its namespace, served by the shared workers; upstream connections are made from the         pod's namespace. Pods are remembered in --run-dir and re-attached after a restart. GET /pods lists them.
        """)
    var podMode = false
    @Option(help: ArgumentHelp("Root's directory (0700) for agent.lock (one agent per directory), the data-plane "
        + "locks, handover.sock (where --takeover finds the running agent) and, in pod mode, cni.sock and pods.json. "
        + "Default /run/weir.", valueName: "path"))
    var runDir: [String] = []
    @Flag(help: """
        Replace the agent running with the same --run-dir without a gap: it hands over its listening sockets and \
        every live connection (sockets, bytes in flight, state), then exits; nothing is refused, reset or drained. \
        A running agent whose handover version differs hands over its listeners and drains its connections \
        instead. Starts normally when no agent runs. Under systemd no flag is needed (the unit's \
        file-descriptor store carries them across a restart).
        """)
    var takeover = false
    @Option(help: ArgumentHelp("What the process does once a successor took everything over: exit (default, exit 0) "
        + "or wait (idle, holding nothing, until SIGTERM: a container whose restart policy would start it again, "
        + "as in a DaemonSet rolled with maxSurge, must not come back and take over from its successor).",
        valueName: "exit|wait"))
    var afterHandover: [String] = []
    @Flag(help: "Pod mode: also capture and serve the agent's own network namespace (host mode), besides the pods.")
    var captureNode = false
    @Option(help: ArgumentHelp("Pod mode: at most this many open connections per pod; past it the workers stop "
        + "accepting for that pod (its new connections wait in its own accept queue, costing the others nothing; "
        + "weir_pod_ceiling_pauses_total). 0 (default): only --max-connections, for all pods together.",
        valueName: "count"))
    var maxConnectionsPerPod: [String] = []
    @Option(help: ArgumentHelp("Pod mode: at most this many new connections per second per pod, with bursts of a "
        + "tenth of a second's worth; past it the workers stop accepting for that pod as at "
        + "--max-connections-per-pod (weir_pod_rate_pauses_total). Short connections leave the open-connection "
        + "ceiling as fast as they come: this bounds the shared workers' time one storming pod takes. 0 (default): "
        + "none.", valueName: "per-second"))
    var maxConnectionRatePerPod: [String] = []

    @Option(help: ArgumentHelp("Fail open: a start that finds this many starts within --fail-open-window that "
        + "never reached ready removes the capture (as 'weir clean' does) and exits 1 instead of starting. Counted "
        + "in --state-dir (flag or default, never the --config file: a bad file must count too); reaching ready "
        + "resets the count. Off by default; the DaemonSet sets 5.", valueName: "starts"))
    var failOpenAfter: [String] = []
    @Option(help: ArgumentHelp("The window of --fail-open-after (default 10m).", valueName: "duration"))
    var failOpenWindow: [String] = []

    func run() throws {
        let waitAfterHandover: Bool
        switch try oneValue(afterHandover, "--after-handover") ?? "exit" {
        case "exit": waitAfterHandover = false
        case "wait": waitAfterHandover = true
        case let other:
            throw ConfigError(.flag("--after-handover"), other, "is not exit or wait: expected --after-handover exit "
                + "or --after-handover wait")
        }
        if checkConfig {
            // Validates exactly as a start would, and records nothing: not a start (--fail-open-after counts none).
            let settings = try settings(tuning: true)
            print("weir: configuration ok" + (settings.configPath.map { " (\($0))" } ?? "")
                + (settings.profile.map { ", profile \($0)" } ?? ""))
            return
        }
        // Fail open first, before the config is read: a start refused for a bad file is a failed start too (a bad
        // rollout is what strands nodes). Only its own flags are validated before the start is recorded.
        let failOpen = try failOpenStart()
        // Everything else is validated before anything changes.
        let settings = try settings(tuning: true)
        if failOpen != nil, settings.networkNamespace != nil {
            throw ConfigError("--fail-open-after with --network-namespace is not supported: expected one of them "
                + "(fail open removes the capture of the namespace weir starts in)")
        }
        let handedOver: Bool
        do {
            handedOver = try Agent(settings: settings, reload: { try self.settings(tuning: false) },
                                   onReady: { failOpen?.reset() }).run()
        } catch let error as AgentError {
            throw RuntimeFailure(message: error.description)
        }
        // Everything of the agent is let go by now (locks, sockets): the successor holds them.
        if handedOver && waitAfterHandover {
            agentLog("handed_over_waiting", ["until": "SIGTERM"])
            _ = Signals.waitForTermination()
        }
    }

    /// The fail-open history of this start: nil without --fail-open-after. Removes the capture and throws when the
    /// limit is reached; otherwise records this start.
    func failOpenStart() throws -> FailOpenHistory? {
        guard let text = try oneValue(failOpenAfter, "--fail-open-after") else {
            if !failOpenWindow.isEmpty {
                throw ConfigError("--fail-open-window without --fail-open-after: expected both, e.g. "
                    + "--fail-open-after 5 --fail-open-window 10m")
            }
            return nil
        }
        let limit = try Self.failOpenCount.parse(text, from: .flag("--fail-open-after"))
        let windowText = try oneValue(failOpenWindow, "--fail-open-window") ?? "10m"
        let window = ValueSource.flag("--fail-open-window")
        let ms = try ValueKinds.duration.parse(windowText, from: window)
        guard ms >= 1000 else { throw ConfigError(window, windowText, "is too short: expected at least 1s, like 10m") }
        let directory = try oneValue(stateDir, "--state-dir") ?? "/var/lib/weir"
        try Tuner.checkDirectory(directory, source: "--state-dir", purpose: "for \(FailOpenPolicy.fileName)")
        let history = FailOpenHistory(path: directory + "/" + FailOpenPolicy.fileName,
                                      policy: FailOpenPolicy(limit: Int(limit), windowSeconds: ms / 1000))
        try history.start()
        return history
    }

    static let failOpenCount = ValueKind<UInt32>(
        problem: "is not a count: expected a number of starts from 1 to 999999, e.g. 5"
    ) { ValueParser.decimal($0, max: 999_999).flatMap { $0 == 0 ? nil : UInt32($0) } }

    /// Largest `--config` file weir reads; the shipped one is about 2 KiB.
    static let configSizeLimit = 1 << 20

    /// Reads `--config` (again, at reload) and combines it with the flags: a flag beats the file.
    func settings(tuning: Bool) throws -> AgentSettings {
        let configPath = try oneValue(config, "--config")
        let settings = SettingReader(file: try configPath.map(Self.readConfigFile))
        let file = settings.file
        let captureConfig = try self.captureConfig(settings)
        let (environment, source) = capture.environment(file: file)
        let namespace = try networkNamespace(environment: environment, source: source)
        let listeners = try self.listeners(settings, captureConfig, environment: environment, source: source)
        let proxyConfig = try limits.config(ProxyConfig(capture: captureConfig), file: file)
        let interval = try settings.parse(reconcileInterval, "--reconcile-interval",
                                          default: "10s") { text, source in
            let ms = try ValueKinds.duration.parse(text, from: source)
            guard ms >= 100 else { throw ConfigError(source, text, "is too short: expected at least 100ms, like 10s") }
            return ms
        }
        let cleanup = try cleanupOnExit || (file?.bool(ConfigFile.key(forFlag: "--cleanup-on-exit")) ?? false)
        // An empty WEIR_PROFILE in the file means no profile; an empty --profile is refused as a name.
        let profileSetting = try settings.value(profile, "--profile")
            .flatMap { $0.text.isEmpty && $0.source != .flag("--profile") ? nil : $0 }
        if profileSetting != nil, namespace != nil {
            throw ConfigError("--profile with --network-namespace is not supported: expected one of them (tune a "
                + "namespace with 'ip netns exec NAME weir tune')", source: .flag("--profile"))
        }
        let plan = tuning ? try tuningPlan(settings, profile: profileSetting) : nil
        var agent = AgentSettings(capture: captureConfig, proxy: proxyConfig, adminHost: listeners.admin.host,
                                  adminPort: listeners.admin.port, profile: profileSetting?.text, tuning: plan,
                                  reconcileIntervalMs: interval, cleanupOnExit: cleanup, configPath: configPath,
                                  networkNamespace: namespace, metrics: listeners.metrics)
        let (runDirectory, pods) = try podSettings(settings, file: file)
        agent.runDirectory = runDirectory
        agent.pods = pods
        agent.takeover = takeover
        if agent.pods != nil, namespace != nil {
            throw ConfigError("--pod-mode with --network-namespace is not supported: expected one of them (pod mode "
                + "serves the namespaces the CNI plugin hands it)", source: .flag("--pod-mode"))
        }
        return agent
    }

    /// `--run-dir`, and `--pod-mode` with its settings (nil in host mode). The pod settings without --pod-mode are
    /// refused: they would do nothing.
    func podSettings(_ settings: SettingReader, file: ConfigFile?) throws -> (String, PodSettings?) {
        let enabled = try podMode || (file?.bool(ConfigFile.key(forFlag: "--pod-mode")) ?? false)
        let node = try captureNode || (file?.bool(ConfigFile.key(forFlag: "--capture-node")) ?? false)
        let dir = try settings.value(runDir, "--run-dir")
        let perPod = try settings.value(maxConnectionsPerPod, "--max-connections-per-pod")
        let ratePerPod = try settings.value(maxConnectionRatePerPod, "--max-connection-rate-per-pod")
        var directory = "/run/weir"
        if let (text, source) = dir {
            guard text.hasPrefix("/"), text.utf8.count < 90, !text.utf8.contains(0x0a) else {
                throw ConfigError(source, text, "is not a usable directory: expected an absolute path shorter than "
                    + "90 bytes (the socket's path must fit sun_path), e.g. /run/weir")
            }
            directory = text.count > 1 && text.hasSuffix("/") ? String(text.dropLast()) : text
        }
        guard enabled else {
            for case let (text, source)? in [perPod, ratePerPod] {
                throw ConfigError(source, text, "has no effect without --pod-mode: expected --pod-mode too")
            }
            if node { throw ConfigError("--capture-node has no effect without --pod-mode: expected --pod-mode too") }
            return (directory, nil)
        }
        // A per-pod ceiling: 0 (none) when not set.
        func ceiling(_ setting: (text: String, source: ValueSource)?, max: Int, _ expected: String) throws -> Int {
            guard let (text, source) = setting else { return 0 }
            guard let n = ValueParser.decimal(text, max: UInt64(max)) else { throw ConfigError(source, text, expected) }
            return Int(n)
        }
        let connections = try ceiling(perPod, max: 10_000_000,
                                      "is not a count: expected 0 (no ceiling) to 10000000, e.g. 1000")
        let rate = try ceiling(ratePerPod, max: ConnectionRate.maxPerSecond, "is not a rate: expected new connections "
                               + "per second, 0 (no ceiling) to \(ConnectionRate.maxPerSecond), e.g. 1000")
        return (directory, PodSettings(runDirectory: directory, captureNode: node, maxConnectionsPerPod: connections,
                                       maxConnectionRatePerPod: rate))
    }

    static func readConfigFile(_ path: String) throws -> ConfigFile {
        switch readSmallFile(path, limit: configSizeLimit) {
        case .success(let bytes):
            return try ConfigFile.parse(String(decoding: bytes, as: UTF8.self), path: path)
        case .failure(let problem):
            throw ConfigError(.flag("--config"), path, "\(problem): expected a readable regular file of KEY=VALUE "
                + "lines, at most \(configSizeLimit) bytes")
        }
    }

    /// The capture flags over the file and the environment, with the node's control path excluded unless
    /// --exclude-control-path false.
    func captureConfig(_ settings: SettingReader) throws -> CaptureConfig {
        let captureConfig = try capture.config(file: settings.file)
        let exclude = try settings.parse(excludeControlPath, "--exclude-control-path",
                                         default: "true") { text, source -> Bool in
            switch text.lowercased() {
            case "1", "true", "yes", "on": return true
            case "0", "false", "no", "off": return false
            default: throw ConfigError(source, text, "is not a boolean: expected true or false")
            }
        }
        guard exclude else { return captureConfig }
        var resolvConf: (text: String, path: String)?
        if case .success(let bytes) = readSmallFile(CaptureConfig.resolvConf, limit: CaptureConfig.listFileLimit) {
            resolvConf = (String(decoding: bytes, as: UTF8.self), CaptureConfig.resolvConf)
        }
        func text(_ values: [String], _ flag: String) throws -> (text: String, source: String)? {
            try settings.value(values, flag).map { ($0.text, $0.source.description) }
        }
        let path = try ControlPath.parse(
            kubernetesHost: ProcessEnvironment.get("KUBERNETES_SERVICE_HOST"),
            apiServers: try text(apiServers, "--api-servers"),
            registryCIDRs: try text(registryCidrs, "--registry-cidrs"),
            registryPorts: try text(registryPorts, "--registry-ports"),
            resolvConf: resolvConf)
        return path.excluded(from: captureConfig)
    }

    /// `--network-namespace` (or NETWORK_NAMESPACE), checked to be one this process may enter.
    func networkNamespace(environment: [String: String], source: @escaping (String) -> ValueSource) throws
        -> String?
    {
        let namespaceFlag = capture.networkNamespace.isEmpty ? [:]
            : [CaptureFlag.networkNamespace.long: capture.networkNamespace]
        let namespace = try CaptureInvocation.parse(flags: namespaceFlag, environment: environment,
                                                    environmentSource: source).networkNamespace
        guard let namespace else { return nil }
        do {
            try NetworkNamespace.probe(namespace)
        } catch NetworkNamespace.Failure.denied(let why) {
            // Bad configuration, not a passing failure: a restart cannot grant the capability (weir.service has
            // no CAP_SYS_ADMIN and RestrictNamespaces=yes), so exit 2, which systemd does not retry.
            throw ConfigError("--network-namespace (NETWORK_NAMESPACE) \(quotedValue(namespace)) \(why): expected "
                + "weir started inside that namespace instead (under systemd: unset NETWORK_NAMESPACE and add "
                + "NetworkNamespacePath=\(namespace) to a drop-in of weir.service)")
        } catch {
            throw namespaceFailure(namespace, error)
        }
        return namespace
    }

    /// weir's own ports, checked before the proxy settings (which refuse -p equal to -z with less to say) and
    /// before anything is bound: two settings naming one port are bad input, not a failed bind.
    func listeners(_ settings: SettingReader, _ captureConfig: CaptureConfig, environment: [String: String],
                   source: @escaping (String) -> ValueSource) throws
        -> (admin: (host: String, port: UInt16), metrics: (host: String, port: UInt16, token: String?)?)
    {
        let adminSetting = try settings.value(adminAddress, "--admin-address")
        let admin = try parseAdminAddress(adminSetting?.text ?? defaultAdminAddress,
                                          source: adminSetting?.source ?? .flag("--admin-address"))
        let flagValues = capture.flagValues
        func captured(_ flag: CaptureFlag, _ port: UInt16) -> PortSetting {
            flag.portSetting(port, flags: flagValues, environment: environment, environmentSource: source)
        }
        var ports = [captured(.proxyPort, captureConfig.proxyPort),
                     captured(.inboundCapturePort, captureConfig.inboundCapturePort),
                     PortSetting(source: adminSetting?.source.description ?? "--admin-address (default)",
                                 text: adminSetting?.text ?? defaultAdminAddress, port: admin.port)]
        if captureConfig.capturesDNS { ports.append(captured(.dnsProxyPort, captureConfig.dnsProxyPort)) }
        var metrics: (host: String, port: UInt16, token: String?)?
        if let (text, source) = try settings.value(metricsAddress, "--metrics-address") {
            let (host, port) = try parseAdminAddress(text, source: source, example: "15090")
            ports.append(PortSetting(source: source.description, text: text, port: port))
            metrics = (host, port, try metricsToken(settings))
        } else if let (path, source) = try settings.value(metricsTokenFile, "--metrics-token-file") {
            throw ConfigError(source, path, "without --metrics-address: expected both (the token guards the metrics "
                + "listener)")
        }
        try PortSetting.requireDistinct(ports)
        return (admin, metrics)
    }

    /// The bearer token of `--metrics-token-file`, if given. The token itself never appears in a message.
    func metricsToken(_ settings: SettingReader) throws -> String? {
        guard let (path, source) = try settings.value(metricsTokenFile, "--metrics-token-file") else { return nil }
        switch readSmallFile(path, limit: 4096) {
        case .success(let bytes):
            var token = String(decoding: bytes, as: UTF8.self)
            while let last = token.last, last.isWhitespace { token.removeLast() }
            guard !token.isEmpty, token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
                throw ConfigError(source, path, "holds no usable token: expected one line of printable ASCII "
                    + "without spaces")
            }
            return token
        case .failure(let problem):
            throw ConfigError(source, path, "\(problem): expected a readable file holding a bearer token, at most "
                + "4096 bytes")
        }
    }

    /// The profile's tuner and plan (nil without a profile); the state and profile directories are checked at start
    /// whether or not a profile is given: a wrong path is a mistake either way.
    func tuningPlan(_ settings: SettingReader, profile: (text: String, source: ValueSource)?) throws
        -> (tuner: Tuner, plan: TunePlan)?
    {
        let stateDirectory = try settings.value(stateDir, "--state-dir")
        let profilesDirectory = try settings.value(profilesDir, "--profiles-dir")
        if let (path, source) = stateDirectory {
            try Tuner.checkDirectory(path, source: source.description, purpose: "for \(Tuner.stateFileName)")
        }
        if let (path, source) = profilesDirectory {
            try Tuner.checkDirectory(path, source: source.description, purpose: "of NAME.profile files")
        }
        guard let (name, source) = profile else { return nil }
        let probe = NodeProbe()
        let tuner = Tuner(files: probe.files, stateDirectory: stateDirectory?.text ?? "/var/lib/weir",
                          environment: probe.environment())
        let directories = profilesDirectory.map { [$0.text] } ?? defaultProfileDirectories
        let loaded = try Tuner.loadProfile(named: name, directories: directories, source: source.description)
        return (tuner, try tuner.plan(loaded))
    }
}

/// weir's own settings of `weir run`: a flag's value if given, else the `--config` file's (its key from
/// `ConfigFile.weirKeys`), with the file, line and key as its source.
struct SettingReader {
    let file: ConfigFile?

    func value(_ values: [String], _ flag: String) throws -> (text: String, source: ValueSource)? {
        if let v = try oneValue(values, flag) { return (v, .flag(flag)) }
        let key = ConfigFile.key(forFlag: flag)
        guard let file, let v = file.values[key] else { return nil }
        return (v, file.valueSource(key))
    }

    /// The setting parsed by `parse`, which names the given source in its messages; `default` when not set.
    func parse<T>(_ values: [String], _ flag: String, default: String,
                  _ parse: (String, ValueSource) throws -> T) throws -> T {
        let (text, source) = try value(values, flag) ?? (`default`, .flag(flag))
        return try parse(text, source)
    }
}

let defaultAdminAddress = "127.0.0.1:15020"

/// `127.0.0.1:15020` or `[::1]:15020`.
func parseAdminAddress(_ text: String, source: ValueSource, example: String = "15020") throws -> (host: String,
                                                                                                  port: UInt16) {
    let bad = ConfigError(source, text, "is not HOST:PORT: expected e.g. 127.0.0.1:\(example) or [::1]:\(example)")
    guard let colon = text.utf8.lastIndex(of: UInt8(ascii: ":")) else { throw bad }
    var host = Substring(text[..<colon])
    if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
    guard let port = ValueParser.decimal(text[text.utf8.index(after: colon)...], max: 65535),
          IPAddress(String(host)) != nil else { throw bad }
    return (String(host), UInt16(port))
}
