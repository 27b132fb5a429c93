import CWeirLinux
import Glibc
import WeirSystem

/// One weir data plane per network namespace. Two proxies on the same capture ports would share them through
/// SO_REUSEPORT and split the connections between them, so the second one refuses to start instead.
///
/// The lock is an abstract unix socket, `@weir/dataplane`: abstract names belong to the network namespace, and the
/// kernel drops the name with the process, so a `kill -9` never leaves a stale lock behind.
public final class DataPlaneLock {
    private let fd: Int32

    private init(fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    public static let name = "weir/dataplane"

    /// Takes the lock, or throws naming the process that holds it.
    public static func acquire() throws -> DataPlaneLock {
        var holder: Int32 = 0
        let fd = weir_dataplane_lock(name, &holder)
        if fd >= 0 { return DataPlaneLock(fd: fd) }
        let e = errno
        guard e == EADDRINUSE else {
            throw ProxyStartError(description: "data plane lock @\(name): \(errnoName(e))")
        }
        let who = holder > 0 ? "pid \(holder) (\(commandLine(of: holder)))" : "another process"
        throw ProxyStartError(description: "another weir data plane runs in this network namespace: \(who) holds "
                              + "@\(name); stop it first, one data plane per namespace")
    }

    /// `/proc/PID/cmdline` with spaces between arguments, at most 100 characters.
    static func commandLine(of pid: Int32) -> String {
        guard let f = fopen("/proc/\(pid)/cmdline", "r") else { return "unknown" }
        defer { fclose(f) }
        var bytes = [UInt8](repeating: 0, count: 256)
        let n = fread(&bytes, 1, bytes.count, f)
        let text = String(decoding: bytes[0..<n].map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        var s = Substring(text)
        while s.last == " " { s.removeLast() }
        return String(s.prefix(100))
    }
}
