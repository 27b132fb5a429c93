import Testing
import WeirCore

/// The journald priority of each kind of event line.
struct LogLevelTests {
    @Test func levelsByEvent() {
        #expect(EventLine.level(of: "ready") == .info)
        #expect(EventLine.level(of: "reloaded") == .info)
        #expect(EventLine.level(of: "reload_failed") == .warning)
        #expect(EventLine.level(of: "warning") == .warning)
        #expect(EventLine.level(of: "connect_failed") == .warning)
        #expect(EventLine.level(of: "reconcile_repaired") == .notice)
        #expect(EventLine.level(of: "worker_failed") == .error)
        #expect(EventLine.level(of: "reconcile_failed") == .error)
        // A new *_failed event is an error until it is classified.
        #expect(EventLine.level(of: "something_failed") == .error)
        #expect(LogLevel.error.rawValue == 3 && LogLevel.warning.rawValue == 4 && LogLevel.info.rawValue == 6)
    }
}
