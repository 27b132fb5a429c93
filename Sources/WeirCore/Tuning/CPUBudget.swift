/// The number of CPUs weir may really use: the host's online CPUs, cut down by the cgroup CPU quota and cpuset.
///
/// Rule: `usable = min(ceil(quota / period), cpuset count, host online count)`, at least 1. Both cgroup v2
/// (`cpu.max`, `cpuset.cpus.effective`) and v1 (`cpu.cfs_quota_us` / `cpu.cfs_period_us`, `cpuset.effective_cpus`
/// or `cpuset.cpus`) are understood, also in the hybrid layout where v1 controllers and a v2 tree are mounted side by
/// side. A quota set on an ancestor cgroup limits its children too, so the smallest quota from the process's cgroup up
/// to the mount root counts. The proxy uses the same value for its worker count; conntrack sizing uses it for CPUs.
public struct CPUBudget: Equatable, Sendable, CustomStringConvertible {
    /// CPUs weir may use (at least 1).
    public let usable: Int
    /// Online CPUs of the host.
    public let host: Int
    /// CPU quota as a fraction of CPUs (quota / period), or nil when there is no quota.
    public let quota: Double?
    /// CPUs in the effective cpuset, or nil when no cpuset was found.
    public let cpuset: Int?
    /// Where the quota came from: "cgroup v1", "cgroup v2" or nil.
    public let quotaSource: String?
    /// Where the cpuset came from: "cgroup v1", "cgroup v2" or nil.
    public let cpusetSource: String?

    public init(host: Int, quota: Double?, cpuset: Int?, quotaSource: String? = nil, cpusetSource: String? = nil) {
        self.host = max(host, 1)
        self.quota = quota
        self.cpuset = cpuset
        self.quotaSource = quotaSource
        self.cpusetSource = cpusetSource
        var usable = self.host
        if let q = CPUBudget.quotaCPUs(quota, host: self.host) { usable = min(usable, q) }
        if let cpuset, cpuset > 0 { usable = min(usable, cpuset) }
        self.usable = max(usable, 1)
    }

    /// The quota in whole CPUs, rounded up; a quota of the host's count or more counts as the host's count, so that
    /// no quota (a huge or infinite one) can overflow Int. Nil without a positive quota.
    private static func quotaCPUs(_ quota: Double?, host: Int) -> Int? {
        guard let quota, quota > 0 else { return nil }
        return quota >= Double(host) ? host : Int(quota.rounded(.up))
    }

    /// What limits the budget: "cpu quota", "cpuset" or "host".
    public var limitedBy: String {
        if let q = CPUBudget.quotaCPUs(quota, host: host), q == usable, usable < host { return "cpu quota" }
        if let cpuset, cpuset == usable, usable < host { return "cpuset" }
        return "host"
    }

    public var description: String {
        let quotaText = quota.map { tuningDecimal($0) + " (\(quotaSource ?? "cgroup"))" } ?? "none"
        let cpusetText = cpuset.map { "\($0) (\(cpusetSource ?? "cgroup"))" } ?? "none"
        return "\(usable) usable CPUs (host \(host), quota \(quotaText), cpuset \(cpusetText); limited by \(limitedBy))"
    }

    /// Parses cgroup v2 `cpu.max` (`max 100000` or `150000 100000`) into CPUs, nil for no limit or bad text.
    public static func parseCPUMax(_ text: String) -> Double? {
        let fields = text.tuningTrimmed.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard let first = fields.first, first != "max", let quota = Double(first), quota > 0 else { return nil }
        let period = fields.count > 1 ? Double(fields[1]) ?? 100_000 : 100_000
        guard period > 0 else { return nil }
        return quota / period
    }

    /// Parses cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` into CPUs, nil for no limit (-1) or bad text.
    public static func parseCFS(quota: String, period: String?) -> Double? {
        guard let q = Double(quota.tuningTrimmed), q > 0 else { return nil }
        let p = period.flatMap { Double($0.tuningTrimmed) } ?? 100_000
        guard p > 0 else { return nil }
        return q / p
    }

    /// Resolves the budget of the current process from files read through `reader` (path -> contents, nil when
    /// missing). Reads `/proc/self/cgroup`, `/proc/self/mountinfo`, the cgroup files they point to, and
    /// `/sys/devices/system/cpu/online`. Without mountinfo it assumes the usual `/sys/fs/cgroup` layout.
    /// `hostFallback` is used when the online CPU list cannot be read.
    public static func resolve(reader: (String) -> String?, hostFallback: Int = 1) -> CPUBudget {
        let host = reader("/sys/devices/system/cpu/online").flatMap { CPUList(parsing: $0) }?.count ?? hostFallback
        let memberships = CgroupMembership.parse(reader("/proc/self/cgroup") ?? "")
        var mounts = CgroupMount.parse(mountinfo: reader("/proc/self/mountinfo") ?? "")
        if mounts.isEmpty { mounts = CgroupMount.conventional(reader: reader) }

        var quota: Double?, quotaSource: String?
        var cpuset: Int?, cpusetSource: String?

        if let mount = mounts.first(where: { $0.version == 1 && $0.controllers.contains("cpu") }) {
            let path = memberships.path(version: 1, controller: "cpu")
            for dir in mount.directories(forCgroup: path) {
                guard let text = reader(dir + "/cpu.cfs_quota_us"),
                      let value = parseCFS(quota: text, period: reader(dir + "/cpu.cfs_period_us")) else { continue }
                quota = min(quota ?? value, value)
                quotaSource = "cgroup v1"
            }
        } else if let mount = mounts.first(where: { $0.version == 2 }) {
            let path = memberships.path(version: 2, controller: nil)
            for dir in mount.directories(forCgroup: path) {
                guard let text = reader(dir + "/cpu.max"), let value = parseCPUMax(text) else { continue }
                quota = min(quota ?? value, value)
                quotaSource = "cgroup v2"
            }
        }

        if let mount = mounts.first(where: { $0.version == 1 && $0.controllers.contains("cpuset") }) {
            let path = memberships.path(version: 1, controller: "cpuset")
            for dir in mount.directories(forCgroup: path) {
                let text = reader(dir + "/cpuset.effective_cpus") ?? reader(dir + "/cpuset.cpus")
                if let text, let list = CPUList(parsing: text), list.count > 0 {
                    cpuset = list.count
                    cpusetSource = "cgroup v1"
                    break
                }
            }
        } else if let mount = mounts.first(where: { $0.version == 2 }) {
            let path = memberships.path(version: 2, controller: nil)
            for dir in mount.directories(forCgroup: path) {
                if let text = reader(dir + "/cpuset.cpus.effective"), let list = CPUList(parsing: text),
                   list.count > 0 {
                    cpuset = list.count
                    cpusetSource = "cgroup v2"
                    break
                }
            }
        }
        return CPUBudget(host: host, quota: quota, cpuset: cpuset, quotaSource: quotaSource,
                         cpusetSource: cpusetSource)
    }
}

