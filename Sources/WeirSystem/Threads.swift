import CWeirLinux
import Glibc
import Synchronization

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

/// Runs `work(i)` for every `i` in `0..<count` on up to `threads` new threads and returns at once; `done` runs once
/// every item is done, on the thread that finished last. For slow work a caller need not wait for (a walk of the
/// kernel's conntrack hash per pod namespace). When no thread can start, everything runs on the calling thread first.
public func runInBackground(_ count: Int, threads: Int, name: String, _ work: @escaping (Int) -> Void,
                            done: @escaping () -> Void) {
    let queue = WorkQueue(count)
    let planned = max(1, min(threads, count))
    queue.running.withLock { $0 = planned }
    var started = 0
    for n in 0..<planned {
        let body = { queue.drain(work); if queue.running.withLock({ $0 -= 1; return $0 }) == 0 { done() } }
        guard let t = try? startThread(name: "\(name)-\(n)", stackSize: 256 * 1024, body) else { break }
        detachThread(t)
        started += 1
    }
    if started == 0 {
        queue.drain(work)
        done()
    } else if started < planned {
        // Threads that did not start will not count down.
        if queue.running.withLock({ $0 -= planned - started; return $0 }) == 0 { done() }
    }
}

/// `runInBackground`'s shared state: the next item to take, and the threads still working.
private final class WorkQueue: Sendable {
    private let next = Mutex(0)
    let running = Mutex(0)
    private let count: Int

    init(_ count: Int) { self.count = count }

    /// Takes items until none is left.
    func drain(_ work: (Int) -> Void) {
        while true {
            let i = next.withLock { n -> Int in
                defer { n += 1 }
                return n
            }
            guard i < count else { return }
            work(i)
        }
    }
}

/// Sleeps the calling thread.
public func sleepMilliseconds(_ ms: Int) { _ = usleep(useconds_t(ms * 1000)) }

/// Sockets the calling thread creates from now on are owned by `uid`/`gid` (setfsuid/setfsgid for this thread only:
/// what nftables' skuid and skgid match). False when the kernel refused (not root, not that user).
public func setThreadFileSystemIDs(uid: UInt32, gid: UInt32) -> Bool { weir_set_thread_fs_ids(uid, gid) == 0 }
