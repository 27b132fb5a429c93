/// Per-CPU conntrack counters from ctnetlink (`IPCTNL_MSG_CT_GET_STATS_CPU`).
public struct ConntrackCPUStats: Equatable, Sendable {
    public var cpu: Int
    public var found: UInt64 = 0
    public var invalid: UInt64 = 0
    public var insert: UInt64 = 0
    public var insertFailed: UInt64 = 0
    public var drop: UInt64 = 0
    public var earlyDrop: UInt64 = 0
    public var error: UInt64 = 0
    public var searchRestart: UInt64 = 0
    public var clashResolve: UInt64 = 0
    public var chainTooLong: UInt64 = 0

    public init(cpu: Int) { self.cpu = cpu }
}

/// Conntrack table fill.
public struct ConntrackUsage: Equatable, Sendable {
    public var entries: Int
    public var maximum: Int
    /// Where the numbers came from: "ctnetlink" or "procfs".
    public var source: String

    public init(entries: Int, maximum: Int, source: String) {
        self.entries = entries
        self.maximum = maximum
        self.source = source
    }

    /// Entries as a percentage of the maximum (0 when the maximum is unknown).
    public var usagePercent: Double { maximum > 0 ? Double(entries) * 100 / Double(maximum) : 0 }
}
