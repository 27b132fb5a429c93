import Glibc
import WeirCore
import WeirProxy

/// The admin HTTP endpoint: `GET /healthz`, `GET /readyz`, `GET /metrics`. One thread of its own and its own listening
/// socket, outside the proxy's workers and limits, so probes keep being answered when the proxy is saturated. Each
/// request is read with a short timeout and answered with `Connection: close`; it never blocks on a slow client for
/// more than `ioTimeoutSeconds`.
public final class AdminServer: @unchecked Sendable {
    public struct Response {
        public let status: Int
        public let contentType: String
        public let body: String

        public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: String) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }
    }

    public typealias Handler = (_ path: String) -> Response

    private let fd: Int32
    private let handler: Handler
    private let ioTimeoutSeconds = 2
    private var stopping = false
    public let port: UInt16

    /// Binds `host:port` (IPv4 or IPv6 literal). Port 0 picks a free port (see `port`).
    public init(host: String, port: UInt16, handler: @escaping Handler) throws {
        self.handler = handler
        (fd, self.port) = try Self.listen(host: host, port: port)
    }

    private static func listen(host: String, port: UInt16) throws -> (Int32, UInt16) {
        let v6 = host.contains(":")
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw AgentError("admin socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var storage = sockaddr_storage()
        var length: socklen_t
        let parsed: Bool = withUnsafeMutablePointer(to: &storage) { p in
            if v6 {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    $0.pointee.sin6_family = sa_family_t(AF_INET6)
                    $0.pointee.sin6_port = port.bigEndian
                    return inet_pton(AF_INET6, host, &$0.pointee.sin6_addr) == 1
                }
            }
            return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                $0.pointee.sin_family = sa_family_t(AF_INET)
                $0.pointee.sin_port = port.bigEndian
                return inet_pton(AF_INET, host, &$0.pointee.sin_addr) == 1
            }
        }
        length = socklen_t(v6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
        guard parsed else {
            close(fd)
            throw AgentError("admin address '\(host)' is not an IP address")
        }
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard rc == 0, Glibc.listen(fd, 64) == 0 else {
            let e = errno
            close(fd)
            throw AgentError("admin listener \(host):\(port): \(String(cString: strerror(e)))")
        }
        var bound = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        // sin_port and sin6_port sit at the same offset.
        let boundPort = withUnsafePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
        return (fd, boundPort)
    }

    public func start() throws {
        // Detached: it ends on its own after stop(), nobody joins it.
        pthread_detach(try startThread(name: "weir-admin", stackSize: 256 * 1024) { [self] in serve() })
    }

    /// Stops accepting; the thread ends after its current request.
    public func stop() {
        stopping = true
        shutdown(fd, Int32(SHUT_RDWR))
    }

    deinit { close(fd) }

    private func serve() {
        while !stopping {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if stopping { return }
                // EMFILE and friends: do not spin.
                usleep(50_000)
                continue
            }
            handle(client)
            close(client)
        }
    }

    private func handle(_ client: Int32) {
        var tv = timeval(tv_sec: ioTimeoutSeconds, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var request = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 2048)
        while request.count < 8192 {
            let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            request += buffer[0..<n]
            if request.count >= 4, request.suffix(4) == [13, 10, 13, 10] { break }
            if request.contains(10) && String(decoding: request, as: UTF8.self).contains("\r\n\r\n") { break }
        }
        let line = String(decoding: request, as: UTF8.self).split(separator: "\r\n").first ?? ""
        let parts = line.split(separator: " ")
        let response: Response
        if parts.count >= 2 && (parts[0] == "GET" || parts[0] == "HEAD") {
            let path = String(parts[1].split(separator: "?").first ?? "")
            response = handler(path)
        } else {
            response = Response(status: 405, body: "only GET\n")
        }
        let reason = [200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"][response.status]
            ?? "Status"
        let body = Array(response.body.utf8)
        let head = "HTTP/1.1 \(response.status) \(reason)\r\nContent-Type: \(response.contentType)\r\n"
            + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let bytes = Array(head.utf8) + (parts.first == "HEAD" ? [] : body)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(client, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }
}

/// A failure of the agent, already worded for the operator.
public struct AgentError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
