import CWeirLinux
import Glibc

/// Address families, for code that does not import Glibc.
public enum AddressFamily {
    public static let ipv4 = AF_INET
    public static let ipv6 = AF_INET6
}

/// The socket options weir sets, spelled once. Family-dependent ones (transparent, free bind, v6 only) pick the IPv4
/// or IPv6 level from the socket's family.
public enum SocketOption: Equatable, Sendable {
    case reuseAddress
    /// SO_REUSEPORT: several sockets (one per worker) listen on one port and the kernel spreads connections.
    case reusePort
    /// TCP_NODELAY: no Nagle delay. Sockets accepted from a listener inherit it.
    case noDelay
    /// IPV6_V6ONLY: an IPv6 listener takes no IPv4 connections (each family has its own socket).
    case v6Only
    /// IP_TRANSPARENT / IPV6_TRANSPARENT (CAP_NET_ADMIN): bind and accept addresses that are not local (TPROXY).
    case transparent
    /// IP_FREEBIND / IPV6_FREEBIND: bind an address not (yet) configured.
    case freeBind
    /// IP_BIND_ADDRESS_NO_PORT: bind chooses no port; connect does, so binding uses up no ephemeral port.
    case bindAddressNoPort
    case mark(UInt32)
    /// TCP_QUICKACK 0 before connect makes the handshake's last ACK wait for the first data and leave with it.
    case quickAck(Bool)
    /// SO_LINGER {1, 0}: the next close sends a RST instead of a FIN.
    case lingerReset
    /// SO_SNDTIMEO / SO_RCVTIMEO of a blocking socket (SO_SNDTIMEO bounds connect too).
    case sendTimeoutMs(Int)
    case receiveTimeoutMs(Int)

    /// The option's name in errors.
    public var name: String {
        switch self {
        case .reuseAddress: "SO_REUSEADDR"
        case .reusePort: "SO_REUSEPORT"
        case .noDelay: "TCP_NODELAY"
        case .v6Only: "IPV6_V6ONLY"
        case .transparent: "IP_TRANSPARENT (needs CAP_NET_ADMIN)"
        case .freeBind: "IP_FREEBIND"
        case .bindAddressNoPort: "IP_BIND_ADDRESS_NO_PORT"
        case .mark: "SO_MARK"
        case .quickAck: "TCP_QUICKACK"
        case .lingerReset: "SO_LINGER"
        case .sendTimeoutMs: "SO_SNDTIMEO"
        case .receiveTimeoutMs: "SO_RCVTIMEO"
        }
    }

    /// Sets the option on a raw descriptor of `family`: 0, or errno (read at the call). The proxy sets options on its
    /// per-connection sockets with this, without a `Socket` object.
    @inlinable @inline(__always)
    public func apply(to fd: Int32, family: Int32) -> Int32 {
        set(fd, family) == 0 ? 0 : errno
    }

    @usableFromInline func set(_ fd: Int32, _ family: Int32) -> Int32 {
        switch self {
        case .reuseAddress: return setFlag(fd, SOL_SOCKET, SO_REUSEADDR)
        case .reusePort: return weir_set_reuseport(fd)
        case .noDelay: return weir_set_nodelay(fd)
        case .v6Only: return weir_set_v6only(fd)
        case .transparent: return weir_set_transparent(fd, family)
        case .freeBind: return weir_set_freebind(fd, family)
        case .bindAddressNoPort: return weir_set_bind_address_no_port(fd)
        case .mark(let m): return weir_set_mark(fd, m)
        case .quickAck(let on): return weir_set_quickack(fd, on ? 1 : 0)
        case .lingerReset: return weir_set_linger_reset(fd)
        case .sendTimeoutMs(let ms): return setTimeout(fd, SO_SNDTIMEO, ms)
        case .receiveTimeoutMs(let ms): return setTimeout(fd, SO_RCVTIMEO, ms)
        }
    }
}

@usableFromInline func setFlag(_ fd: Int32, _ level: Int32, _ name: Int32) -> Int32 {
    var one: Int32 = 1
    return setsockopt(fd, level, name, &one, socklen_t(MemoryLayout<Int32>.size))
}

@usableFromInline func setTimeout(_ fd: Int32, _ name: Int32, _ ms: Int) -> Int32 {
    var tv = timeval(tv_sec: ms / 1000, tv_usec: (ms % 1000) * 1000)
    return setsockopt(fd, SOL_SOCKET, name, &tv, socklen_t(MemoryLayout<timeval>.size))
}

/// A TCP socket that closes itself: created (optionally inside another network namespace), given options, bound,
/// listening or connected (swift-nio's `BaseSocket` and `Socket` are the models). Errno is read at the failing call;
/// a call that would block returns `.wouldBlock` instead of throwing. Errors name the call and the address.
///
/// Control-plane sockets (listeners while they are built, the admin server, validation probes, `weir status`) are
/// `Socket`s. The proxy's per-connection sockets stay raw numbers in its tables (see `Descriptor`): for them the
/// same calls exist as inline functions on raw descriptors (`SocketOption.apply`, `acceptConnection`, ...).
public final class Socket: @unchecked Sendable, CustomStringConvertible {
    public let descriptor: Descriptor
    public let family: Int32

