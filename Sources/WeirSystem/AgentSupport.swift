import CWeirLinux
import Glibc

// The kernel doors the agent's control loop and its status need: a wake-up event, a poll over a few descriptors,
// sd_notify's datagram, process limits, build identity. Control path only: nothing here runs per connection.

/// An eventfd another thread writes to wake a poll loop (the admin thread asks the agent's loop to reconcile).
public final class WakeEvent: @unchecked Sendable {
    public let descriptor: Descriptor

    public init() throws {
        descriptor = try Descriptor.opened("eventfd") { weir_eventfd() }
    }

    /// Makes the descriptor readable. Never blocks: a counter at its limit already wakes the loop.
    public func signal() {
        var one: UInt64 = 1
        _ = Glibc.write(descriptor.rawValue, &one, 8)
    }

    /// Takes every pending wake-up, so the descriptor is not readable again until the next `signal()`.
    public func drain() {
        var value: UInt64 = 0
        _ = Glibc.read(descriptor.rawValue, &value, 8)
    }
}

/// poll(2) over a fixed list of descriptors, waiting for input: few descriptors, a loop that wakes at most a few
/// times a second (the agent's main loop), where an epoll set would be more code for nothing.
public struct PollSet {
    private var entries: [pollfd]

    public init(_ descriptors: [Int32]) {
        entries = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
    }

    /// Waits until a descriptor is readable, a signal interrupts, or `timeoutMs` (clamped to 0...Int32.max) passes.
    /// An interrupted or failed wait is a wake-up like any other: the caller looks at its clock and descriptors.
    public mutating func wait(timeoutMs: Int64) {
        let timeout = Int32(clamping: max(0, timeoutMs))
        if poll(&entries, nfds_t(entries.count), timeout) < 0 {
            for i in entries.indices { entries[i].revents = 0 }
        }
    }

    /// Whether the descriptor at `index` (in the order given to `init`) had an event in the last `wait`.
    public func isReady(_ index: Int) -> Bool { entries[index].revents != 0 }
}

/// A datagram socket of the AF_UNIX family, for one message to a path (sd_notify(3)'s `$NOTIFY_SOCKET`).
public enum UnixDatagram {
    /// Sends `message` to `path` (a leading 0 byte: the abstract namespace); true when all of it was sent.
    public static func send(_ message: [UInt8], to path: [UInt8]) -> Bool {
        var address = sockaddr_un()
        guard !path.isEmpty, path.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        guard let socket = try? Descriptor.opened("socket", {
            Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }) else { return false }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in path.enumerated() { raw[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
        let sent = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { addr in
                message.withUnsafeBytes {
                    sendto(socket.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), addr, length)
                }
            }
        }
        return sent == message.count
    }
}

/// Facts about the machine and this process's limits, for metrics and worker counts.
public enum SystemInfo {
    /// Clock ticks per second (`/proc/PID/stat` counts CPU time in them).
    public static var clockTicksPerSecond: Int { sysconf(Int32(_SC_CLK_TCK)) }
    public static var pageSize: Int { sysconf(Int32(_SC_PAGESIZE)) }
    /// CPUs online now (not the process's budget: see `CPUBudget`).
    public static var onlineCPUs: Int { sysconf(Int32(_SC_NPROCESSORS_ONLN)) }
    /// The soft RLIMIT_NOFILE: how many descriptors this process may hold open; nil if it cannot be read.
    public static var openFilesLimit: Int? {
        var limit = rlimit()
        return getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 ? Int(clamping: limit.rlim_cur) : nil
    }
}

/// The version and git commit compiled into the binary (the C target takes them from the build's defines).
public enum BuildStamp {
    public static let version = String(cString: weir_build_version())
    public static let commit = String(cString: weir_build_commit())
}
