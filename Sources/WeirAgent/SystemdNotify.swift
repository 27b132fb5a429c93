import WeirSystem

/// sd_notify(3) without libsystemd: one datagram to `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace).
/// Does nothing when weir does not run under systemd with `Type=notify`.
public enum SystemdNotify {
    @discardableResult
    public static func send(_ state: String) -> Bool {
        guard let socket = ProcessEnvironment.get("NOTIFY_SOCKET") else { return false }
        var path = Array(socket.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }
        return UnixDatagram.send(Array(state.utf8), to: path)
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (CLOCK_MONOTONIC in microseconds, as sd_notify(3) asks for it): the unit
    /// shows "reloading" until the next `READY=1`.
    @discardableResult
    public static func reloading() -> Bool {
        send("RELOADING=1\nMONOTONIC_USEC=\(monotonicMicroseconds())\nSTATUS=reloading")
    }

    /// CLOCK_MONOTONIC in microseconds, the clock systemd compares `MONOTONIC_USEC=` with.
    public static func monotonicMicroseconds() -> UInt64 { UInt64(Clock.nowUs()) }
}
