import WeirCore

/// The parts of `weir status` that come from files: conntrack count and max (fallback when ctnetlink cannot be
/// asked), accept-queue counters and the backlog settings.
public struct StatusFiles: Sendable {
    public let files: SysctlFiles

    public init(files: SysctlFiles = SysctlFiles()) {
        self.files = files
    }

    /// nf_conntrack_count and nf_conntrack_max of this network namespace, nil when nf_conntrack is not loaded.
    public func conntrackUsage() -> ConntrackUsage? {
        guard let count = readInt("/proc/sys/net/netfilter/nf_conntrack_count"),
              let max = readInt("/proc/sys/net/netfilter/nf_conntrack_max") else { return nil }
        return ConntrackUsage(entries: count, maximum: max, source: "procfs")
    }

    /// TcpExt ListenOverflows and ListenDrops of this network namespace.
    public func listenCounters() -> (overflows: UInt64?, drops: UInt64?) {
        guard let text = files.read("/proc/net/netstat") else { return (nil, nil) }
        let tcpExt = NetstatCounters.parse(text)["TcpExt"]
        return (tcpExt?["ListenOverflows"], tcpExt?["ListenDrops"])
    }

    public func readInt(_ path: String) -> Int? {
        files.read(path).flatMap { SysctlValue(parsing: $0)?.scalar }
    }
}