    /// The descriptor number (-1 once closed or taken).
    public var fd: Int32 { descriptor.rawValue }

    /// A new TCP socket of `family`, close-on-exec, non-blocking unless `blocking`. In `namespace` when given: the
    /// calling thread enters it for the one call and comes back (a socket stays in the namespace it was made in).
    public init(family: Int32, blocking: Bool = false, in namespace: NetworkNamespace.Handle? = nil) throws {
        let type = streamType(blocking: blocking)
        let make = { try Descriptor.opened("socket") { Glibc.socket(family, type, 0) } }
        descriptor = try namespace.map { try $0.perform(make) } ?? make()
        self.family = family
    }

    /// Wraps a descriptor this code owns (an accepted connection).
    public init(owning fd: Int32, family: Int32) {
        descriptor = Descriptor(owning: fd)
        self.family = family
    }

    public func set(_ option: SocketOption) throws {
        let e = option.apply(to: fd, family: family)
        guard e == 0 else { throw SystemError(option.name, errno: e) }
    }

    public func bind(_ address: SocketAddress) throws {
        guard address.withSockaddr({ Glibc.bind(fd, $0, $1) }) == 0 else {
            throw SystemError("bind \(address)", errno: errno)
        }
    }

    public func listen(backlog: Int32) throws {
        guard Glibc.listen(fd, backlog) == 0 else { throw SystemError("listen", errno: errno) }
    }

    /// Connects; on a non-blocking socket `.wouldBlock` means the handshake goes on (EINPROGRESS): wait until the
    /// socket is writable and read `pendingError`.
    public func connect(_ address: SocketAddress) throws -> IOResult<Int32> {
        switch connectSocket(fd, to: address) {
        case .done: return .done(0)
        case .wouldBlock: return .wouldBlock
        case .failed(let e): throw SystemError("connect \(address)", errno: e)
        }
    }

    /// The next connection waiting on this listener, with its peer address; `.wouldBlock` when none is.
    public func accept() throws -> IOResult<AcceptedConnection> {
        var peer = SocketAddress()
        switch acceptConnection(fd, peer: &peer) {
        case .accepted(let conn): return .done(AcceptedConnection(socket: Socket(owning: conn, family: family), peer: peer))
        case .wouldBlock: return .wouldBlock
        case .outOfDescriptors(let e), .failed(let e): throw SystemError("accept", errno: e)
        }
    }

    /// SO_ERROR: how a non-blocking connect ended (0: connected).
    public var pendingError: Int32 { weir_socket_error(fd) }

    public var localAddress: SocketAddress? { SocketAddress.local(of: fd) }

    /// Closes now; see `Descriptor.close`.
    @discardableResult public func close() -> SystemError? { descriptor.close() }

    /// Hands the descriptor to a new owner (the proxy's tables): this socket no longer closes it.
    public func take() -> Int32 { descriptor.take() }

    public var description: String { "socket \(descriptor)" }

    /// A listening socket on `address`: every listener weir opens (the proxy's, the admin server's, the capture
    /// validation's) is built here, so options are spelled once. SO_REUSEADDR always (a restart binds again at once
    /// while old connections sit in TIME_WAIT); `options` are set before bind, as SO_REUSEPORT, IPV6_V6ONLY and
    /// IP_TRANSPARENT must be. Errors read `<what> <address>: ERRNO` (`bind 0.0.0.0:15001: EADDRINUSE`), except a
    /// failed socket(), which reads `socket: ERRNO`.
    public static func listener(
        on address: SocketAddress, options: [SocketOption] = [], backlog: Int32, blocking: Bool = false,
        in namespace: NetworkNamespace.Handle? = nil
    ) throws -> Socket {
        let socket = try Socket(family: address.family, blocking: blocking, in: namespace)
        for option in [.reuseAddress] + options {
            do { try socket.set(option) } catch let e as SystemError {
                throw SystemError("\(e.call) on \(address)", errno: e.errno)
            }
        }
        try socket.bind(address)
        do { try socket.listen(backlog: backlog) } catch let e as SystemError {
            throw SystemError("listen \(address)", errno: e.errno)
        }
        return socket
    }

    /// False when this kernel or network namespace has IPv6 turned off.
    public static func ipv6Available() -> Bool {
        (try? Socket(family: AF_INET6)) != nil
    }
}

/// A connection taken from a listener.
public struct AcceptedConnection: Equatable {
    public let socket: Socket
    public let peer: SocketAddress

    public static func == (a: AcceptedConnection, b: AcceptedConnection) -> Bool { a.socket === b.socket }
}

@usableFromInline func streamType(blocking: Bool) -> Int32 {
    Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (blocking ? 0 : Int32(SOCK_NONBLOCK.rawValue))
}
