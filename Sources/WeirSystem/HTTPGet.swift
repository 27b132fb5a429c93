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
        let socket: Socket
        do { socket = try Socket(family: address.family, blocking: true) } catch let e as SystemError {
            throw Failure(description: "socket: \(errnoName(e.errno))")
        }
        try? socket.set(.sendTimeoutMs(timeoutMs))
        try? socket.set(.receiveTimeoutMs(timeoutMs))
        // On this blocking socket, would-block means a timeout ran out (connect reports it as EINPROGRESS).
        func failure(_ what: String, _ status: IOStatus) -> Failure {
            guard case .failed(let e) = status else { return Failure(description: "\(what): timed out") }
            return Failure(description: "\(what): \(e == ECONNREFUSED ? "connection refused" : errnoName(e))")
        }
        let connected = connectSocket(socket.fd, to: address)
        guard connected == .done(0) else { throw failure("connect", connected) }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(address)\r\n\r\n".utf8)
        var sent = 0
        while sent < request.count {
            let r = request[sent...].withUnsafeBytes { sendBytes(socket.fd, from: $0.baseAddress!, count: $0.count, more: false) }
            guard case .done(let n) = r, n > 0 else { throw failure("send", r) }
            sent += n
        }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let r = buffer.withUnsafeMutableBytes { readBytes(socket.fd, into: $0.baseAddress!, count: $0.count) }
            guard case .done(let n) = r else { throw failure("receive", r) }
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