func tuningDecimal(_ value: Double) -> String {
    guard value.isFinite, value.magnitude < 1e15 else { return "\(value)" }
    let hundredths = Int((value * 100).rounded())
    let whole = hundredths / 100, frac = hundredths % 100
    return frac == 0 ? "\(whole)" : "\(whole).\(frac < 10 ? "0" : "")\(frac)"
}

/// One line of `/proc/self/cgroup`: `hierarchy-id:controllers:path`.
struct CgroupMembership {
    let controllers: [String]
    let path: String
    let isV2: Bool

    static func parse(_ text: String) -> [CgroupMembership] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { return nil }
            let controllers = fields[1].split(separator: ",").map(String.init)
            return CgroupMembership(controllers: controllers, path: String(fields[2]),
                                    isV2: fields[0] == "0" && controllers.isEmpty)
        }
    }
}

extension Array where Element == CgroupMembership {
    /// The cgroup path for a v1 controller or for the v2 tree; "/" when the process file does not say.
    func path(version: Int, controller: String?) -> String {
        if version == 2 { return first(where: { $0.isV2 })?.path ?? "/" }
        return first(where: { m in controller.map { m.controllers.contains($0) } ?? false })?.path ?? "/"
    }
}

/// A cgroup filesystem mount from `/proc/self/mountinfo`.
struct CgroupMount {
    let version: Int
    let controllers: [String]
    /// The cgroup inside the hierarchy that is mounted (field 4 of mountinfo).
    let root: String
    let mountPoint: String

    static func parse(mountinfo: String) -> [CgroupMount] {
        mountinfo.split(separator: "\n").compactMap { line in
            let tokens = line.split(separator: " ").map(String.init)
            guard let dash = tokens.firstIndex(of: "-") else { return nil }
            let left = Array(tokens[..<dash]), right = Array(tokens[(dash + 1)...])
            guard left.count >= 5, right.count >= 3 else { return nil }
            let root = unescape(left[3]), point = unescape(left[4])
            switch right[0] {
            case "cgroup2":
                return CgroupMount(version: 2, controllers: [], root: root, mountPoint: point)
            case "cgroup":
                let options = right[2].split(separator: ",").map(String.init)
                return CgroupMount(version: 1, controllers: options, root: root, mountPoint: point)
            default:
                return nil
            }
        }
    }

    /// The usual layout when mountinfo cannot be read: v2 at /sys/fs/cgroup, or v1 controllers below it.
    static func conventional(reader: (String) -> String?) -> [CgroupMount] {
        if reader("/sys/fs/cgroup/cgroup.controllers") != nil {
            return [CgroupMount(version: 2, controllers: [], root: "/", mountPoint: "/sys/fs/cgroup")]
        }
        return [
            CgroupMount(version: 1, controllers: ["cpu", "cpuacct"], root: "/", mountPoint: "/sys/fs/cgroup/cpu"),
            CgroupMount(version: 1, controllers: ["cpuset"], root: "/", mountPoint: "/sys/fs/cgroup/cpuset"),
        ]
    }

    /// Directories of `cgroup` and each ancestor up to the mount point, leaf first.
    func directories(forCgroup cgroup: String) -> [String] {
        var relative = cgroup
        if root != "/" {
            if relative == root {
                relative = "/"
            } else if relative.hasPrefix(root + "/") {
                relative = String(relative.dropFirst(root.count))
            } else {
                // Cgroup namespace or a foreign root: the mount point is the process's own cgroup.
                relative = "/"
            }
        }
        var parts = relative.split(separator: "/").map(String.init)
        var result: [String] = []
        while true {
            let dir = parts.isEmpty ? mountPoint : mountPoint + "/" + parts.joined(separator: "/")
            result.append(dir)
            if parts.isEmpty { break }
            parts.removeLast()
        }
        return result
    }

    private static func unescape(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        var result = "", rest = Substring(text)
        while let slash = rest.firstIndex(of: "\\") {
            result += rest[..<slash]
            let code = rest[slash...].dropFirst().prefix(3)
            if code.count == 3, let byte = UInt8(code, radix: 8) {
                result.append(Character(Unicode.Scalar(byte)))
                rest = rest[slash...].dropFirst(4)
            } else {
                result.append("\\")
                rest = rest[slash...].dropFirst()
            }
        }
        return result + rest
    }
}
