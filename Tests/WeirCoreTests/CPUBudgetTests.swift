import Testing
@testable import WeirCore

/// Fake cgroup trees, as path -> file contents.
private func reader(_ files: [String: String]) -> (String) -> String? {
    { files[$0] }
}

private let v1Mountinfo = """
    31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
    32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
    34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
    """

private let v2Mountinfo = """
    25 21 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
    """

@Suite struct CPUListTests {
    @Test func parsesRangesAndSingles() {
        #expect(CPUList(parsing: "0-3,5,7-8\n")?.cpus == [0, 1, 2, 3, 5, 7, 8])
        #expect(CPUList(parsing: "0")?.count == 1)
        #expect(CPUList(parsing: "")?.count == 0)
        #expect(CPUList(parsing: "0-1,1")?.count == 2)
    }

    @Test func rejectsGarbage() {
        #expect(CPUList(parsing: "a-b") == nil)
        #expect(CPUList(parsing: "3-1") == nil)
        #expect(CPUList(parsing: "1--2") == nil)
    }
}

@Suite struct CPUBudgetTests {
    @Test func noLimitUsesHostCount() {
        let budget = CPUBudget.resolve(reader: reader([
            "/sys/devices/system/cpu/online": "0-7\n",
            "/proc/self/cgroup": "0::/\n",
            "/proc/self/mountinfo": v2Mountinfo,
            "/sys/fs/cgroup/cpu.max": "max 100000\n",
            "/sys/fs/cgroup/cpuset.cpus.effective": "0-7\n",
        ]))
        #expect(budget.usable == 8)
        #expect(budget.host == 8)
        #expect(budget.quota == nil)
        #expect(budget.limitedBy == "host")
    }

    @Test func v2QuotaRoundsUp() {
        let budget = CPUBudget.resolve(reader: reader([
            "/sys/devices/system/cpu/online": "0-63",
            "/proc/self/cgroup": "0::/kubepods/pod1/ctr\n",
            "/proc/self/mountinfo": v2Mountinfo,
            "/sys/fs/cgroup/kubepods/pod1/ctr/cpu.max": "250000 100000\n",
            "/sys/fs/cgroup/kubepods/pod1/cpu.max": "max 100000\n",
            "/sys/fs/cgroup/kubepods/cpu.max": "max 100000\n",
        ]))
        #expect(budget.quota == 2.5)
        #expect(budget.usable == 3)
        #expect(budget.host == 64)
        #expect(budget.quotaSource == "cgroup v2")
        #expect(budget.limitedBy == "cpu quota")
    }

    @Test func v2AncestorQuotaLimitsChild() {
        let budget = CPUBudget.resolve(reader: reader([
            "/sys/devices/system/cpu/online": "0-15",
            "/proc/self/cgroup": "0::/a/b\n",
            "/proc/self/mountinfo": v2Mountinfo,
            "/sys/fs/cgroup/a/b/cpu.max": "max 100000",
            "/sys/fs/cgroup/a/cpu.max": "100000 50000",
        ]))
        #expect(budget.usable == 2)
    }

    @Test func v2CpusetSmallerThanQuota() {
        let budget = CPUBudget.resolve(reader: reader([
            "/sys/devices/system/cpu/online": "0-15",
            "/proc/self/cgroup": "0::/svc\n",
            "/proc/self/mountinfo": v2Mountinfo,
            "/sys/fs/cgroup/svc/cpu.max": "800000 100000",
            "/sys/fs/cgroup/svc/cpuset.cpus.effective": "2-3",
        ]))
        #expect(budget.usable == 2)
        #expect(budget.cpuset == 2)
        #expect(budget.cpusetSource == "cgroup v2")
        #expect(budget.limitedBy == "cpuset")
    }

    @Test func v2CgroupNamespaceRootIsTheMount() {
        // Inside a container with its own cgroup namespace the process sees "/" and the mount is its cgroup.
        let budget = CPUBudget.resolve(reader: reader([
            "/sys/devices/system/cpu/online": "0-31",
            "/proc/self/cgroup": "0::/\n",
            "/proc/self/mountinfo": v2Mountinfo,
            "/sys/fs/cgroup/cpu.max": "150000 100000",
        ]))
        #expect(budget.usable == 2)
    }

    @Test func v1QuotaAndCpuset() {
        let budget = CPUBudget.resolve(reader: reader([
            "/sys/devices/system/cpu/online": "0-31",
            "/proc/self/cgroup": """
                12:cpuset:/kubepods/pod1
                4:cpu,cpuacct:/kubepods/pod1
                0::/
                """,
            "/proc/self/mountinfo": v1Mountinfo,
            "/sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/cpu.cfs_quota_us": "400000\n",
            "/sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/cpu.cfs_period_us": "100000\n",
            "/sys/fs/cgroup/cpu,cpuacct/kubepods/cpu.cfs_quota_us": "-1\n",
            "/sys/fs/cgroup/cpu,cpuacct/kubepods/cpu.cfs_period_us": "100000\n",
            "/sys/fs/cgroup/cpuset/kubepods/pod1/cpuset.cpus": "0-5\n",
        ]))
        #expect(budget.quota == 4)
        #expect(budget.quotaSource == "cgroup v1")
        #expect(budget.cpuset == 6)
        #expect(budget.usable == 4)
    }

