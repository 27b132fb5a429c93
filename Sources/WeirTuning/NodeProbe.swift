import WeirCore
import WeirSystem

/// Facts about the node read from /proc and /sys (below the same injectable root as `SysctlFiles`).
public struct NodeProbe: Sendable {
    public let files: SysctlFiles

    public init(files: SysctlFiles = SysctlFiles()) {
        self.files = files
    }

    /// True when this process runs in the initial network namespace.
    ///
    /// Two signs, either of which means "not initial": `/proc/self/ns/net` differs from `/proc/1/ns/net` (inside
    /// `ip netns exec` pid 1 is still the host's init), or `/proc/sys/net/core/netdev_max_backlog` is missing (the
    /// kernel registers that global key only in the initial namespace, so the test also works in a container whose
    /// pid 1 shares its network namespace).
    public func isInitialNetworkNamespace() -> Bool {
        if !files.exists("/proc/sys/net/core/netdev_max_backlog") { return false }
        if let mine = FileSystem.readLink(files.location("/proc/self/ns/net")),
           let init1 = FileSystem.readLink(files.location("/proc/1/ns/net")), mine != init1 {
            return false
        }
        return true
    }

    /// Kernel modules weir cares about that are loaded or built in. A module counts when `/sys/module/NAME` exists
    /// (loaded or built in with parameters) or, for nf_conntrack, when its sysctls exist.
    public func loadedModules() -> Set<String> {
        var result = Set<String>()
        if files.exists("/sys/module/nf_conntrack") || files.exists("/proc/sys/net/netfilter/nf_conntrack_max") {
            result.insert("nf_conntrack")
        }
        return result
    }

    /// The CPU budget of this process (see `CPUBudget`), from the real cgroup files below the root.
    public func cpuBudget() -> CPUBudget {
        let fallback = files.root.isEmpty ? max(SystemInfo.onlineCPUs, 1) : 1
        return CPUBudget.resolve(reader: { files.read($0) }, hostFallback: fallback)
    }

    /// The environment a tuning plan needs.
    public func environment() -> TuneEnvironment {
        TuneEnvironment(initialNetworkNamespace: isInitialNetworkNamespace(), loadedModules: loadedModules(),
                        cpu: cpuBudget())
    }
}

extension CPUBudget {
    /// The CPU budget of the current process from the real /proc and /sys/fs/cgroup files. The proxy calls this
    /// for its worker count.
    public static func current() -> CPUBudget {
        NodeProbe().cpuBudget()
    }
}
