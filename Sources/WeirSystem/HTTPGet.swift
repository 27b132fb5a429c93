// SOCK_STREAM, SOCK_CLOEXEC and MSG_NOSIGNAL are declared by glibc headers outside the Glibc module map, which
// CWeirLinux.h includes: they are found through CWeirLinux (without it, only when the compiler happens to batch this
// file with one that imports CWeirLinux).
import CWeirLinux
import Glibc

/// A one-shot HTTP/1.0 GET for `weir status` asking the agent's admin endpoint: connect, send, read to the end,
/// all within `timeoutMs` per step (SO_SNDTIMEO bounds connect too). Only for weir's own small answers.
public enum HTTPGet {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// The status code and body of `GET path` at `address`; throws with what went wrong (`connection refused`,
    /// `timed out`, `not HTTP`).
    public static func get(_ address: SocketAddress, path: String, timeoutMs: Int = 2000, limit: Int = 1 << 20) throws
        -> (status: Int, body: [UInt8])
    {
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(errnoName(errno))") }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeoutMs / 1000, tv_usec: (timeoutMs % 1000) * 1000)
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        func failure(_ what: String) -> Failure {
            let e = errno
            let reason = e == ECONNREFUSED ? "connection refused"
                : e == EAGAIN || e == EWOULDBLOCK || e == EINPROGRESS ? "timed out" : errnoName(e)
            return Failure(description: "\(what): \(reason)")
        }
        var rc: Int32
        repeat { rc = address.withSockaddr { connect(fd, $0, $1) } } while rc != 0 && errno == EINTR
        guard rc == 0 else { throw failure("connect") }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(address)\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw failure("send") }
            sent += n
        }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw failure("receive") }
            if n == 0 { break }
            reply += buffer[..<n]
            guard reply.count <= limit else { throw Failure(description: "answer larger than \(limit) bytes") }
        }
        // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody"
        let head = Array("\r\n\r\n".utf8)
        guard reply.count >= 12, reply.starts(with: Array("HTTP/1.".utf8)),
              let status = Int(String(decoding: reply[9..<12], as: UTF8.self)),
              let end = (0...(reply.count - head.count)).first(where: { reply[$0..<($0 + 4)].elementsEqual(head) })
        else { throw Failure(description: "the answer is not HTTP") }
        return (status, Array(reply[(end + 4)...]))
    }
}
