import CWeirLinux
import Glibc

/// An IPv4 or IPv6 socket address held in a `sockaddr_storage`.
public struct SocketAddress: Equatable, CustomStringConvertible, Sendable {
    public var storage = sockaddr_storage()
    public var length = socklen_t(0)

    public init() {}

    /// Parses a numeric IPv4 or IPv6 address (no brackets) and a port.
    public init?(ip: String, port: UInt16) {
        if ip.contains(":") {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, ip, &a.sin6_addr) == 1 else { return nil }
            withUnsafeMutableBytes(of: &storage) { dst in withUnsafeBytes(of: a) { dst.copyMemory(from: $0) } }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            guard inet_pton(AF_INET, ip, &a.sin_addr) == 1 else { return nil }
            withUnsafeMutableBytes(of: &storage) { dst in withUnsafeBytes(of: a) { dst.copyMemory(from: $0) } }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        }
    }

    public var family: Int32 { Int32(storage.ss_family) }

    public var port: UInt16 {
        get {
            // sin_port and sin6_port are both at offset 2.
            withUnsafeBytes(of: storage) { UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self)) }
        }
        set {
            // sin_port and sin6_port are both at offset 2.
            withUnsafeMutableBytes(of: &storage) {
                $0.storeBytes(of: newValue.bigEndian, toByteOffset: 2, as: UInt16.self)
            }
        }
    }

    /// Address bytes only (4 or 16).
    private var addressBytes: [UInt8] {
        withUnsafeBytes(of: storage) { raw in
            family == AF_INET6 ? Array(raw[8..<24]) : Array(raw[4..<8])
        }
    }

    public static func == (a: SocketAddress, b: SocketAddress) -> Bool {
        a.family == b.family && a.port == b.port && a.addressBytes == b.addressBytes
    }

    public var ip: String {
        var buffer = [CChar](repeating: 0, count: 64)
        withUnsafeBytes(of: storage) { raw in
            let offset = family == AF_INET6 ? 8 : 4
            _ = inet_ntop(family, raw.baseAddress! + offset, &buffer, 64)
        }
        return String(cString: buffer)
    }

    public var description: String { family == AF_INET6 ? "[\(ip)]:\(port)" : "\(ip):\(port)" }

    public func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        withUnsafeBytes(of: storage) { raw in
            body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }

    /// The local address of a socket.
    public static func local(of fd: Int32) -> SocketAddress? {
        var a = SocketAddress()
        a.length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutableBytes(of: &a.storage) { raw in
            getsockname(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), &a.length)
        }
        return rc == 0 ? a : nil
    }

    /// The destination a REDIRECTed connection had before NAT (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST).
    public static func originalDestination(of fd: Int32, family: Int32) -> SocketAddress? {
        var a = SocketAddress()
        let rc = weir_original_dst(fd, family, &a.storage, &a.length)
        return rc == 0 ? a : nil
    }
}

extension SocketAddress {
    /// Whether a TCP socket of the calling thread's network namespace, in any state, has `local` and `remote` as its
    /// addresses: the kernel's own lookup of one socket (sock_diag), no dump. Nil when the kernel could not say.
    public static func tcpSocketExists(local: SocketAddress, remote: SocketAddress) -> Bool? {
        var l = local.storage, r = remote.storage
        switch weir_tcp_socket_exists(&l, &r) {
        case 1: return true
        case 0: return false
        default: return nil
        }
    }
}
