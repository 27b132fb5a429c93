/// A ceiling on new connections per second (`--max-connection-rate-per-pod`), as a generic cell rate algorithm: one
/// number, the theoretical arrival time (TAT) of the next connection, moves `interval` further on with each one
/// taken, from now at the earliest. A connection is allowed while the TAT is at most `tolerance` ahead of now, so a
/// pod that was quiet may take a burst of a tenth of a second's worth at once, and a storm is held to the rate.
///
/// Why per pod and per second, on top of `--max-connections-per-pod`: the open-connection ceiling bounds what a
/// pod holds, not what it costs. Short connections (`Connection: close`) leave the ceiling as fast as they come, so
/// a pod storming at its ceiling still has the shared workers accept, dial and close for it at their full speed:
/// another pod's new connection then waits behind that work, and the node's CPUs go to it (the agent's work for a
/// pod is done in the agent's cgroup, not the pod's, so the pod's own CPU limit does not bound it).
///
/// The TAT is one word the workers share (`weir_atomic_max_add`); `limited` reads it, and `taking` is what one
/// connection moves it to. Pure: times are microseconds of the caller's monotonic clock.
public struct ConnectionRate: Equatable, Sendable {
    /// Connections per second; 0 means no ceiling.
    public let perSecond: Int
    /// Microseconds one connection moves the TAT on.
    public let intervalUs: Int64
    /// How far ahead of now the TAT may be while connections are still taken: a burst of `burst` connections.
    public let toleranceUs: Int64
    /// Connections a quiet pod may take at once: a tenth of a second's worth, at least one.
    public var burst: Int { intervalUs > 0 ? Int(toleranceUs / intervalUs) + 1 : 0 }

    public static let maxPerSecond = 1_000_000

    public init(perSecond: Int) {
        self.perSecond = max(0, min(perSecond, Self.maxPerSecond))
        intervalUs = self.perSecond > 0 ? Int64(1_000_000 / self.perSecond) : 0
        let burst = self.perSecond > 0 ? max(1, self.perSecond / 10) : 0
        toleranceUs = intervalUs * Int64(max(0, burst - 1))
    }

    public var enabled: Bool { perSecond > 0 }

    /// Whether a connection may not be taken now, with the TAT at `tat`.
    @inlinable public func limited(tat: Int64, nowUs: Int64) -> Bool {
        perSecond > 0 && tat - nowUs > toleranceUs
    }

    /// The TAT after one connection taken now.
    @inlinable public func taking(tat: Int64, nowUs: Int64) -> Int64 { max(tat, nowUs) + intervalUs }

    /// When a limited pod may take its next connection.
    public func allowedAt(tat: Int64) -> Int64 { tat - toleranceUs }
}
