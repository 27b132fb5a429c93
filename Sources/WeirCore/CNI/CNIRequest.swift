/// The verbs weir's plugin answers. GC (CNI 1.1) is not among them: weir announces 0.3.0 to 1.0.0 only (0.3.x
/// because flannel's and calico's default conflists still say 0.3.1; its result is 0.4.0's, and CHECK does not exist
/// there), so a runtime does not send it; the agent drops pods whose namespace is gone on its own.
public enum CNICommand: String, Sendable, CaseIterable {
    case add = "ADD", del = "DEL", check = "CHECK", version = "VERSION", status = "STATUS"

    /// How long the plugin waits for the agent's answer. ADD returns only once the pod is captured and served (the
    /// agent installs a table and opens listeners in the pod's namespace: milliseconds, longer while a restarted
    /// agent re-attaches every pod); the runtime's own deadline for creating a sandbox is minutes.
    public var agentTimeoutMs: Int {
        switch self {
        case .add: return 20_000
        case .del, .check: return 10_000
        case .status, .version: return 5_000
        }
    }
}

/// The pod's identity from `CNI_ARGS` (`IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;...`, as containerd and
/// cri-o write it): read by key, in any order; other keys are ignored; a key that is absent reads as "".
public struct CNIArgs: Equatable, Sendable {
    public var podNamespace = ""
    public var podName = ""
    public var podUID = ""
    public var podInfraContainerID = ""

    public init(podNamespace: String = "", podName: String = "", podUID: String = "",
                podInfraContainerID: String = "") {
        self.podNamespace = podNamespace
        self.podName = podName
        self.podUID = podUID
        self.podInfraContainerID = podInfraContainerID
    }

    /// Parses `KEY=VALUE` pairs separated by `;` (empty pairs are skipped; a repeated key keeps its last value). A
    /// pair without `=` is refused, as libcni refuses it: the runtime wrote something else than CNI_ARGS.
    public static func parse(_ text: String) throws(CNIError) -> CNIArgs {
        var args = CNIArgs()
        for pair in text.split(separator: ";", omittingEmptySubsequences: true) {
            guard let eq = pair.firstIndex(of: "=") else {
                throw CNIError(.invalidEnvironment, "CNI_ARGS \(quotedValue(pair)) is not a pair: expected "
                    + "KEY=VALUE pairs separated by ';'", details: text)
            }
            let value = String(pair[pair.index(after: eq)...])
            switch pair[..<eq] {
            case "K8S_POD_NAMESPACE": args.podNamespace = value
            case "K8S_POD_NAME": args.podName = value
            case "K8S_POD_UID": args.podUID = value
            case "K8S_POD_INFRA_CONTAINER_ID": args.podInfraContainerID = value
            default: break
            }
        }
        return args
    }
}

/// weir's part of the network config on standard input: the runtime's `cniVersion` and `name` (the list's), the
/// entry's `type`, `agentSocket` and `failOpen`, and the previous plugin's result. `runtimeConfig`, `args` and any
/// other key are ignored.
public struct CNIConfig: Equatable, Sendable {
    public static let defaultAgentSocket = "/run/weir/cni.sock"
    /// The most config bytes read from standard input (a config with a large prevResult is a few KiB).
    public static let maxBytes = 1 << 20

    public var cniVersion: String
    public var name: String
    public var type: String
    /// The agent's unix socket (`weir run --pod-mode` creates `cni.sock` in its `--run-dir`).
    public var agentSocket: String
    /// ADD succeeds when the agent cannot be reached (the pod then runs uncaptured). Off by default: fail closed.
    public var failOpen: Bool
    /// The result of the plugins before weir in the list; ADD passes it through.
    public var prevResult: JSONValue?

    public init(cniVersion: String = CNIVersion.newest, name: String, type: String = "weir",
                agentSocket: String = CNIConfig.defaultAgentSocket, failOpen: Bool = false,
                prevResult: JSONValue? = nil) {
        self.cniVersion = cniVersion
        self.name = name
        self.type = type
        self.agentSocket = agentSocket
        self.failOpen = failOpen
        self.prevResult = prevResult
    }

