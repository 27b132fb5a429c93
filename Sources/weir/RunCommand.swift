import ArgumentParser
import FoundationEssentials
import Glibc
import Synchronization
import WeirAgent
import WeirCore
import WeirNetfilter
import WeirProxy
import WeirTuning

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the node agent: tune, capture, proxy, and serve health and metrics, until SIGTERM.",
        discussion: """
            Validates everything first (capture flags, proxy limits, profile, admin address): bad input exits 2 with \
            nothing changed. Then applies the profile (if --profile is given; previous values saved in --state-dir \
            for 'weir tune --revert'), installs the capture table and owns it while running, starts the proxy with \
            one worker per CPU weir may use, and serves GET /healthz, /readyz and /metrics on --admin-address from \
            a thread of its own. Under systemd (Type=notify) it says READY=1 once the proxy listens. On SIGTERM it \
            says STOPPING=1, turns /readyz to 503, drains for at most --drain-timeout and exits 0; the capture table \
            persists (owner released), so traffic is never uncaptured. The proxy's -p -z -m -u -g -t are the \
            capture flags' values; with several -u/-g the first is the proxy's.
            """
    )

    @OptionGroup(title: "Capture (istio-iptables flags)") var capture: CaptureOptions
    @OptionGroup(title: "Proxy") var limits: ProxyLimitOptions

    @Option(help: "Sysctl profile to apply at start (default, ingress, low-latency, throughput). None by default.")
    var profile: String?
    @Option(help: "Directory with NAME.profile files (default: /etc/weir/profiles, then ./profiles).")
    var profilesDir: String?
    @Option(help: "Directory for the tuning state file.")
    var stateDir = "/var/lib/weir"
    @Option(help: "HOST:PORT of the health and metrics endpoint ([v6]:port for IPv6).")
    var adminAddress = "127.0.0.1:15020"

    func run() throws {
        // 1. Everything is validated before anything changes.
        let captureConfig = try capture.config()
        let table = CaptureRuleset.build(captureConfig)
        var flags = ProxyConfig.Flags()
        flags.proxyPort = String(captureConfig.proxyPort)
        flags.inboundCapturePort = String(captureConfig.inboundCapturePort)
        flags.mode = captureConfig.mode.rawValue
        flags.proxyUID = captureConfig.proxyUIDs.first.map(String.init)
        flags.proxyGID = captureConfig.proxyGIDs.first.map(String.init)
        flags.tproxyMark = String(captureConfig.tproxyMark)
        let proxyConfig = try limits.config(flags)
        let (adminHost, adminPort) = try parseAdminAddress(adminAddress)
        var tuning: (Tuner, TunePlan)?
        if let profile {
            let probe = NodeProbe()
            let tuner = Tuner(files: probe.files, stateDirectory: stateDir, environment: probe.environment())
            let loaded = try Tuner.loadProfile(named: profile, directories: profilesDir.map { [$0] }
                                                   ?? defaultProfileDirectories)
            tuning = (tuner, try tuner.plan(loaded))
        }

        // 2. Tune, capture, serve.
        if let (tuner, plan) = tuning {
            let results: [KeyResult]
            do {
                results = try tuner.apply(plan)
            } catch {
                throw RuntimeFailure(message: "applying profile \(plan.profile): \(error)")
            }
            agentLog("tuned", ["profile": plan.profile, "changed": results.count,
                               "failed": results.filter { $0.failure != nil }.count])
        }
        let nft = try installCapture(captureConfig, table, claim: true)
        fflush(stdout)
        let server = ProxyServer(config: proxyConfig)
        let ready = ReadyFlag()
        let admin: AdminServer
        do {
            admin = try AdminServer(host: adminHost, port: adminPort) { path in
                switch path {
                case "/healthz":
                    return .init(status: 200, body: "ok\n")
                case "/readyz":
                    return ready.value ? .init(status: 200, body: "ready\n") : .init(status: 503, body: "not ready\n")
                case "/metrics":
                    var samples = proxyMetricSamples(server.counters.snapshot(), config: proxyConfig)
                    samples.append(MetricSample(name: "weir_ready", value: ready.value ? 1 : 0))
                    samples += NodeStatus.collect(netlink: nodeStatusReaders, proxyBacklog: server.backlog)
                        .metricSamples
                    return .init(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8",
                                 body: MetricsText.render(samples, help: metricHelp))
                default:
                    return .init(status: 404, body: "not found: try /healthz, /readyz, /metrics\n")
                }
            }
        } catch let error as AgentError {
            throw RuntimeFailure(message: error.description)
        }
        do {
            try admin.start()
        } catch let error as ProxyStartError {
            throw RuntimeFailure(message: "admin endpoint: \(error.description)")
        }
        agentLog("admin_listening", ["address": "\(adminHost):\(admin.port)"])
        server.onStarted = {
            ready.value = true
            SystemdNotify.send("READY=1\nSTATUS=capturing and proxying")
            agentLog("ready", ["table": "\(table.family.rawValue) \(table.name)", "workers": proxyConfig.workers])
        }
        server.onStopping = {
            ready.value = false
            SystemdNotify.send("STOPPING=1\nSTATUS=draining")
        }
        do {
            try server.run()
        } catch let error as ProxyStartError {
            throw RuntimeFailure(message: "proxy: \(error.description)")
        }
        admin.stop()
        withExtendedLifetime(nft) {}
        agentLog("stopped", ["table": "kept (persist)"])
    }
}

/// `127.0.0.1:15020` or `[::1]:15020`.
func parseAdminAddress(_ text: String) throws -> (String, UInt16) {
    let bad = ConfigError("--admin-address '\(text)' is not HOST:PORT: expected e.g. 127.0.0.1:15020 or [::1]:15020")
    guard let colon = text.lastIndex(of: ":") else { throw bad }
    var host = String(text[..<colon])
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    guard let port = UInt16(text[text.index(after: colon)...]), IPAddress(host) != nil else { throw bad }
    return (host, port)
}

/// Readiness, written by the proxy thread, read by the admin thread.
final class ReadyFlag: Sendable {
    private let state = Atomic<Bool>(false)
    var value: Bool {
        get { state.load(ordering: .acquiring) }
        set { state.store(newValue, ordering: .releasing) }
    }
}

/// One line per event, key=value, on stderr (journald keeps it as is).
func agentLog(_ event: String, _ fields: KeyValuePairs<String, CustomStringConvertible> = [:]) {
    fputs(EventLine.format("weir run", event, fields) + "\n", stderr)
}
