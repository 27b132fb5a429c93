import ArgumentParser
import WeirAgent
import WeirCore
import WeirNetfilter
import WeirProxy
import WeirSystem
import WeirTuning

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the running agent (ready, connections, last reconcile) and how close the node is to a full "
            + "conntrack table or overflowing accept queues.",
        usage: "weir status [--admin-address HOST:PORT] [--require-agent] [--json] [--proxy-backlog N]",
        discussion: """
            First asks the running agent at --admin-address (GET /status): whether it is ready and, if not, why \
            (as /readyz says), its connections, its last reconcile and repairs, its reloads. When nothing answers \
            it says so and goes on (exit 0; with --require-agent, exit 1 after the report). Then the node: \
            conntrack entries, maximum and usage, per-CPU conntrack statistics (insert_failed, drop, early_drop; \
            read over ctnetlink), TcpExt ListenOverflows and ListenDrops, somaxconn against the proxy's listen \
            backlog, and whether the nftables table inet weir is installed and owned, with the ruleset generation. \
            Counts are for the network namespace weir runs in (--network-namespace: that one; the agent is asked \
            where weir status was started, where its admin endpoint lives); the conntrack maximum is global. \
            --json prints one object: "agent" (the agent's own answer, or answering false with the reason) and \
            "node" (each sample of the node's metrics, by name and labels).
            """
    )

    @Option(name: .long, help: """
        The backlog the proxy passes to listen() (default: what weir proxy uses, net.core.somaxconn of this \
        namespace); the kernel caps it at somaxconn.
        """)
    var proxyBacklog: [String] = []

    @Option(help: "HOST:PORT of the agent's admin endpoint ([v6]:port for IPv6; default 127.0.0.1:15020).")
    var adminAddress: [String] = []

    @Flag(help: "Exit 1 (after the report) when no agent answers at --admin-address.")
    var requireAgent = false

    @Flag(help: "One JSON object instead of text.")
    var json = false

    @OptionGroup var namespace: NamespaceOption

    func run() throws {
        var requested: Int?
        if let text = try oneValue(proxyBacklog, "--proxy-backlog") {
            requested = Int(try ValueKinds.number("backlog", 1...UInt32(Int32.max))
                .parse(text, from: .flag("--proxy-backlog")))
        }
        let adminText = try oneValue(adminAddress, "--admin-address") ?? defaultAdminAddress
        let (host, port) = try parseAdminAddress(adminText, source: .flag("--admin-address"))
        guard let address = SocketAddress(ip: host, port: port) else {
            throw ConfigError("--admin-address \(quotedValue(adminText)) is not HOST:PORT: expected e.g. "
                + "127.0.0.1:15020 or [::1]:15020")
        }
        // Every input is checked before the agent is asked (a connection is a change too: counters move).
        try namespace.check()
        // The agent first, from where weir status runs: its admin endpoint stays where it was started.
        let agent = Self.askAgent(address)
        let pods = (try? agent.get()).flatMap { _ in Self.askPods(address) }
        // Everything is checked before weir moves into another namespace, whose somaxconn then counts.
        try namespace.enter()
        let backlog = requested ?? Int(listenBacklog())
        let node = NodeStatus.collect(netlink: nodeStatusReaders, proxyBacklog: backlog)
        if json {
            let agentJSON: JSONValue
            switch agent {
            case .success(let status):
                agentJSON = .object([("address", .string(adminText)), ("answering", .bool(true))] + status.members
                                    + (pods.map { [("pods", JSONValue.array($0.map(\.json)))] } ?? []))
            case .failure(let reason):
                agentJSON = .object([("address", .string(adminText)), ("answering", .bool(false)),
                                     ("error", .string(reason.description))])
            }
            let samples: [(String, JSONValue)] = node.metricSamples.map { sample in
                let value: JSONValue = sample.value.rounded() == sample.value && abs(sample.value) < 9e15
                    ? .int(Int64(sample.value)) : .string(String(sample.value))
                return (sample.name + sample.labelText, value)
            }
            print(JSONValue.object([("agent", agentJSON), ("node", .object(samples))]).rendered, terminator: "")
        } else {
            switch agent {
            case .success(let status):
                print(status.report(address: adminText, now: Clock.wallSeconds()), terminator: "")
                if let pods {
                    print("pods: \(pods.count) (\(pods.filter { $0.state == .up }.count) up)")
                    if !pods.isEmpty { print(PodStatus.table(pods), terminator: "") }
                }
            case .failure(let reason):
                print(AgentStatus.notAnswering(address: adminText, reason: reason.description), terminator: "")
            }
            print(node.report(), terminator: "")
        }
        if requireAgent, case .failure(let reason) = agent {
            throw RuntimeFailure(message: "no agent answers at \(adminText) (\(reason)); --require-agent")
        }
    }

    struct AgentUnreachable: Error, CustomStringConvertible {
        let description: String
    }

    /// The agent's pods (`GET /pods`), nil when it is not in pod mode or does not say.
    static func askPods(_ address: SocketAddress) -> [PodStatus]? {
        guard let (code, body) = try? HTTPGet.get(address, path: "/pods"), code == 200 else { return nil }
        return try? PodStatus.parseList(body)
    }

    /// The agent's `/status`, or why there is none.
    static func askAgent(_ address: SocketAddress) -> Result<AgentStatus, AgentUnreachable> {
        do {
            let (code, body) = try HTTPGet.get(address, path: "/status")
            guard code == 200 else {
                return .failure(AgentUnreachable(description: "GET /status answered \(code): an agent older than "
                    + "weir status, or not weir"))
            }
            guard let status = AgentStatus(json: body) else {
                return .failure(AgentUnreachable(description: "GET /status answered something else than weir's "
                    + "status JSON"))
            }
            return .success(status)
        } catch {
            return .failure(AgentUnreachable(description: "\(error)"))
        }
    }
}

extension NamespaceOption {
    /// What `enter()` checks, without entering: a bad path exits 2.
    func check() throws {
        let flags = networkNamespace.map { [CaptureFlag.networkNamespace.long: [$0]] } ?? [:]
        let environment = ProcessEnvironment.get("NETWORK_NAMESPACE").map { ["NETWORK_NAMESPACE": $0] } ?? [:]
        guard let path = try CaptureInvocation.parse(flags: flags, environment: environment).networkNamespace else {
            return
        }
        do {
            try NetworkNamespace.check(path)
        } catch {
            throw namespaceFailure(path, error)
        }
    }
}
