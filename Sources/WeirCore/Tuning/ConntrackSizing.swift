/// Conntrack table sizing, the way kube-proxy does it: `max = max(perCore × CPUs, floor)`, capped at `cap`, and the
/// hash table gets `max / 4` buckets. CPUs are the CPUs weir may use (`CPUBudget.usable`), not the host count.
public struct ConntrackSizing: Equatable, Sendable {
    /// Entries per usable CPU (kube-proxy: `conntrack.maxPerCore`, default 32768).
    public var perCore: Int
    /// Lowest maximum (kube-proxy: `conntrack.min`, default 131072).
    public var floor: Int
    /// Highest maximum weir will ask for (kube-proxy has none; each entry costs about 320 bytes of kernel memory).
    public var cap: Int

    public static let kubeProxyDefaults = ConntrackSizing(perCore: 32768, floor: 131_072, cap: 1_048_576)

    public init(perCore: Int, floor: Int, cap: Int) {
        self.perCore = perCore
        self.floor = floor
        self.cap = cap
    }

    /// The conntrack maximum for `cpus` usable CPUs.
    public func maximum(cpus: Int) -> Int {
        let (product, overflow) = perCore.multipliedReportingOverflow(by: max(cpus, 1))
        return min(max(overflow ? Int.max : product, floor), cap)
    }

    /// Hash buckets for a conntrack maximum: a quarter of it, at least 1024 (the kernel's smallest useful size).
    public static func hashSize(forMaximum maximum: Int) -> Int {
        max(maximum / 4, 1024)
    }
}
