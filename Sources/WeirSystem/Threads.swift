import CWeirLinux
import Glibc

/// A started thread, for `joinThread` or `detachThread` (exactly one of them, once).
public typealias ThreadID = pthread_t

/// Waits until the thread has ended and releases it.
public func joinThread(_ thread: ThreadID) { _ = pthread_join(thread, nil) }

/// Lets the thread release itself when it ends (nobody waits for it).
public func detachThread(_ thread: ThreadID) { _ = pthread_detach(thread) }

/// A closure to run on a new thread, handed through pthread_create's single pointer.
private final class ThreadBody {
    let name: String
    let run: () -> Void
    init(_ name: String, _ run: @escaping () -> Void) {
        self.name = name
        self.run = run
    }
}

/// Starts a joinable POSIX thread with the given stack size and name (the name shows in `top -H` and
/// /proc/PID/task/TID/comm; at most 15 bytes). pthread directly, not Foundation's Thread: the agent links no
/// Foundation, which keeps its idle memory under 10 MB.
public func startThread(name: String, stackSize: Int, _ body: @escaping () -> Void) throws -> ThreadID {
    var tid = pthread_t()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setstacksize(&attributes, stackSize)
    let box = Unmanaged.passRetained(ThreadBody(String(name.prefix(15)), body)).toOpaque()
    let rc = pthread_create(&tid, &attributes, { arg in
        let body = Unmanaged<ThreadBody>.fromOpaque(arg!).takeRetainedValue()
        weir_name_this_thread(body.name)
        body.run()
        return nil
    }, box)
    guard rc == 0 else {
        Unmanaged<ThreadBody>.fromOpaque(box).release()
        throw ThreadStartError(description: "pthread_create: \(errnoName(rc))")
    }
    return tid
}

/// A thread could not be started (pthread_create failed).
public struct ThreadStartError: Error, CustomStringConvertible {
    public let description: String
}

/// Sleeps the calling thread.
public func sleepMilliseconds(_ ms: Int) { _ = usleep(useconds_t(ms * 1000)) }

/// Sockets the calling thread creates from now on are owned by `uid`/`gid` (setfsuid/setfsgid for this thread only:
/// what nftables' skuid and skgid match). False when the kernel refused (not root, not that user).
public func setThreadFileSystemIDs(uid: UInt32, gid: UInt32) -> Bool { weir_set_thread_fs_ids(uid, gid) == 0 }
