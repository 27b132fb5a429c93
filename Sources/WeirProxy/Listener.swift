import CWeirLinux
import Glibc
import WeirCore
import WeirSystem

/// Which capture port a listener serves.
enum ListenerKind {
    /// -p: connections the application opened; forwarded to their original destination as the proxy user.
    case outbound
    /// -z: connections from outside to the application; handed to it from 127.0.0.6/::6 (REDIRECT) or from the
    /// client's own address (TPROXY).
    case inbound
}

/// One listening socket of one worker.
struct Listener {
    let fd: Int32
    let kind: ListenerKind
    let family: Int32
    let port: UInt16
}

struct ListenError: Error, CustomStringConvertible {
    let description: String
}

/// Opens a non-blocking SO_REUSEPORT listener on the wildcard address. IPv6 listeners are IPV6_V6ONLY: each family
/// has its own socket, so SO_ORIGINAL_DST is always asked with the family of the connection (no v4-mapped cases).
func openListener(
    kind: ListenerKind, family: Int32, port: UInt16, transparent: Bool, backlog: Int32
) throws -> Listener {
    let fd = socket(family, nonBlockingStream, 0)
    guard fd >= 0 else { throw ListenError(description: "socket: \(errnoName(errno))") }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    let name = family == AF_INET6 ? "[::]:\(port)" : "0.0.0.0:\(port)"
    func fail(_ what: String) -> ListenError {
        let e = errno
        close(fd)
        return ListenError(description: "\(what) \(name): \(errnoName(e))")
    }
    guard weir_set_reuseport(fd) == 0 else { throw fail("SO_REUSEPORT on") }
    // Accepted sockets inherit TCP_NODELAY: the proxy adds no Nagle delay of its own.
    guard weir_set_nodelay(fd) == 0 else { throw fail("TCP_NODELAY on") }
    if family == AF_INET6 { guard weir_set_v6only(fd) == 0 else { throw fail("IPV6_V6ONLY on") } }
    if transparent {
        guard weir_set_transparent(fd, family) == 0 else { throw fail("IP_TRANSPARENT (needs CAP_NET_ADMIN) on") }
    }
    let address = SocketAddress(ip: family == AF_INET6 ? "::" : "0.0.0.0", port: port)!
    guard address.withSockaddr({ bind(fd, $0, $1) }) == 0 else { throw fail("bind") }
    guard listen(fd, backlog) == 0 else { throw fail("listen") }
    return Listener(fd: fd, kind: kind, family: family, port: port)
}

/// socket() type of every socket the proxy opens.
let nonBlockingStream = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)

/// The listen backlog: net.core.somaxconn of this network namespace.
public func listenBacklog() -> Int32 {
    guard let f = fopen("/proc/sys/net/core/somaxconn", "r") else { return 4096 }
    defer { fclose(f) }
    var value: Int32 = 0
    return withUnsafeMutablePointer(to: &value) { p in
        withVaList([p]) { vfscanf(f, "%d", $0) } == 1 && p.pointee > 0 ? p.pointee : 4096
    }
}
