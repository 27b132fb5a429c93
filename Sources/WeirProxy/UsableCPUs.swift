import CWeirLinux

/// CPUs this process may run on, from its affinity mask (sched_getaffinity): the worker count for `--workers 0`.
///
/// The lead plugs WeirCore's `CPUBudget` (cgroup v1/v2 CPU quota and cpuset) in here: return
/// `min(affinity, budget)`, so a container limited to 1.5 CPUs on a 64-core host runs 2 workers, not 64.
public func usableCPUs() -> Int {
    Int(weir_affinity_cpus())
}
