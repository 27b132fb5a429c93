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
    let socket: Socket
    let kind: ListenerKind
    let port: UInt16
    /// The pod whose namespace the listener lives in (pod mode); nil: the agent's own namespace.
    let pod: PodContext?

    var fd: Int32 { socket.fd }
    var family: Int32 { socket.family }
}

/// Opens a non-blocking SO_REUSEPORT listener on the wildcard address. IPv6 listeners are IPV6_V6ONLY: each family
/// has its own socket, so SO_ORIGINAL_DST is always asked with the family of the connection (no v4-mapped cases).
/// Accepted sockets inherit TCP_NODELAY from it: the proxy adds no Nagle delay of its own, and pays no setsockopt
/// per connection for it.
func openListener(
    kind: ListenerKind, family: Int32, port: UInt16, transparent: Bool, backlog: Int32, pod: PodContext? = nil
) throws -> Listener {
    let address = SocketAddress(ip: family == AddressFamily.ipv6 ? "::" : "0.0.0.0", port: port)!
    var options: [SocketOption] = [.reusePort, .noDelay]
    if family == AddressFamily.ipv6 { options.append(.v6Only) }
    if transparent { options.append(.transparent) }
    let socket = try Socket.listener(on: address, options: options, backlog: backlog)
    return Listener(socket: socket, kind: kind, port: port, pod: pod)
}

/// The listen backlog: net.core.somaxconn of this network namespace.
public func listenBacklog() -> Int32 { maximumListenBacklog() }
