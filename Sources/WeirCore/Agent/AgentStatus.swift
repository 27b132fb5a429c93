/// What the running agent says about itself at `GET /status`, for `weir status`: readiness (with the reason, as
/// `/readyz` gives it), connections, reconcile and reload counts. The JSON is the agent's answer and `weir status
/// --json`'s `agent` member; members a reader does not know are ignored, so either side may be newer.
public struct AgentStatus: Equatable, Sendable {
    public var version: String
    public var ready: Bool
    /// Why the agent is not ready (`/readyz`'s reason), nil when ready.
    public var problem: String?
    public var connectionsActive: Int64
    public var connectionsAccepted: Int64
    /// Unix seconds of the last reconcile that found the capture right or repaired it; 0 before the first.
    public var lastReconcile: Int64
    public var reconciles: Int64
    public var repairs: Int64
    public var reloads: Int64
    public var reloadFailures: Int64

    public init(version: String, ready: Bool, problem: String?, connectionsActive: Int64, connectionsAccepted: Int64,
                lastReconcile: Int64, reconciles: Int64, repairs: Int64, reloads: Int64, reloadFailures: Int64) {
        self.version = version
        self.ready = ready
        self.problem = problem
        self.connectionsActive = connectionsActive
        self.connectionsAccepted = connectionsAccepted
        self.lastReconcile = lastReconcile
        self.reconciles = reconciles
        self.repairs = repairs
        self.reloads = reloads
        self.reloadFailures = reloadFailures
    }

    public var json: JSONValue { .object(members) }

    /// The members of `json`, in order.
    public var members: [(String, JSONValue)] {
        [
            ("version", .string(version)),
            ("ready", .bool(ready)),
            ("problem", problem.map { .string($0) } ?? .null),
            ("connections_active", .int(connectionsActive)),
            ("connections_accepted", .int(connectionsAccepted)),
            ("last_reconcile_unix", .int(lastReconcile)),
            ("reconciles", .int(reconciles)),
            ("repairs", .int(repairs)),
            ("reloads", .int(reloads)),
            ("reload_failures", .int(reloadFailures)),
        ]
    }

    /// The agent's `/status` body; nil when it is not that JSON.
    public init?(json bytes: [UInt8]) {
        guard let value = try? JSONValue.parse(bytes), let version = value[member: "version"]?.stringValue,
              case .bool(let ready)? = value[member: "ready"] else { return nil }
        func int(_ name: String) -> Int64? { value[member: name]?.intValue }
        guard let active = int("connections_active"), let accepted = int("connections_accepted"),
              let last = int("last_reconcile_unix"), let reconciles = int("reconciles"), let repairs = int("repairs"),
              let reloads = int("reloads"), let reloadFailures = int("reload_failures") else { return nil }
        self.init(version: version, ready: ready, problem: value[member: "problem"]?.stringValue,
                  connectionsActive: active, connectionsAccepted: accepted, lastReconcile: last,
                  reconciles: reconciles, repairs: repairs, reloads: reloads, reloadFailures: reloadFailures)
    }

    /// Lines for `weir status`; `now` in Unix seconds, for "N s ago".
    public func report(address: String, now: Int64) -> String {
        var out = "agent at \(address): " + (ready ? "ready" : "NOT READY: \(problem ?? "starting or draining")")
            + " (weir \(version))\n"
        out += "  connections: \(connectionsActive) active, \(connectionsAccepted) accepted since start\n"
        if lastReconcile > 0 {
            out += "  last reconcile: \(Self.clock(lastReconcile)) UTC (\(max(0, now - lastReconcile)) s ago), "
                + "\(reconciles) runs, \(repairs) repairs\n"
        } else {
            out += "  last reconcile: none yet, \(reconciles) runs, \(repairs) repairs\n"
        }
        out += "  reloads: \(reloads) applied, \(reloadFailures) refused\n"
        return out
    }

    /// What `weir status` says when nothing answers at the admin address.
    public static func notAnswering(address: String, reason: String) -> String {
        "agent at \(address): not answering (\(reason)); is weir running? (systemctl status weir)\n"
    }

    static func clock(_ wall: Int64) -> String {
        let day = wall % 86400
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(two(day / 3600)):\(two(day / 60 % 60)):\(two(day % 60))"
    }
}
