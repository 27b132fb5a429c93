/// A pod's state as `/pods`, `weir status` and `weir_pods{state}` show it.
public enum PodState: Equatable, Sendable {
    /// Captured and served.
    case up
    /// Known, not served yet (an agent that just started re-attaches it). Its persistent table holds its traffic.
    case pending
    /// The agent could not serve it; `reason` says why. Its persistent table (if any) still holds its traffic.
    case failed(reason: String)

    public var name: String {
        switch self {
        case .up: "up"
        case .pending: "pending"
        case .failed: "failed"
        }
    }

    public static let names = ["up", "pending", "failed"]
}

/// One attached pod as the agent remembers it across restarts (`<run-dir>/pods.json`).
public struct PodRecord: Equatable, Sendable {
    /// The pod's UID, or the container id where the runtime gives no UID (see `PodRequest.key`).
    public var key: String
    public var containerID: String
    public var pod: PodIdentity
    /// CNI_NETNS, by which a restarted agent opens the namespace again.
    public var netns: String
    /// The namespace's `device:inode` when it was attached: a path that now names another namespace (the sandbox
    /// was recreated) is not this pod's any more.
    public var netnsIdentity: String

    public init(key: String, containerID: String, pod: PodIdentity, netns: String, netnsIdentity: String) {
        self.key = key
        self.containerID = containerID
        self.pod = pod
        self.netns = netns
        self.netnsIdentity = netnsIdentity
    }

    /// The metrics' `pod` label: `namespace/name`, or the key when the runtime named nothing.
    public var label: String {
        let l = pod.label
        return l.isEmpty ? key : l
    }
}

/// The registry file: every attached pod, sorted by key so the same pods always write the same bytes.
public enum PodRegistryFile {
    public static let version: Int64 = 1

    public static func render(_ records: [PodRecord]) -> String {
        JSONValue.object([
            ("version", .int(version)),
            ("pods", .array(records.sorted { $0.key < $1.key }.map { r in
                .object([("key", .string(r.key)), ("containerID", .string(r.containerID)),
                         ("namespace", .string(r.pod.namespace)), ("name", .string(r.pod.name)),
                         ("uid", .string(r.pod.uid)), ("netns", .string(r.netns)),
                         ("netnsIdentity", .string(r.netnsIdentity))])
            })),
        ]).rendered
    }

    /// Reads the file; throws naming what is wrong (the agent then starts with no pods and says so).
    public static func parse(_ bytes: [UInt8]) throws(PodWireError) -> [PodRecord] {
        let value: JSONValue
        do { value = try JSONValue.parse(bytes) } catch { throw PodWireError("not JSON: \(error)") }
        guard value[member: "version"]?.intValue == version else {
            throw PodWireError("version is not \(version)")
        }
        guard let pods = value[member: "pods"]?.arrayValue else { throw PodWireError("no pods list") }
        var out: [PodRecord] = []
        for p in pods {
            func s(_ k: String) -> String { p[member: k]?.stringValue ?? "" }
            guard !s("key").isEmpty, !s("netns").isEmpty else { throw PodWireError("a pod has no key or netns") }
            out.append(PodRecord(key: s("key"), containerID: s("containerID"),
                                 pod: PodIdentity(namespace: s("namespace"), name: s("name"), uid: s("uid")),
                                 netns: s("netns"), netnsIdentity: s("netnsIdentity")))
        }
        return out
    }
}

/// What `GET /pods` returns for one pod, and `weir status` prints.
public struct PodStatus: Equatable, Sendable {
    public var record: PodRecord
    public var state: PodState
    public var connections: Int64

    public init(record: PodRecord, state: PodState, connections: Int64) {
        self.record = record
        self.state = state
        self.connections = connections
    }

    public var json: JSONValue {
        var members: [(String, JSONValue)] = [
            ("id", .string(record.key)), ("namespace", .string(record.pod.namespace)),
            ("name", .string(record.pod.name)), ("containerID", .string(record.containerID)),
            ("netns", .string(record.netns)), ("state", .string(state.name)),
        ]
        if case .failed(let reason) = state { members.append(("reason", .string(reason))) }
        members.append(("connections", .int(connections)))
        return .object(members)
    }

    public static func renderList(_ pods: [PodStatus]) -> String {
        JSONValue.array(pods.sorted { $0.record.key < $1.record.key }.map(\.json)).rendered
    }

    /// Reads `GET /pods` back (`weir status`).
    public static func parseList(_ bytes: [UInt8]) throws(PodWireError) -> [PodStatus] {
        let value: JSONValue
        do { value = try JSONValue.parse(bytes) } catch { throw PodWireError("not JSON: \(error)") }
        guard let items = value.arrayValue else { throw PodWireError("not a list") }
        return items.map { p in
            func s(_ k: String) -> String { p[member: k]?.stringValue ?? "" }
            let state: PodState = switch s("state") {
            case "up": .up
            case "pending": .pending
            default: .failed(reason: s("reason"))
            }
            return PodStatus(record: PodRecord(key: s("id"), containerID: s("containerID"),
                                               pod: PodIdentity(namespace: s("namespace"), name: s("name")),
                                               netns: s("netns"), netnsIdentity: ""),
                             state: state, connections: p[member: "connections"]?.intValue ?? 0)
        }
    }

    /// The table `weir status` prints: one line per pod, columns aligned.
    public static func table(_ pods: [PodStatus]) -> String {
        let header = ["POD", "STATE", "CONNECTIONS", "NETNS"]
        let rows = pods.map { p -> [String] in
            var state = p.state.name
            if case .failed(let reason) = p.state { state += " (\(reason))" }
            return [p.record.label, state, String(p.connections), p.record.netns]
        }
        var widths = header.map(\.count)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            var out = ""
            for (i, c) in cells.enumerated() {
                out += i == cells.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count + 2)
            }
            return out
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n") + "\n"
    }
}
