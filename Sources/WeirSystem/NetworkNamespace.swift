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
