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
