/// The messages between the CNI plugin and the agent (`<run-dir>/cni.sock`, SOCK_SEQPACKET): one JSON request per
/// connection, with the pod's network namespace passed as a descriptor beside an `add`; one JSON reply. ztunnel's ZDS
/// protocol is the model (one message in flight, the namespace as SCM_RIGHTS, an acknowledgement carrying an error).
/// `version` lets a newer agent tell an older plugin's request apart; a request of an unknown version is refused.
public enum PodWire {
    public static let version: Int64 = 1
    /// The largest message either side sends or accepts.
    public static let maxMessage = 8192
}

/// Who a pod is, from the runtime's CNI_ARGS (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`, `K8S_POD_UID`); "" when absent.
public struct PodIdentity: Equatable, Hashable, Sendable {
    public var namespace: String
    public var name: String
    public var uid: String

    public init(namespace: String = "", name: String = "", uid: String = "") {
        self.namespace = namespace
        self.name = name
        self.uid = uid
    }

    /// `namespace/name`, the metrics' `pod` label; the name alone without a namespace (podman names only).
    public var label: String { namespace.isEmpty ? name : "\(namespace)/\(name)" }
}

/// One request of the plugin.
public struct PodRequest: Equatable, Sendable {
    public enum Operation: String, Sendable, CaseIterable {
        /// Capture and serve the pod in the namespace passed with the request; the reply comes once it is served.
        case add
        /// Stop serving the pod and take weir's capture out of its namespace (which may be gone already).
        case del
        /// Is the pod served?
        case check
        /// Can the agent serve a new pod? (CNI STATUS)
        case status
    }

    public var operation: Operation
    /// CNI_CONTAINERID: the sandbox's id, which the runtime repeats on DEL.
    public var containerID: String
    /// CNI_NETNS: the namespace's path (kept to re-open it after an agent restart).
    public var netns: String
    /// CNI_IFNAME.
    public var interface: String
    public var pod: PodIdentity

    public init(operation: Operation, containerID: String, netns: String, interface: String, pod: PodIdentity) {
        self.operation = operation
        self.containerID = containerID
        self.netns = netns
        self.interface = interface
        self.pod = pod
    }

    /// The key the agent files the pod under: the pod's UID when the runtime gives one (Kubernetes), else the
    /// container id (podman): a recreated sandbox of the same pod keeps its key and replaces the old namespace.
    public var key: String { pod.uid.isEmpty ? containerID : pod.uid }

    public var encoded: [UInt8] {
        Array(JSONValue.object([
            ("version", .int(PodWire.version)), ("operation", .string(operation.rawValue)),
            ("containerID", .string(containerID)), ("netns", .string(netns)), ("interface", .string(interface)),
            ("podNamespace", .string(pod.namespace)), ("podName", .string(pod.name)), ("podUID", .string(pod.uid)),
        ]).rendered.utf8)
    }

    /// Reads a request; the error says what is wrong with it (for the reply).
    public static func decode(_ bytes: [UInt8]) throws(PodWireError) -> PodRequest {
        let value: JSONValue
        do { value = try JSONValue.parse(bytes) } catch { throw PodWireError("request is not JSON: \(error)") }
        guard let version = value[member: "version"]?.intValue else { throw PodWireError("request has no version") }
        guard version == PodWire.version else {
            throw PodWireError("request version \(version) is not known: expected \(PodWire.version)")
        }
        guard let op = value[member: "operation"]?.stringValue.flatMap(Operation.init(rawValue:)) else {
            throw PodWireError("request has no known operation: expected add, del, check or status")
        }
        func text(_ key: String) throws(PodWireError) -> String {
            guard let member = value[member: key] else { return "" }
            guard let s = member.stringValue else { throw PodWireError("request's \(key) is not a string") }
            guard s.utf8.count <= 4096 else { throw PodWireError("request's \(key) is longer than 4096 bytes") }
            return s
        }
        let request = PodRequest(operation: op, containerID: try text("containerID"), netns: try text("netns"),
                                 interface: try text("interface"),
                                 pod: PodIdentity(namespace: try text("podNamespace"), name: try text("podName"),
                                                  uid: try text("podUID")))
        if op == .add || op == .del || op == .check, request.containerID.isEmpty {
            throw PodWireError("request has no containerID")
        }
        if op == .add, request.netns.isEmpty { throw PodWireError("add has no netns") }
        return request
    }
}

/// The agent's answer.
public struct PodReply: Equatable, Sendable {
    public let ok: Bool
    /// The pod's state after the request (`up`, `pending`, `failed`, `absent`), or the agent's for `status`.
    public let state: String
    /// Why not, when `ok` is false; empty otherwise.
    public let message: String

    public init(ok: Bool, state: String, message: String = "") {
        self.ok = ok
        self.state = state
        self.message = message
    }

    public var encoded: [UInt8] {
        Array(JSONValue.object([("ok", .bool(ok)), ("state", .string(state)), ("message", .string(message))])
            .rendered.utf8)
    }

    public static func decode(_ bytes: [UInt8]) throws(PodWireError) -> PodReply {
        let value: JSONValue
        do { value = try JSONValue.parse(bytes) } catch { throw PodWireError("reply is not JSON: \(error)") }
        guard case .bool(let ok)? = value[member: "ok"], let state = value[member: "state"]?.stringValue else {
            throw PodWireError("reply has no ok and state")
        }
        return PodReply(ok: ok, state: state, message: value[member: "message"]?.stringValue ?? "")
    }
}

public struct PodWireError: Error, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
