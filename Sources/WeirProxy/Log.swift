import WeirCore
import WeirSystem

/// One line per event on standard error: `weir proxy: event=name key=value ...`; under journald with the event's
/// priority (`EventLine.level`).
func log(_ event: String, _ fields: KeyValuePairs<String, CustomStringConvertible> = [:], suppressed: Int = 0) {
    var line = EventLine.format("weir proxy", event, fields)
    if suppressed > 0 { line += " suppressed=\(suppressed)" }
    JournalStream.writeLine(line, priority: EventLine.level(of: event).rawValue)
}

/// Limits per-connection event lines (connect_failed, not_redirected, ...) of one worker so that a failure storm, an
/// upstream down or a scan of the capture ports, cannot flood journald: at most `perSecond` lines of each event per
/// second; the next line that passes carries `suppressed=N`, the lines left out meanwhile. The counters still count
/// every event. One per worker thread, so no lock.
final class EventLogLimiter {
    private let perSecond: Int
    private let clockMs: () -> Int64
    private var second: Int64 = -1
    private var printed: [String: Int] = [:]
    private var suppressed: [String: Int] = [:]

    init(perSecond: Int = 10, clockMs: @escaping () -> Int64 = { Clock.nowMs() }) {
        self.perSecond = perSecond
        self.clockMs = clockMs
    }

    func log(_ event: String, _ fields: KeyValuePairs<String, CustomStringConvertible>) {
        let now = clockMs() / 1000
        if now != second {
            second = now
            printed.removeAll(keepingCapacity: true)
        }
        let n = printed[event, default: 0]
        guard n < perSecond else {
            suppressed[event, default: 0] += 1
            return
        }
        printed[event] = n + 1
        WeirProxy.log(event, fields, suppressed: suppressed.removeValue(forKey: event) ?? 0)
    }
}
