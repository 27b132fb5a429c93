import CWeirLinux
import Glibc

/// The process-wide calls every layer needs (clocks, the environment, standard streams, exit), so that only
/// WeirSystem imports Glibc and CWeirLinux (the import check in `make test`).
public enum Clock {
    /// CLOCK_MONOTONIC in milliseconds: deadlines and intervals (never goes back, stops when the machine sleeps).
    @inline(__always) public static func nowMs() -> Int64 { weir_now_ms() }
    /// CLOCK_MONOTONIC in microseconds.
    @inline(__always) public static func nowUs() -> Int64 { weir_now_us() }
    /// CLOCK_REALTIME in seconds since the epoch: timestamps people read (metrics, status).
    @inline(__always) public static func wallSeconds() -> Int64 { weir_wall_seconds() }
    /// Sleeps the calling thread for `ms` milliseconds.
    public static func sleepMs(_ ms: Int) { usleep(useconds_t(max(0, ms)) * 1000) }
}

public enum ProcessEnvironment {
    /// A variable of this process's environment, or nil when unset.
    public static func get(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }

    public static var pid: Int32 { getpid() }
    public static var effectiveUID: UInt32 { geteuid() }
    public static var isRoot: Bool { geteuid() == 0 }

    /// Flushes standard output (lines printed before a long wait, or before handing the terminal to systemd).
    public static func flushStandardOutput() { fflush(stdout) }

    /// Writes `text` to standard error as it is (no newline added).
    public static func writeStandardError(_ text: String) { fputs(text, stderr) }

    /// Ends the process with `code`, flushing standard output first.
    public static func exit(_ code: Int32) -> Never {
        fflush(stdout)
        Glibc.exit(code)
    }
}

// The whole environment (istio's flags have variables), the user and group databases (`-u`,
// `--outbound-owner-groups` take names), raw writes to standard output, standard error and `--log_target` files, and
// the process's limits.
extension ProcessEnvironment {
    /// Every variable of the process environment.
    public static var all: [String: String] {
        var out: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let eq = text.utf8.firstIndex(of: UInt8(ascii: "=")) {
                // The first setting of a name wins, as getenv finds it.
                let name = String(text[..<eq])
                if out[name] == nil { out[name] = String(text[text.utf8.index(after: eq)...]) }
            }
            entry += 1
        }
        return out
    }

    /// The UID of user `name`, or nil when the user database does not know it.
    public static func userID(named name: String) -> UInt32? { getpwnam(name).map { $0.pointee.pw_uid } }

    /// The GID of group `name`, or nil when the group database does not know it.
    public static func groupID(named name: String) -> UInt32? { getgrnam(name).map { $0.pointee.gr_gid } }

    /// Writes `text` to standard output and flushes it, so lines interleave with other writers in order.
    public static func writeStandardOutput(_ text: String) {
        fputs(text, stdout)
        fflush(stdout)
    }

    /// Writes `bytes` to standard error as they are: a NUL does not cut them short, as it would `fputs`.
    public static func writeStandardError(bytes: [UInt8]) {
        _ = bytes.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, stderr) }
    }

    /// Appends `text` to the file at `path`, creating it; false when the file cannot be opened.
    public static func append(_ text: String, toFile path: String) -> Bool {
        guard let file = fopen(path, "a") else { return false }
        fputs(text, file)
        fclose(file)
        return true
    }

    public static var effectiveGID: UInt32 { getegid() }

}

/// Facts about the machine and this process's limits, for metrics and worker counts.
public enum SystemInfo {
    /// Clock ticks per second (`/proc/PID/stat` counts CPU time in them).
    public static var clockTicksPerSecond: Int { sysconf(Int32(_SC_CLK_TCK)) }
    public static var pageSize: Int { sysconf(Int32(_SC_PAGESIZE)) }
    /// CPUs online now (not the process's budget: see `CPUBudget`).
    public static var onlineCPUs: Int { sysconf(Int32(_SC_NPROCESSORS_ONLN)) }
    /// CPUs this process may run on, from its affinity mask (sched_getaffinity), at least 1. `--workers 0` caps this
    /// with WeirCore's `CPUBudget` (cgroup CPU quota and cpuset) where the command computes the worker count, so a
    /// container limited to 1.5 CPUs on a 64-core host runs 2 workers, not 64.
    public static var usableCPUs: Int { Int(weir_affinity_cpus()) }

    /// The soft RLIMIT_NOFILE: how many descriptors this process may hold open; nil if it cannot be read.
    public static var openFilesLimit: Int? { descriptorLimits().map { Int(clamping: $0.rlim_cur) } }

    /// Raises the soft RLIMIT_NOFILE to the hard limit, as HAProxy does; returns the limit in force (1024 when the
    /// limits cannot be read).
    public static func raiseDescriptorLimit() -> Int {
        guard var limit = descriptorLimits() else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return descriptorLimits().map { Int(clamping: $0.rlim_cur) } ?? 1024
    }

    private static func descriptorLimits() -> rlimit? {
        var limit = rlimit()
        return getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 ? limit : nil
    }
}

/// The version and git commit compiled into the binary (the C target takes them from the build's defines).
public enum BuildStamp {
    public static let version = String(cString: weir_build_version())
    public static let commit = String(cString: weir_build_commit())
}

/// Running another program to completion (what systemd is doing with this unit; what handover version the installed
/// binary speaks).
public enum Subprocess {
    /// Runs `arguments[0]` (a path) with `arguments`; its standard output (at most 64 KiB), or nil when it could not
    /// run, timed out (then it is killed, by its pid) or did not exit 0.
    public static func output(_ arguments: [String], timeoutMs: Int = 5000) -> String? {
        var cArgs = arguments.map { strdup($0) }
        cArgs.append(nil)
        defer { for a in cArgs { free(a) } }
        var buffer = [CChar](repeating: 0, count: 1 << 16)
        let status = cArgs.withUnsafeMutableBufferPointer { argv in
            weir_run_program(argv.baseAddress, &buffer, buffer.count, Int32(timeoutMs))
        }
        guard status == 0 else { return nil }
        return String(cString: buffer)
    }
}
