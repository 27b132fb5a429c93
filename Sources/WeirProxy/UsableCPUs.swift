import WeirSystem
/// CPUs this process may run on, from its affinity mask (sched_getaffinity).
///
/// `--workers 0` caps this with WeirCore's `CPUBudget` (cgroup v1/v2 CPU quota and cpuset) where the command
/// computes the worker count, so a container limited to 1.5 CPUs on a 64-core host runs 2 workers, not 64.
public func usableCPUs() -> Int {
    ProcessEnvironment.usableCPUs
}
