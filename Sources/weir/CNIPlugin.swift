import WeirAgent
import WeirCore
import WeirSystem

/// `weir` as a container runtime runs it from the conflist entry `"type": "weir"`: no arguments, `CNI_COMMAND` and
/// the other `CNI_*` variables set, the network config on standard input. It asks the agent (`weir run --pod-mode`)
/// over its socket and prints the spec's result or error object on standard output; log lines go to standard error.
/// What each verb prints for each answer is decided in WeirCore (`CNIStart`, `CNIRequest.output(for:)`).
enum CNIPlugin {
    static func run() -> Never {
        let input: [UInt8]
        do {
            input = try readAll(0, limit: CNIConfig.maxBytes)
        } catch {
            emit(.failure(CNIError(.ioFailure, "reading the network config from standard input failed",
                                   details: "\(error)")))
        }
        switch CNIStart.start(environment: ProcessEnvironment.all, stdin: input) {
        case .answered(let output): emit(output)
        case .ask(let request): emit(request.output(for: ask(request)))
        }
    }

    /// One request to the agent; for ADD the client opens `CNI_NETNS` and passes it along.
    static func ask(_ request: CNIRequest) -> CNIAgentAnswer {
        let operation: PodRequest.Operation
        switch request.command {
        case .add: operation = .add
        case .del: operation = .del
        case .check: operation = .check
        case .status, .version: operation = .status
        }
        let pod = PodIdentity(namespace: request.args.podNamespace, name: request.args.podName,
                              uid: request.args.podUID)
        let message = PodRequest(operation: operation, containerID: request.containerID, netns: request.netns,
                                 interface: request.interface, pod: pod)
        do {
            let reply = try PodClient.send(message, socket: request.config.agentSocket,
                                           timeoutMs: request.command.agentTimeoutMs)
            return .reply(ok: reply.ok, state: reply.state, message: reply.message)
        } catch PodClientError.unreachable(let why) {
            return .unreachable(why)
        } catch {
            return .failed("\(error)")
        }
    }

    static func emit(_ output: CNIOutput) -> Never {
        for line in output.log {
            ProcessEnvironment.writeStandardError(bytes: Array((oneLineMessage(line) + "\n").utf8))
        }
        if !output.stdout.isEmpty { ProcessEnvironment.writeStandardOutput(output.stdout) }
        ProcessEnvironment.exit(output.exitStatus)
    }
}
