import CWeirLinux
import Glibc

/// A SOCK_SEQPACKET unix socket: one message per request, message boundaries kept, descriptors passed alongside
/// (SCM_RIGHTS). The pod-mode channel between the CNI plugin and the agent (`<run-dir>/cni.sock`), as istio-cni and
/// ztunnel use one for theirs.
public enum UnixSeqpacket {
    /// One message received: its bytes and the descriptors that came with it (each closes itself).
    public struct Message {
        public var bytes: [UInt8]
        public var descriptors: [Descriptor]
        /// The bytes or descriptors did not fit: the message is not whole.
        public var truncated: Bool
    }

    /// Binds and listens at `path` with `permissions` (a stale socket file is replaced; nothing else is). The
    /// socket is non-blocking, for the agent's poller.
    public static func listen(at path: String, permissions: UInt32, backlog: Int32 = 64) throws -> Descriptor {
        var address = sockaddr_un()
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw SystemError("bind \(path)", errno: ENAMETOOLONG)
        }
        if let status = try? FileStatus(path: path, followLinks: false) {
            guard status.kind == .other else { throw SystemError("bind \(path) (exists, not a socket)", errno: EEXIST) }
            _ = unlink(path)
        }
        let socket = try Descriptor.opened("socket AF_UNIX") {
            Glibc.socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
                         | Int32(SOCK_NONBLOCK.rawValue), 0)
        }
        // Created with no access at all, then opened up to `permissions`: never reachable by others in between.
        let old = umask(0o777)
        let bound = withAddress(path) { bind(socket.rawValue, $0, $1) }
        let e = errno
        umask(old)
        guard bound == 0 else { throw SystemError("bind \(path)", errno: e) }
        guard chmod(path, mode_t(permissions)) == 0 else { throw SystemError("chmod \(path)", errno: errno) }
        guard Glibc.listen(socket.rawValue, backlog) == 0 else { throw SystemError("listen \(path)", errno: errno) }
        return socket
    }

    /// Connects to `path` (blocking, with send and receive bounded by `timeoutMs`).
    public static func connect(to path: String, timeoutMs: Int) throws -> Descriptor {
        let socket = try Descriptor.opened("socket AF_UNIX") {
            Glibc.socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        try setTimeouts(socket.rawValue, timeoutMs: timeoutMs)
        while true {
            if withAddress(path, { Glibc.connect(socket.rawValue, $0, $1) }) == 0 { return socket }
            if errno != EINTR { throw SystemError("connect \(path)", errno: errno) }
        }
    }

    /// Accepts one waiting peer (non-blocking listener): the connection (blocking, bounded by `timeoutMs`) or nil
    /// when none waits.
    public static func accept(_ listener: Descriptor, timeoutMs: Int) throws -> Descriptor? {
        while true {
            var peer = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = weir_accept(listener.rawValue, &peer, &length)  // non-blocking, close-on-exec
            if fd >= 0 {
                let connection = Descriptor(owning: fd)
                guard fcntl(fd, F_SETFL, 0) == 0 else { throw SystemError("fcntl O_NONBLOCK", errno: errno) }
                try setTimeouts(fd, timeoutMs: timeoutMs)
                return connection
            }
            switch errno {
            case EINTR, ECONNABORTED: continue
            case EAGAIN: return nil
            default: throw SystemError("accept", errno: errno)
            }
        }
    }

    /// Sends one message with `descriptors` attached (at most 253).
    public static func send(_ bytes: [UInt8], descriptors: [Int32] = [], on socket: Descriptor) throws {
        let n = bytes.withUnsafeBytes { b in
            descriptors.withUnsafeBufferPointer { weir_send_fds(socket.rawValue, b.baseAddress, b.count, $0.baseAddress,
                                                                Int32($0.count)) }
        }
        if n < 0 { throw SystemError("sendmsg", errno: errno) }
        if n != bytes.count { throw SystemError("sendmsg (short)", errno: EMSGSIZE) }
    }

    /// Receives one message of at most `limit` bytes and `maxDescriptors` descriptors. An empty message with no
    /// descriptors is the peer's end.
    public static func receive(on socket: Descriptor, limit: Int, maxDescriptors: Int = 4) throws -> Message {
        var bytes = [UInt8](repeating: 0, count: limit)
        var fds = [Int32](repeating: -1, count: max(1, maxDescriptors))
        var count: Int32 = 0, truncated: Int32 = 0
        let n = bytes.withUnsafeMutableBytes { b in
            fds.withUnsafeMutableBufferPointer {
                weir_recv_fds(socket.rawValue, b.baseAddress, b.count, $0.baseAddress, Int32(maxDescriptors), &count,
                              &truncated)
            }
        }
        if n < 0 { throw SystemError("recvmsg", errno: errno) }
        bytes.removeSubrange(n...)
        let descriptors = fds.prefix(Int(count)).map { Descriptor(owning: $0) }
        return Message(bytes: bytes, descriptors: descriptors, truncated: truncated != 0)
    }

    /// The peer's user id (SO_PEERCRED), nil if the kernel cannot say.
    public static func peerUID(_ socket: Descriptor) -> UInt32? {
        let uid = weir_peer_uid(socket.rawValue)
        return uid >= 0 ? UInt32(uid) : nil
    }

    /// The peer's process id (SO_PEERCRED), nil if the kernel cannot say.
    public static func peerPID(_ socket: Descriptor) -> Int32? {
        let pid = weir_peer_pid(socket.rawValue)
        return pid > 0 ? Int32(pid) : nil
    }

    private static func setTimeouts(_ fd: Int32, timeoutMs: Int) throws {
        for option in [SocketOption.sendTimeoutMs(timeoutMs), .receiveTimeoutMs(timeoutMs)] {
            let e = option.apply(to: fd, family: AF_UNIX)
            if e != 0 { throw SystemError("setsockopt \(option.name)", errno: e) }
        }
    }

    private static func withAddress(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            errno = ENAMETOOLONG
            return -1
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
        return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) } }
    }
}
