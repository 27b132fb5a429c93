import CWeirLinux
import Glibc

/// Signals are taken synchronously: block them in the main thread before it starts any other (threads inherit the
/// mask), then wait for them (or read them from a `SignalQueue` in a poll loop, as the agent does).
public enum Signals {
    /// The signals weir acts on, for callers that do not import Glibc.
    public static let SIGTERM = Glibc.SIGTERM, SIGINT = Glibc.SIGINT, SIGHUP = Glibc.SIGHUP

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

/// SIGTERM, SIGINT and SIGHUP as a readable descriptor (a non-blocking signalfd), so that one poll waits for signals
/// and descriptors together. Block the signals first (`Signals.block()`), or they are delivered the usual way.
public final class SignalQueue {
    public let descriptor: Descriptor

    public init() throws {
        descriptor = try Descriptor.opened("signalfd") { weir_signalfd() }
    }

    /// The next queued signal, or nil when none is queued.
    public func next() -> Int32? {
        let signal = weir_signalfd_read(descriptor.rawValue)
        return signal == 0 ? nil : signal
    }
}