    /// Reads the config; the error's code says what was wrong: 6 not a JSON object, 1 a version weir does not
    /// speak, 7 a field of the wrong kind.
    public static func parse(_ bytes: [UInt8]) throws(CNIError) -> CNIConfig {
        if bytes.count > maxBytes {
            throw CNIError(.decodeFailure, "the network config on standard input is larger than \(maxBytes >> 20) MiB")
        }
        let value: JSONValue
        do {
            value = try JSONValue.parse(bytes)
        } catch {
            throw CNIError(.decodeFailure, "the network config on standard input is not JSON", details: error.description)
        }
        guard case .object = value else {
            throw CNIError(.decodeFailure, "the network config on standard input is not a JSON object")
        }
        guard let version = value[member: "cniVersion"]?.stringValue, !version.isEmpty else {
            throw CNIError(.invalidConfig, "the network config has no cniVersion: expected \"cniVersion\": "
                + CNIVersion.supported.map { "\"\($0)\"" }.joined(separator: " or "))
        }
        guard CNIVersion.supported.contains(version) else {
            throw CNIError(.incompatibleVersion, "cniVersion \(quotedValue(version)) is not supported: expected "
                + CNIVersion.supported.joined(separator: " or "))
        }
        // From here on, errors are written in the config's own version.
        func invalid(_ msg: String) -> CNIError { CNIError(.invalidConfig, msg, cniVersion: version) }
        func string(_ key: String, expected: String) throws(CNIError) -> String? {
            guard let member = value[member: key] else { return nil }
            guard let text = member.stringValue, !text.isEmpty else {
                throw invalid("\(key) \(Self.shown(member)) is not valid: expected \(expected)")
            }
            return text
        }
        guard let name = try string("name", expected: "the network's name") else {
            throw invalid("the network config has no name: expected the network's name")
        }
        guard let type = try string("type", expected: "the plugin's name, \"weir\"") else {
            throw invalid("the network config has no type: expected \"type\": \"weir\"")
        }
        var config = CNIConfig(cniVersion: version, name: name, type: type)
        if let socket = try string("agentSocket", expected: "the absolute path of the agent's socket") {
            guard socket.hasPrefix("/"), !socket.utf8.contains(0) else {
                throw invalid("agentSocket \(quotedValue(socket)) is not an absolute path: expected the path of "
                    + "the agent's socket, such as \(defaultAgentSocket)")
            }
            config.agentSocket = socket
        }
        if let failOpen = value[member: "failOpen"] {
            guard case .bool(let b) = failOpen else {
                throw invalid("failOpen \(Self.shown(failOpen)) is not valid: expected true or false")
            }
            config.failOpen = b
        }
        if let previous = value[member: "prevResult"] {
            guard case .object = previous else {
                throw invalid("prevResult \(Self.shown(previous)) is not valid: expected the previous plugin's "
                    + "result, an object")
            }
            config.prevResult = previous
        }
        return config
    }

    /// A config value as an error message quotes it: strings quoted, anything else as JSON on one line (cut short).
    static func shown(_ value: JSONValue) -> String {
        if let s = value.stringValue { return quotedValue(s) }
        var text = value.rendered.split(whereSeparator: { $0 == "\n" })
            .map { $0.drop(while: { $0 == " " }) }.joined(separator: " ")
        if text.count > 60 { text = String(text.prefix(57)) + "..." }
        return text
    }
}

/// One invocation of the plugin for ADD, DEL, CHECK or STATUS, from the `CNI_*` environment and the config on
/// standard input, checked as the spec asks of each verb.
public struct CNIRequest: Equatable, Sendable {
    public var command: CNICommand
    /// `CNI_CONTAINERID`; "" for STATUS.
    public var containerID: String
    /// `CNI_NETNS`: the pod's network namespace, a path. Required by ADD and CHECK; DEL may come without it (the
    /// namespace is already gone).
    public var netns: String
    /// `CNI_IFNAME`: the pod's interface, which a chained plugin leaves alone.
    public var interface: String
    public var args: CNIArgs
    /// `CNI_PATH`, split at `:`; weir calls no other plugin, so it is only kept.
    public var path: [String]
    public var config: CNIConfig

    public init(command: CNICommand, containerID: String = "", netns: String = "", interface: String = "",
                args: CNIArgs = CNIArgs(), path: [String] = [], config: CNIConfig) {
        self.command = command
        self.containerID = containerID
        self.netns = netns
        self.interface = interface
        self.args = args
        self.path = path
        self.config = config
    }

    /// Reads an ADD, DEL, CHECK or STATUS request (VERSION is answered without one: `CNIPlugin.start`). The config is
    /// read first, so that an error about the environment is written in the config's version.
    public static func parse(command: CNICommand, environment: [String: String], stdin: [UInt8])
        throws(CNIError) -> CNIRequest
    {
        let config = try CNIConfig.parse(stdin)
        func problem(_ msg: String) -> CNIError {
            CNIError(.invalidEnvironment, msg, cniVersion: config.cniVersion)
        }
        var request = CNIRequest(command: command, config: config)
        request.path = (environment["CNI_PATH"] ?? "").split(separator: ":").map(String.init)
        if command == .status { return request }

        request.containerID = environment["CNI_CONTAINERID"] ?? ""
        if request.containerID.isEmpty {
            throw problem("CNI_CONTAINERID is not set: expected the container's id for \(command.rawValue)")
        }
        request.interface = environment["CNI_IFNAME"] ?? ""
        if request.interface.isEmpty {
            throw problem("CNI_IFNAME is not set: expected the pod's interface name for \(command.rawValue)")
        }
        request.netns = environment["CNI_NETNS"] ?? ""
        if command != .del || !request.netns.isEmpty {
            guard request.netns.hasPrefix("/") else {
                throw problem(request.netns.isEmpty
                    ? "CNI_NETNS is not set: expected the path of the pod's network namespace for \(command.rawValue)"
                    : "CNI_NETNS \(quotedValue(request.netns)) is not a path: expected the path of the pod's "
                        + "network namespace, such as /var/run/netns/cni-1234")
            }
        }
        do {
            request.args = try CNIArgs.parse(environment["CNI_ARGS"] ?? "")
        } catch {
            var e = error
            e.cniVersion = config.cniVersion
            throw e
        }
        if command == .add && config.prevResult == nil {
            throw CNIError(.invalidConfig, "ADD without prevResult: weir is a chained plugin, expected after the "
                + "network plugin in a conflist's \"plugins\"", cniVersion: config.cniVersion)
        }
        return request
    }

    /// The pod as messages name it: `namespace/name` from CNI_ARGS, else the container id (podman sets only
    /// K8S_POD_NAME, to the container's name).
    public var podLabel: String {
        if !args.podNamespace.isEmpty && !args.podName.isEmpty { return "\(args.podNamespace)/\(args.podName)" }
        if !args.podName.isEmpty { return args.podName }
        return "container \(containerID.prefix(12))"
    }
}
