import CWeirLinux
import Glibc

/// Signals are taken synchronously: block them in the main thread before it starts any other (threads inherit the
/// mask), then wait for them (or read them from a signalfd in a poll loop, as the agent does).
public enum Signals {
    /// Blocks SIGTERM, SIGINT, SIGHUP and SIGPIPE in the calling thread.
    public static func block() { _ = weir_block_signals() }

    /// Waits up to `timeoutMs` (-1: forever) for SIGTERM, SIGINT or SIGHUP; 0 on timeout.
    public static func wait(timeoutMs: Int32) -> Int32 { weir_wait_signal(timeoutMs) }

    /// Waits for SIGTERM or SIGINT (a SIGHUP meanwhile is taken and ignored); returns the signal.
    public static func waitForTermination() -> Int32 {
        while true {
            let s = wait(timeoutMs: -1)
            if s == SIGTERM || s == SIGINT { return s }
        }
    }
}
