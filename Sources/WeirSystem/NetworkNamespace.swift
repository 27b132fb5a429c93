import CWeirLinux
import Glibc

/// Entering another network namespace (istio's `--network-namespace`): the calling thread, and every thread and socket
/// it creates afterwards, work inside the namespace; the process stays where it was started for everyone else.
public enum NetworkNamespace {
    /// Why a path cannot be entered.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// The path is wrong (missing, not a namespace): bad input.
        case badPath(String)
        /// The path is a namespace, but this process may not enter it.
        case denied(String)

        public var description: String {
            switch self {
            case .badPath(let why), .denied(let why): return why
            }
        }
    }

    /// Checks that `path` is a network namespace this process can open, without entering it.
    public static func check(_ path: String) throws {
        guard weir_netns_check(path) != 0 else { return }
        throw failure(errno)
    }

    /// Checks that `path` is a network namespace this process can open and enter (setns on a thread of its own that
    /// then ends), without entering it: `.denied` when setns is refused (no CAP_SYS_ADMIN, or a seccomp filter).
    public static func probe(_ path: String) throws {
        guard weir_netns_probe(path) != 0 else { return }
        throw failure(errno)
    }

    /// Moves the calling thread into the network namespace at `path` (`/var/run/netns/NAME`, `/proc/PID/ns/net`).
    public static func enter(_ path: String) throws {
        guard weir_enter_netns(path) != 0 else { return }
        throw failure(errno)
    }

    private static func failure(_ errno: Int32) -> Failure {
        switch errno {
        case ENOENT, ENOTDIR: return Failure.badPath("does not exist")
        case EINVAL: return Failure.badPath("is not a network namespace")
        case EACCES, EPERM: return Failure.denied("cannot be entered (\(errnoName(errno)); needs CAP_SYS_ADMIN)")
        default: return Failure.badPath("cannot be opened (\(errnoName(errno)))")
        }
    }
}

extension NetworkNamespace {
    /// An open network namespace, to create sockets in it from any thread without moving the thread for good (pod
    /// mode: a listener per pod namespace). `perform` enters it on the calling thread for one body and comes back.
    public final class Handle: @unchecked Sendable {
        public let path: String
        let descriptor: Descriptor

        /// Opens the namespace at `path`; throws naming the path (ENOENT, or EINVAL when it is not a namespace).
        public init(path: String) throws {
            self.path = path
            descriptor = try Descriptor.opened("open network namespace \(path)") { weir_netns_open(path) }
        }

        init(path: String, descriptor: Descriptor) {
            self.path = path
            self.descriptor = descriptor
        }

        /// The calling thread's own network namespace.
        public static func current() throws -> Handle { try Handle(path: "/proc/thread-self/ns/net") }

        /// Runs `body` with the calling thread in this namespace, then moves the thread back where it was. Sockets
        /// `body` creates stay in this namespace. Throws naming the path when the thread cannot enter (EPERM: no
        /// CAP_SYS_ADMIN). A thread that could enter but not come back would go on in the wrong namespace: that
        /// stops the process.
        public func perform<T>(_ body: () throws -> T) throws -> T {
            let home = try Handle.current()
            guard weir_netns_set(descriptor.rawValue) == 0 else { throw SystemError("setns \(path)", errno: errno) }
            defer {
                if weir_netns_set(home.descriptor.rawValue) != 0 {
                    fatalError("cannot return to the thread's own network namespace after \(path): \(errnoName(errno))")
                }
            }
            return try body()
        }
    }
}

extension NetworkNamespace.Handle {
    /// Takes `descriptor` as a namespace (one received from the CNI plugin over SCM_RIGHTS); `path` names it in
    /// errors. Throws `.badPath("is not a network namespace")` when the descriptor is something else.
    public convenience init(adopting descriptor: Descriptor, path: String) throws {
        guard weir_netns_fd_check(descriptor.rawValue) == 0 else {
            throw NetworkNamespace.Failure.badPath("is not a network namespace")
        }
        self.init(path: path, descriptor: descriptor)
    }

    /// Which namespace this is: the nsfs (device, inode) pair. Two handles name the same namespace exactly when
    /// their identities are equal (a pod sandbox recreated under the same path gets a new inode).
    public var identity: NetworkNamespace.Identity? {
        guard let status = try? FileStatus(descriptor: descriptor.rawValue) else { return nil }
        return NetworkNamespace.Identity(device: status.device, inode: status.inode)
    }

    /// A non-blocking TCP socket made inside this namespace by the calling thread, which returns to `home` at once
    /// (one C call: two setns and a socket). The proxy's upstream socket of a pod's connection.
    @inline(__always)
    public func openStreamSocket(family: Int32, home: NetworkNamespace.Handle) -> IOStatus {
        let fd = weir_socket_in_netns(descriptor.rawValue, home.descriptor.rawValue, family)
        return fd >= 0 ? .done(Int(fd)) : .failed(errno)
    }
}

extension NetworkNamespace {
    /// The nsfs (device, inode) of a namespace: what tells two namespaces apart, whatever path names them.
    public struct Identity: Equatable, Hashable, Sendable, CustomStringConvertible {
        public let device: UInt64
        public let inode: UInt64
        public init(device: UInt64, inode: UInt64) {
            self.device = device
            self.inode = inode
        }

        /// `device:inode`, as the pod registry stores it.
        public var description: String { "\(device):\(inode)" }

        public init?(_ text: String) {
            let parts = text.split(separator: ":")
            guard parts.count == 2, let d = UInt64(parts[0]), let i = UInt64(parts[1]) else { return nil }
            self.init(device: d, inode: i)
        }

        /// The namespace a path names now (nil: no such path, or not a namespace).
        public static func of(path: String) -> Identity? {
            guard let handle = try? Handle(path: path) else { return nil }
            return handle.identity
        }
    }
}

extension NetworkNamespace.Handle {
    /// The descriptor's number, to pass it to another process (SCM_RIGHTS); the handle still owns it.
    public var rawDescriptor: Int32 { descriptor.rawValue }
}
