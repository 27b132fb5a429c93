import ArgumentParser
import FoundationEssentials
import Glibc
import WeirAgent
import WeirCore
import WeirProxy
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
            persists (owner released) unless --cleanup-on-exit. Endpoints: GET /healthz, /readyz, /metrics, /config. \
            Config file keys: istio-iptables' environment variables and WEIR_PROFILE, WEIR_PROFILES_DIR, \
            WEIR_STATE_DIR, WEIR_ADMIN_ADDRESS, WEIR_CONNECT_TIMEOUT, WEIR_IDLE_TIMEOUT, WEIR_MAX_CONNECTIONS, \
            WEIR_BUFFER_LIMIT, WEIR_DRAIN_TIMEOUT, WEIR_WORKERS, WEIR_RECONCILE_INTERVAL, WEIR_CLEANUP_ON_EXIT, \
            WEIR_IPV4_ONLY. Flags beat the file; the file beats the environment. The proxy's -p -z -m -u -g -t are \
            the capture values; with several -u/-g the first is the proxy's.
            """
    )

    @OptionGroup(title: "Capture (istio-iptables flags)") var capture: CaptureOptions
    @OptionGroup(title: "Proxy") var limits: ProxyLimitOptions

    @Option(help: "Configuration file of KEY=VALUE lines (istio variables and WEIR_* settings); re-read on SIGHUP.")
    var config: String?
    @Option(help: "Sysctl profile to apply at start (default, ingress, low-latency, throughput). None by default.")
    var profile: String?
    @Option(help: "Directory with NAME.profile files (default: /etc/weir/profiles, then ./profiles).")
    var profilesDir: String?
    @Option(help: "Directory for the tuning state file (default /var/lib/weir).")
    var stateDir: String?
    @Option(help: "HOST:PORT of the health and metrics endpoint ([v6]:port for IPv6; default 127.0.0.1:15020).")
    var adminAddress: String?
    @Option(help: "How often to compare the capture with the kernel and repair drift (default 10s).")
    var reconcileInterval: String?
    @Flag(help: "Remove the capture (as 'weir clean' does) after the drain, instead of keeping the table.")
    var cleanupOnExit = false

    func run() throws {
        // Everything is validated before anything changes.
        let settings = try settings(tuning: true)
        do {
            try Agent(settings: settings, reload: { try self.settings(tuning: false) }).run()
        } catch let error as AgentError {
            throw RuntimeFailure(message: error.description)
        }
    }

    /// Reads `--config` (again, at reload) and combines it with the flags: a flag beats the file.
    func settings(tuning: Bool) throws -> AgentSettings {
        var file: ConfigFile?
        if let config {
            guard let text = readTextFile(config) else {
                throw ConfigError("--config \(quotedValue(config)) cannot be read: expected a readable file "
                    + "of KEY=VALUE lines")
            }
            file = try ConfigFile.parse(text, path: config)
        }
        let flagOf = Dictionary(uniqueKeysWithValues: ConfigFile.weirKeys.map { ($0.key, $0.flag) })
        /// A message about the value of `key`'s flag, reworded to name the file, line and key it came from.
        func fromFile(_ e: ConfigError, key: String) -> ConfigError? {
            guard let file, let flag = flagOf[key], e.message.hasPrefix(flag) else { return nil }
            return ConfigError(file.source(key) + e.message.dropFirst(flag.count))
        }
        /// A flag's value, else the file's, else the default.
        func setting<T>(_ flag: String?, _ key: String, default: String, _ parse: (String) throws -> T) throws -> T {
            if let flag { return try parse(flag) }
            guard let v = file?.values[key] else { return try parse(`default`) }
            do {
                return try parse(v)
            } catch let e as ConfigError {
                throw fromFile(e, key: key) ?? e
            }
        }

        let captureConfig = try capture.config(file: file)
        var flags = ProxyConfig.Flags()
        flags.proxyPort = String(captureConfig.proxyPort)
        flags.inboundCapturePort = String(captureConfig.inboundCapturePort)
        flags.mode = captureConfig.mode.rawValue
        flags.proxyUID = captureConfig.proxyUIDs.first.map(String.init)
        flags.proxyGID = captureConfig.proxyGIDs.first.map(String.init)
        flags.tproxyMark = String(captureConfig.tproxyMark)
        // Proxy limits the flags left out come from the file.
        let limitKeys: [(WritableKeyPath<ProxyLimitOptions, String?>, String)] = [
            (\.connectTimeout, "WEIR_CONNECT_TIMEOUT"), (\.idleTimeout, "WEIR_IDLE_TIMEOUT"),
            (\.maxConnections, "WEIR_MAX_CONNECTIONS"), (\.bufferLimit, "WEIR_BUFFER_LIMIT"),
            (\.drainTimeout, "WEIR_DRAIN_TIMEOUT"), (\.workers, "WEIR_WORKERS"),
        ]
        var merged = limits
        var keysFromFile: [String] = []
        for (path, key) in limitKeys where merged[keyPath: path] == nil {
            if let v = file?.values[key] {
                merged[keyPath: path] = v
                keysFromFile.append(key)
            }
        }
        let proxyConfig: ProxyConfig
        do {
            proxyConfig = try merged.config(flags)
        } catch let e as ConfigError {
            throw keysFromFile.lazy.compactMap { fromFile(e, key: $0) }.first ?? e
        }
        let (adminHost, adminPort) = try setting(adminAddress, "WEIR_ADMIN_ADDRESS", default: "127.0.0.1:15020",
                                                 parseAdminAddress)
        let interval = try setting(reconcileInterval, "WEIR_RECONCILE_INTERVAL", default: "10s") {
            try ProxyConfig.duration($0, flag: "--reconcile-interval")
        }
        guard interval >= 100 else {
            throw ConfigError("--reconcile-interval '\(interval)ms' is too short: expected at least 100ms, like 10s")
        }
        let cleanup = try cleanupOnExit || (file?.bool("WEIR_CLEANUP_ON_EXIT") ?? false)
        let profileName = profile ?? file?.values["WEIR_PROFILE"].flatMap { $0.isEmpty ? nil : $0 }
        var plan: (tuner: Tuner, plan: TunePlan)?
        if tuning, let profileName {
            let probe = NodeProbe()
            let stateDirectory = stateDir ?? file?.values["WEIR_STATE_DIR"] ?? "/var/lib/weir"
            let tuner = Tuner(files: probe.files, stateDirectory: stateDirectory, environment: probe.environment())
            let directories = (profilesDir ?? file?.values["WEIR_PROFILES_DIR"]).map { [$0] }
                ?? defaultProfileDirectories
            let loaded = try Tuner.loadProfile(named: profileName, directories: directories)
            plan = (tuner, try tuner.plan(loaded))
        }
        return AgentSettings(capture: captureConfig, proxy: proxyConfig, adminHost: adminHost, adminPort: adminPort,
                             profile: profileName, tuning: plan, reconcileIntervalMs: interval,
                             cleanupOnExit: cleanup, configPath: config)
    }
}

/// A small text file's contents, or nil if it cannot be read (missing, a directory, no permission) or is over 1 MiB.
func readTextFile(_ path: String) -> String? {
    guard let f = fopen(path, "r") else { return nil }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&chunk, 1, chunk.count, f)
        if n > 0 { bytes += chunk[0..<n] }
        if bytes.count > 1 << 20 { return nil }
        if n < chunk.count { return ferror(f) != 0 ? nil : String(decoding: bytes, as: UTF8.self) }
    }
}

/// `127.0.0.1:15020` or `[::1]:15020`.
func parseAdminAddress(_ text: String) throws -> (String, UInt16) {
    let bad = ConfigError("--admin-address \(quotedValue(text)) is not HOST:PORT: expected e.g. "
        + "127.0.0.1:15020 or [::1]:15020")
    guard let colon = text.lastIndex(of: ":") else { throw bad }
    var host = String(text[..<colon])
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    guard let port = UInt16(text[text.index(after: colon)...]), IPAddress(host) != nil else { throw bad }
    return (host, port)
}
