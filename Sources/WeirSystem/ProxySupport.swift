import CWeirLinux
import Glibc

// Process, thread and socket facilities the proxy (WeirProxy) and the admin server need beyond `Socket`, `Poller`
// and the data path's calls (SocketIO.swift), so that neither imports Glibc or CWeirLinux.

/// Atomics on plain 64-bit words in memory the caller allocated (the proxy's per-worker counter blocks and
/// heartbeats): weir's one style, as `AtomicWord` (relaxed adds, acquire loads, release stores).
public enum AtomicWords {
    /// Adds and returns the new value.
    @inlinable @inline(__always) @discardableResult
    public static func add(_ word: UnsafeMutablePointer<Int64>, _ value: Int64) -> Int64 { weir_atomic_add(word, value) }
    @inlinable @inline(__always)
    public static func load(_ word: UnsafeMutablePointer<Int64>) -> Int64 { weir_atomic_load(word) }
    @inlinable @inline(__always)
    public static func store(_ word: UnsafeMutablePointer<Int64>, _ value: Int64) { weir_atomic_store(word, value) }
}

/// malloc: nil when memory ran out, where `UnsafeMutableRawPointer.allocate` would stop the process (the proxy's copy
/// buffers: a connection that cannot get one is reset, the others go on). Free with `freeAllocation`.
@inlinable @inline(__always)
public func tryAllocate(byteCount: Int) -> UnsafeMutableRawPointer? { malloc(byteCount) }

@inlinable @inline(__always)
public func freeAllocation(_ pointer: UnsafeMutableRawPointer) { free(pointer) }

/// Sleeps the calling thread.
public func sleepMilliseconds(_ ms: Int) { _ = usleep(useconds_t(ms * 1000)) }

/// A thread started with `startThread`.
public typealias ThreadHandle = pthread_t

/// Waits for a thread to end.
public func joinThread(_ thread: ThreadHandle) { _ = pthread_join(thread, nil) }

/// Lets a thread end on its own: nobody joins it.
public func detachThread(_ thread: ThreadHandle) { _ = pthread_detach(thread) }

/// Sockets the calling thread creates from now on are owned by `uid`/`gid` (setfsuid/setfsgid for this thread only:
/// what nftables' skuid and skgid match). False when the kernel refused (not root, not that user).
public func setThreadFileSystemIDs(uid: UInt32, gid: UInt32) -> Bool { weir_set_thread_fs_ids(uid, gid) == 0 }

extension ProcessEnvironment {
    public static var groupID: UInt32 { getegid() }

    /// CPUs this process may run on (its affinity mask), at least 1.
    public static var usableCPUs: Int { Int(weir_affinity_cpus()) }

    /// Raises the soft RLIMIT_NOFILE to the hard limit, as HAProxy does; returns the limit in force.
    public static func raiseDescriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return Int(clamping: limit.rlim_cur)
    }
}

extension Signals {
    public static let terminate = SIGTERM, interrupt = SIGINT, hangUp = SIGHUP
}

extension Descriptor {
    /// A second descriptor of the same open file (F_DUPFD_CLOEXEC): it keeps the file open until it is closed too.
    public func duplicate() throws -> Descriptor {
        try Descriptor.opened("fcntl(F_DUPFD_CLOEXEC)") { fcntl(rawValue, F_DUPFD_CLOEXEC, 0) }
    }
}

/// The accept queue of a listening socket, read from the socket itself.
public struct ListenQueue: Equatable {
    /// Connections whose handshake completed, waiting for accept() (TCP_INFO tcpi_unacked).
    public let length: Int
    /// The queue's limit, the backlog (tcpi_sacked).
    public let limit: Int
    /// Connections the listener dropped: a full queue, or a SYN it could not answer (SO_MEMINFO drops).
    public let drops: Int64

    /// Nil when `fd` is not a listening TCP socket (or was closed).
    public init?(of fd: Int32) {
        var length: UInt32 = 0, limit: UInt32 = 0
        guard weir_listen_queue(fd, &length, &limit) == 0 else { return nil }
        self.length = Int(length)
        self.limit = Int(limit)
        drops = max(0, weir_socket_drops(fd))
    }
}

/// net.core.somaxconn of this network namespace: the largest backlog listen() grants (4096 when unreadable). Read
/// into a few bytes on the stack: `readSmallFile`'s 64 KiB buffer would stay resident in the heap of a proxy that
/// reads nothing else that large.
public func maximumListenBacklog() -> Int32 {
    let fd = open("/proc/sys/net/core/somaxconn", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return 4096 }
    defer { closeDescriptor(fd) }
    var digits: (UInt64, UInt64) = (0, 0)
    let n = withUnsafeMutableBytes(of: &digits) { read(fd, $0.baseAddress, $0.count) }
    guard n > 0 else { return 4096 }
    let text = withUnsafeBytes(of: digits) { String(decoding: $0.prefix(n).prefix { $0 >= 48 && $0 <= 57 }, as: UTF8.self) }
    guard let value = Int32(text), value > 0 else { return 4096 }
    return value
}

/// An abstract unix socket name held while this process lives: the name belongs to the network namespace and the
/// kernel drops it with the process (a `kill -9` leaves nothing stale). WeirProxy's `DataPlaneLock` is one.
public enum AbstractLock {
    public enum Outcome {
        case held(Descriptor)
        /// EADDRINUSE: another process holds it; its pid when the kernel says (SO_PEERCRED), else 0.
        case busy(holder: Int32)
    }

    public static func acquire(_ name: String) throws -> Outcome {
        var holder: Int32 = 0
        let fd = weir_dataplane_lock(name, &holder)
        if fd >= 0 { return .held(Descriptor(owning: fd)) }
        let e = errno
        guard e == EADDRINUSE else { throw SystemError("lock @\(name)", errno: e) }
        return .busy(holder: holder)
    }
}

/// A ctnetlink socket that deletes conntrack entries of TCP flows (the proxy's workers forget failed upstream
/// flows). Opened by the thread whose capabilities the kernel should check (CAP_NET_ADMIN).
public final class ConntrackSocket {
    private let descriptor: Descriptor

    public init() throws {
        descriptor = try Descriptor.opened("ctnetlink socket") { weir_ct_socket() }
    }

    /// Deletes the entry whose original direction is `source` -> `destination` (same family): 0, or errno (ENOENT:
    /// no such entry; EPERM: no CAP_NET_ADMIN).
    public func delete(source: SocketAddress, destination: SocketAddress) -> Int32 {
        let rc = withUnsafePointer(to: source.storage) { s in
            withUnsafePointer(to: destination.storage) { d in weir_ct_delete(descriptor.rawValue, s, d) }
        }
        return rc == 0 ? 0 : errno
    }
}
