/// What the agent said to one request, or why it could not be asked. The plugin maps the agent client's reply and
/// errors onto this, so that what it prints for each is decided (and tested) here.
public enum CNIAgentAnswer: Equatable, Sendable {
    /// The agent answered: whether it did what was asked, the pod's state (`up`, `pending`, `failed`, `absent`
    /// for a pod it does not hold) and its message.
    case reply(ok: Bool, state: String, message: String)
    /// The socket is missing or refuses connections: no agent runs.
    case unreachable(String)
    /// Any other failure to ask (a timeout, a reply cut short).
    case failed(String)
}

/// What the plugin prints and how it exits: the result (or nothing) on standard output and 0, or the error object
/// on standard output and 1; `log` lines go to standard error, never into the result.
public struct CNIOutput: Equatable, Sendable {
    public var stdout: String
    public var exitStatus: Int32
    public var log: [String]

    public static func success(_ stdout: String = "", log: [String] = []) -> CNIOutput {
        CNIOutput(stdout: stdout, exitStatus: 0, log: log)
    }

    public static func failure(_ error: CNIError, log: [String] = []) -> CNIOutput {
        CNIOutput(stdout: error.json.rendered, exitStatus: 1, log: log)
    }

    /// A log line of the plugin's: `weir-cni: event=NAME key=value ...`.
    static func event(_ name: String, _ fields: KeyValuePairs<String, CustomStringConvertible>) -> String {
        EventLine.format("weir-cni", name, fields)
    }
}

/// The first step of a plugin run: answered without the agent (VERSION, or a request that cannot be read), or a
/// request to put to the agent.
public enum CNIStart: Equatable, Sendable {
    case answered(CNIOutput)
    case ask(CNIRequest)

    /// Reads `CNI_COMMAND`, the rest of the environment and the config. VERSION never fails: it answers with the
    /// input's `cniVersion` (the spec's rule; a version weir does not speak is echoed too, and the runtime sees it
    /// is not among `supportedVersions`), or the newest when the input has none.
    public static func start(environment: [String: String], stdin: [UInt8]) -> CNIStart {
        let verb = environment["CNI_COMMAND"] ?? ""
        guard let command = CNICommand(rawValue: verb) else {
            let expected = CNICommand.allCases.map(\.rawValue).joined(separator: ", ")
            return .answered(.failure(CNIError(.invalidEnvironment, "CNI_COMMAND \(quotedValue(verb)) is not "
                + "supported: expected one of \(expected)")))
        }
        if command == .version {
            let input = (try? JSONValue.parse(stdin))?[member: "cniVersion"]?.stringValue ?? ""
            let answer = JSONValue.object([
                ("cniVersion", .string(input.isEmpty ? CNIVersion.newest : input)),
                ("supportedVersions", .array(CNIVersion.supported.map { .string($0) })),
            ])
            return .answered(.success(answer.rendered))
        }
        do {
            return .ask(try CNIRequest.parse(command: command, environment: environment, stdin: stdin))
        } catch {
            return .answered(.failure(error))
        }
    }
}

extension CNIRequest {
    /// The output for the agent's answer:
    /// - ADD prints `prevResult`, unchanged but for its `cniVersion` (the request's), once the agent says the pod is
    ///   served. A refusal is error 11 (try again later: the runtime recreates the sandbox). An unreachable agent
    ///   fails ADD the same way (fail closed: the pod never runs uncaptured) unless the config says `failOpen`.
    /// - DEL succeeds when the agent removed the pod or does not hold it (`absent`), and when no agent runs at all.
    /// - CHECK succeeds only when the agent says the pod is `up`.
    /// - STATUS succeeds when the agent answers ok, else error 50.
    public func output(for answer: CNIAgentAnswer) -> CNIOutput {
        let socket = config.agentSocket
        func failure(_ code: CNIError.Code, _ msg: String, _ details: String, log: [String] = []) -> CNIOutput {
            .failure(CNIError(code, msg, details: details, cniVersion: config.cniVersion), log: log)
        }
        switch command {
        case .add:
            switch answer {
            case .reply(true, _, _):
                return .success(result.rendered)
            case .reply(false, let state, let message):
                return failure(.tryAgainLater, "the weir agent did not attach \(podLabel) (state \(state))", message)
            case .unreachable(let message) where config.failOpen:
                return .success(result.rendered, log: [CNIOutput.event("agent_unreachable", [
                    "pod": podLabel, "socket": socket, "action": "fail_open", "error": message,
                    "note": "the pod starts uncaptured",
                ])])
            case .unreachable(let message):
                return failure(.tryAgainLater, "the weir agent is not reachable at \(socket): \(podLabel) is not "
                    + "started uncaptured (set \"failOpen\": true in the network config to start it anyway)", message)
            case .failed(let message):
                return failure(.tryAgainLater, "asking the weir agent at \(socket) to attach \(podLabel) failed",
                               message)
            }
        case .del:
            switch answer {
            case .reply(true, _, _), .reply(_, "absent", _):
                return .success()
            case .reply(false, let state, let message):
                return failure(.tryAgainLater, "the weir agent did not detach \(podLabel) (state \(state))", message)
            case .unreachable(let message):
                // DEL must succeed when what it would remove is gone (spec), and runtimes retry a failed DEL until
                // it succeeds, which would keep the sandbox from ever being removed. With no agent running there is
                // nothing of weir's to release in the pod: its listeners died with the agent, and the agent drops
                // pods whose namespace vanished on its own when it starts again.
                return .success(log: [CNIOutput.event("agent_unreachable", [
                    "pod": podLabel, "socket": socket, "action": "del_succeeds", "error": message,
                ])])
            case .failed(let message):
                return failure(.tryAgainLater, "asking the weir agent at \(socket) to detach \(podLabel) failed",
                               message)
            }
        case .check:
            switch answer {
            case .reply(true, "up", _):
                return .success()
            case .reply(_, let state, let message):
                return failure(.tryAgainLater, "\(podLabel) is not served by the weir agent (state \(state))",
                               message)
            case .unreachable(let message), .failed(let message):
                return failure(.tryAgainLater, "the weir agent is not reachable at \(socket): \(podLabel) is not "
                    + "served", message)
            }
        case .status, .version:
            switch answer {
            case .reply(true, _, _):
                return .success()
            case .reply(false, _, let message):
                return failure(.notAvailable, "the weir agent cannot attach pods now", message)
            case .unreachable(let message), .failed(let message):
                return failure(.notAvailable, "the weir agent is not reachable at \(socket)", message)
            }
        }
    }

    /// ADD's result: the previous plugin's, in the request's version (`cniVersion` replaced where it stands, or put
    /// first), everything else as it came.
    public var result: JSONValue {
        guard case .object(var members)? = config.prevResult else { return .object([]) }
        if let i = members.firstIndex(where: { $0.0 == "cniVersion" }) {
            members[i].1 = .string(config.cniVersion)
        } else {
            members.insert(("cniVersion", .string(config.cniVersion)), at: 0)
        }
        return .object(members)
    }
}
