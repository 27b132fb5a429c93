/// How much a log line matters, with syslog's numbers: journald reads a `<N>` prefix on a line of a service's stderr
/// as the line's priority (SyslogLevelPrefix=, on by default), so `journalctl -p warning` shows what needs a look.
public enum LogLevel: Int, Sendable {
    case error = 3
    case warning = 4
    case notice = 5
    case info = 6
    case debug = 7
}

extension EventLine {
    /// The level of an event line, by its event name. Errors: weir itself could not do its job (a worker, the
    /// admin loop, reconcile, the clean-up). Warnings: something is wrong but weir goes on (one connection failed, a
    /// reload was refused, the watchdog is withheld, a degraded mode). Notices: weir changed the node to repair drift.
    /// Everything else is info.
    public static func level(of event: String) -> LogLevel {
        switch event {
        case "worker_failed", "reconcile_failed", "cleanup_failed", "accept_failed", "bind_failed",
             "epoll_add_failed":
            return .error
        case "warning", "reload_failed", "watchdog_withheld", "accept_paused", "connect_failed", "connect_timeout",
             "not_redirected", "conntrack_delete_failed":
            return .warning
        case "reconcile_repaired", "watchdog_resumed":
            return .notice
        default:
            return event.hasSuffix("_failed") ? .error : .info
        }
    }
}
