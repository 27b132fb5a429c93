import CWeirLinux
import Glibc

// The per-event calls of the proxy's data path, on raw descriptors. They stay raw (no `Socket`, no throwing, no
// allocation) because they run several times per proxied connection: a class per descriptor would cost an allocation
// and reference counting per connection, and a thrown error an existential box per EAGAIN. Each is inlined into the
// worker and reads errno right at the call, retrying EINTR itself; would-block is a value.

/// What a non-blocking call on a raw descriptor did.
public enum IOStatus: Equatable {
    /// The call's result: bytes moved (0 from a read is the end of stream), or a new descriptor.
    case done(Int)
    /// EAGAIN / EWOULDBLOCK (or EINPROGRESS from connect): try again when the poller says so.
    case wouldBlock
    /// Anything else, with errno.
    case failed(Int32)
}

/// Runs a call returning -1 with errno on failure, retrying EINTR.
@inlinable @inline(__always)
func rawCall(_ body: () -> Int) -> IOStatus {
    while true {
        let n = body()
        if n >= 0 { return .done(n) }
        let e = errno
        if e == EINTR { continue }
        return e == EAGAIN || e == EWOULDBLOCK ? .wouldBlock : .failed(e)
    }
}

/// read(2).
@inlinable @inline(__always)
public func readBytes(_ fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int) -> IOStatus {
    rawCall { Glibc.read(fd, buffer, count) }
}

/// send(MSG_NOSIGNAL), with MSG_MORE when `more`: the bytes wait in the socket for what follows at once (a FIN from
/// shutdown or close leaves in the same segment).
@inlinable @inline(__always)
public func sendBytes(_ fd: Int32, from buffer: UnsafeRawPointer, count: Int, more: Bool) -> IOStatus {
    rawCall { weir_send(fd, buffer, count, more ? 1 : 0) }
}

/// splice between a socket and a pipe (non-blocking, SPLICE_F_MOVE; SPLICE_F_MORE when `more`, as `sendBytes`).
@inlinable @inline(__always)
public func splice(from source: Int32, to destination: Int32, count: Int, more: Bool) -> IOStatus {
    rawCall { weir_splice(source, destination, count, more ? 1 : 0) }
}

/// What accept gave.
public enum AcceptStatus: Equatable {
    /// A connection (non-blocking, close-on-exec): the caller owns the descriptor.
    case accepted(Int32)
    /// The queue is empty.
    case wouldBlock
    /// EMFILE, ENFILE, ENOBUFS, ENOMEM: the connection waits in the queue until descriptors free up.
    case outOfDescriptors(Int32)
    case failed(Int32)
}

/// accept4 on a non-blocking listener. A connection that was reset or failed in the queue (ECONNABORTED, EPROTO)
/// and EINTR are skipped: the next one is taken.
@inlinable @inline(__always)
public func acceptConnection(_ listener: Int32, peer: inout SocketAddress) -> AcceptStatus {
    while true {
        let fd = weir_accept(listener, &peer.storage, &peer.length)
        if fd >= 0 { return .accepted(fd) }
        let e = errno
        switch e {
        case EAGAIN, EWOULDBLOCK: return .wouldBlock
        case EINTR, ECONNABORTED, EPROTO: continue
        case EMFILE, ENFILE, ENOBUFS, ENOMEM: return .outOfDescriptors(e)
        default: return .failed(e)
        }
    }
}

/// A new non-blocking, close-on-exec TCP socket: `.done(fd)` or `.failed(errno)`.
@inlinable @inline(__always)
public func openStreamSocket(family: Int32) -> IOStatus {
    let fd = Glibc.socket(family, streamType(blocking: false), 0)
    return fd >= 0 ? .done(Int(fd)) : .failed(errno)
}

/// bind(2): 0, or errno.
@inlinable @inline(__always)
public func bindSocket(_ fd: Int32, to address: SocketAddress) -> Int32 {
    address.withSockaddr { Glibc.bind(fd, $0, $1) } == 0 ? 0 : errno
}

/// connect(2) on a non-blocking socket: `.done(0)` connected, `.wouldBlock` while the handshake goes on
/// (EINPROGRESS: wait for writable, then read `socketError`), `.failed(errno)`.
@inlinable @inline(__always)
public func connectSocket(_ fd: Int32, to address: SocketAddress) -> IOStatus {
    if address.withSockaddr({ Glibc.connect(fd, $0, $1) }) == 0 { return .done(0) }
    let e = errno
    return e == EINPROGRESS || e == EINTR ? .wouldBlock : .failed(e)
}

/// shutdown(SHUT_WR): the peer gets a FIN once what is queued has left.
@inlinable @inline(__always)
public func shutdownWrite(_ fd: Int32) { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }

/// SO_ERROR: how a non-blocking connect ended, or why a socket failed (0: no error).
@inlinable @inline(__always)
public func socketError(_ fd: Int32) -> Int32 { weir_socket_error(fd) }

/// A non-blocking pipe (read end, write end) of `size` bytes when the kernel allows (else its default 64 KiB);
/// nil with errno when descriptors ran out.
@inlinable @inline(__always)
public func makePipe(size: Int32) -> (read: Int32, write: Int32)? {
    var fds: (Int32, Int32) = (-1, -1)
    let rc = withUnsafeMutableBytes(of: &fds) { weir_pipe($0.baseAddress!.assumingMemoryBound(to: Int32.self), size) }
    return rc == 0 ? (fds.0, fds.1) : nil
}

/// A descriptor held in reserve for the moment descriptors run out: closing it frees one, to accept and reset a
/// waiting client instead of leaving it in the queue (HAProxy and nginx do the same). -1 if none could be opened.
public func openReserveDescriptor() -> Int32 { open("/dev/null", O_RDONLY | O_CLOEXEC) }
