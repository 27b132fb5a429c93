/// The standard Prometheus process metrics (`process_*`), from the text of `/proc/self/stat` and `/proc/stat`, as
/// the official client libraries export them. Pure: the caller reads the files and the system constants.
public struct ProcessStats: Equatable, Sendable {
    /// User plus system CPU time, seconds.
    public var cpuSeconds: Double
    /// Resident set size, bytes.
    public var residentBytes: Double
    /// Virtual memory size, bytes.
    public var virtualBytes: Double
    /// When the process started, Unix seconds.
    public var startTimeSeconds: Double
    public var openFDs: Int
    /// The soft RLIMIT_NOFILE: past it, accept() and connect() fail with EMFILE.
    public var maxFDs: Int

    /// Parses `/proc/self/stat` (fields after the parenthesised command name, which may itself hold spaces and
    /// parentheses) and the `btime` line of `/proc/stat`. `ticksPerSecond` is sysconf(_SC_CLK_TCK), `pageSize`
    /// sysconf(_SC_PAGESIZE). Nil when either text is not what the kernel writes.
    public static func parse(stat: String, procStat: String, ticksPerSecond: Int, pageSize: Int, openFDs: Int,
                             maxFDs: Int) -> ProcessStats?
    {
        guard ticksPerSecond > 0, let close = stat.lastIndex(of: ")") else { return nil }
        // After ")": state(3) ppid(4) ... utime(14) stime(15) ... starttime(22) vsize(23) rss(24).
        let fields = stat[stat.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        func field(_ n: Int) -> Double? { n - 3 < fields.count ? Double(fields[n - 3]) : nil }
        guard let utime = field(14), let stime = field(15), let start = field(22), let vsize = field(23),
              let rss = field(24) else { return nil }
        var boot: Double?
        for line in procStat.split(separator: "\n") where line.hasPrefix("btime ") {
            boot = Double(line.dropFirst(6).trimmingSpaces)
        }
        guard let boot else { return nil }
        let hz = Double(ticksPerSecond)
        return ProcessStats(cpuSeconds: (utime + stime) / hz, residentBytes: rss * Double(pageSize),
                            virtualBytes: vsize, startTimeSeconds: boot + start / hz, openFDs: openFDs,
                            maxFDs: maxFDs)
    }

    public var metricSamples: [MetricSample] {
        [
            MetricSample(name: "process_cpu_seconds_total", value: cpuSeconds),
            MetricSample(name: "process_resident_memory_bytes", value: residentBytes),
            MetricSample(name: "process_virtual_memory_bytes", value: virtualBytes),
            MetricSample(name: "process_start_time_seconds", value: startTimeSeconds),
            MetricSample(name: "process_open_fds", value: Double(openFDs)),
            MetricSample(name: "process_max_fds", value: Double(maxFDs)),
        ]
    }
}
