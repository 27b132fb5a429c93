import WeirSystem

/// One weir data plane per network namespace. Two proxies on the same capture ports would share them through
/// SO_REUSEPORT and split the connections between them, so the second one refuses to start instead.
///
/// The lock is an exclusive `flock` on `/run/weir/dataplane-<device>-<inode>.lock`, named after the namespace's nsfs
/// identity (so each namespace has its own, whatever path it was entered by). It is always there, whatever
/// `--run-dir` an agent was given: the lock belongs to the namespace, and two agents with different run directories
/// in one namespace must still exclude each other. The run directory is root's and 0700:
/// no other user can create, open or hold the file, so nobody can squat the lock to keep weir from starting (an
/// abstract unix socket, which any local user may bind, could be). The kernel drops the lock with the process, so a
/// `kill -9` leaves nothing stale; the file holds the holder's pid, for the message.
public final class DataPlaneLock {
    private let descriptor: Descriptor
    public let path: String

    private init(_ descriptor: Descriptor, path: String) {
        self.descriptor = descriptor
        self.path = path
    }

    /// The file goes with the lock: namespaces come and go, their lock files should not pile up.
    deinit { FileSystem.unlockRemoving(path, descriptor) }

    /// Where weir keeps its locks and sockets when nothing else is said (`--run-dir`): `/run/weir` for root;
    /// `/tmp/weir-UID` for a `weir proxy` started as another user (the proxy user itself), which can squat nothing
    /// of root's.
    public static var defaultRunDirectory: String {
        ProcessEnvironment.isRoot ? "/run/weir" : "/tmp/weir-\(ProcessEnvironment.effectiveUID)"
    }

    /// Takes the lock of the calling thread's network namespace, or throws naming the process that holds it.
    public static func acquire() throws -> DataPlaneLock {
        let runDirectory = defaultRunDirectory
        let identity: NetworkNamespace.Identity
        do {
            guard let id = try NetworkNamespace.Handle.current().identity else {
                throw ProxyStartError(description: "data plane lock: the network namespace has no identity")
            }
            identity = id
            try ensureRunDirectory(runDirectory)
        } catch let e as SystemError {
            throw ProxyStartError(description: "data plane lock in \(runDirectory): \(e)")
        }
        let path = "\(runDirectory)/dataplane-\(identity.device)-\(identity.inode).lock"
        let held: Descriptor?
        do { held = try FileSystem.lockExclusively(path) } catch let e as SystemError {
            throw ProxyStartError(description: "data plane lock \(path): \(e)")
        }
        guard let held else {
            let holder = holderPID(path)
            let who = holder > 0 ? "pid \(holder) (\(commandLine(of: holder)))" : "another process"
            throw ProxyStartError(description: "another weir data plane runs in this network namespace: \(who) holds "
                                  + "\(path); stop it first, one data plane per namespace (or take it over: "
                                  + "weir run --takeover)")
        }
        _ = try? FileSystem.replaceContents(of: held, with: Array("\(ProcessEnvironment.pid)\n".utf8))
        return DataPlaneLock(held, path: path)
    }

    /// The run directory, created 0700 if missing; refused when it is not a directory of this user's (root's, for
    /// the agent) that no one else may write (anyone else could then take or block the locks in it).
    public static func ensureRunDirectory(_ path: String) throws {
        if !FileSystem.exists(path) {
            do { try FileSystem.makeDirectory(path, permissions: 0o700) } catch let e as SystemError
                where e.errno == Errno.EEXIST {}
        }
        let status = try FileStatus(path: path, followLinks: false)
        guard status.kind == .directory, status.owner == ProcessEnvironment.effectiveUID,
              status.permissions & 0o022 == 0 else {
            throw SystemError("\(path) must be a directory of uid \(ProcessEnvironment.effectiveUID)'s that no one else "
                              + "may write", errno: Errno.EPERM)
        }
    }

    public static func holderPID(_ path: String) -> Int32 {
        guard case .success(let bytes) = readSmallFile(path, limit: 64) else { return 0 }
        return Int32(String(decoding: bytes.prefix { $0 != 10 }, as: UTF8.self)) ?? 0
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