    @Test func v1NoQuotaCpusetLimits() {
        let budget = CPUBudget.resolve(reader: reader([
            "/sys/devices/system/cpu/online": "0-31",
            "/proc/self/cgroup": "3:cpuset:/\n1:cpu:/\n0::/\n",
            "/proc/self/mountinfo": v1Mountinfo,
            "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1",
            "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000",
            "/sys/fs/cgroup/cpuset/cpuset.effective_cpus": "0,4,8",
            "/sys/fs/cgroup/cpuset/cpuset.cpus": "0-31",
        ]))
        #expect(budget.quota == nil)
        #expect(budget.cpuset == 3)
        #expect(budget.usable == 3)
        #expect(budget.cpusetSource == "cgroup v1")
    }

    @Test func hybridPrefersV1ControllersOverEmptyUnifiedTree() {
        // This machine's layout: v1 controllers plus an empty cgroup2 at /sys/fs/cgroup/unified.
        let budget = CPUBudget.resolve(reader: reader([
            "/sys/devices/system/cpu/online": "0-1",
            "/proc/self/cgroup": "3:cpuset:/\n1:cpu:/\n0::/\n",
            "/proc/self/mountinfo": v1Mountinfo,
            "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "50000",
            "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000",
            "/sys/fs/cgroup/unified/cpu.max": "max 100000",
        ]))
        #expect(budget.quota == 0.5)
        #expect(budget.usable == 1)
    }

    @Test func withoutMountinfoUsesConventionalLayout() {
        let v2 = CPUBudget.resolve(reader: reader([
            "/sys/devices/system/cpu/online": "0-3",
            "/sys/fs/cgroup/cgroup.controllers": "cpu cpuset",
            "/sys/fs/cgroup/cpu.max": "100000 100000",
        ]))
        #expect(v2.usable == 1)
        let v1 = CPUBudget.resolve(reader: reader([
            "/sys/devices/system/cpu/online": "0-3",
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "200000",
            "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000",
        ]))
        #expect(v1.usable == 2)
    }

    @Test func nothingReadableFallsBack() {
        #expect(CPUBudget.resolve(reader: { _ in nil }, hostFallback: 6).usable == 6)
        #expect(CPUBudget.resolve(reader: { _ in nil }).usable == 1)
    }

    @Test func tinyQuotaStillGivesOneCPU() {
        #expect(CPUBudget(host: 8, quota: 0.1, cpuset: nil).usable == 1)
        #expect(CPUBudget.parseCPUMax("max") == nil)
        #expect(CPUBudget.parseCPUMax("50000") == 0.5)
        #expect(CPUBudget.parseCFS(quota: "-1", period: "100000") == nil)
    }

    /// Found by `make fuzz` (target profile, Tests/Fuzz/regressions/profile/crash-d89f9cf…): a quota of more CPUs
    /// than Int holds trapped when rounded to whole CPUs.
    @Test func hugeOrInfiniteQuotaCountsAsTheHost() {
        let quota = CPUBudget.parseCPUMax("199999999223372036854775807")
        let budget = CPUBudget(host: 64, quota: quota, cpuset: nil)
        #expect(budget.usable == 64)
        #expect(budget.limitedBy == "host")
        #expect(budget.description.hasPrefix("64 usable CPUs (host 64, quota 1.99999999223372"))
        #expect(CPUBudget(host: 8, quota: .infinity, cpuset: 2).usable == 2)
        #expect(CPUBudget(host: 8, quota: .infinity, cpuset: nil).description.contains("quota inf"))
        #expect(CPUBudget(host: 8, quota: .nan, cpuset: nil).usable == 8)
        #expect(CPUBudget(host: 8, quota: 6.5, cpuset: nil).limitedBy == "cpu quota")
    }

    @Test func mountinfoUnescapesSpaces() {
        let mounts = CgroupMount.parse(mountinfo: "1 0 0:1 / /mnt/cg\\040x rw - cgroup2 cgroup2 rw")
        #expect(mounts.first?.mountPoint == "/mnt/cg x")
    }
}

@Suite struct ConntrackSizingTests {
    @Test func kubeProxyFormula() {
        let sizing = ConntrackSizing.kubeProxyDefaults
        #expect(sizing.maximum(cpus: 1) == 131_072)          // floor
        #expect(sizing.maximum(cpus: 8) == 262_144)          // 32768 x 8
        #expect(sizing.maximum(cpus: 64) == 1_048_576)       // capped
        #expect(ConntrackSizing.hashSize(forMaximum: 262_144) == 65_536)
    }
}
