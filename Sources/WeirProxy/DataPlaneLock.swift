import WeirSystem

/// One weir data plane per network namespace. Two proxies on the same capture ports would share them through
/// SO_REUSEPORT and split the connections between them, so the second one refuses to start instead.
///
/// The lock is an abstract unix socket, `@weir/dataplane`: abstract names belong to the network namespace, and the
/// kernel drops the name with the process, so a `kill -9` never leaves a stale lock behind.
public final class DataPlaneLock {
    private let descriptor: Descriptor

    private init(_ descriptor: Descriptor) { self.descriptor = descriptor }

    public static let name = "weir/dataplane"

    /// Takes the lock, or throws naming the process that holds it.
    public static func acquire() throws -> DataPlaneLock {
        let outcome: AbstractLock.Outcome
        do { outcome = try AbstractLock.acquire(name) } catch let e as SystemError {
            throw ProxyStartError(description: "data plane lock @\(name): \(errnoName(e.errno))")
        }
        switch outcome {
        case .held(let descriptor):
            return DataPlaneLock(descriptor)
        case .busy(let holder):
            let who = holder > 0 ? "pid \(holder) (\(commandLine(of: holder)))" : "another process"
            throw ProxyStartError(description: "another weir data plane runs in this network namespace: \(who) holds "
                                  + "@\(name); stop it first, one data plane per namespace")
        }
    }

    /// `/proc/PID/cmdline` with spaces between arguments, at most 100 characters.
    static func commandLine(of pid: Int32) -> String {
        guard case .success(let bytes) = readSmallFile("/proc/\(pid)/cmdline", limit: 1 << 20) else { return "unknown" }
        let text = String(decoding: bytes.prefix(256).map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        var s = Substring(text)
        while s.last == " " { s.removeLast() }
        return String(s.prefix(100))
    }
}
