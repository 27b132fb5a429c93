import CWeirLinux
import Glibc
import WeirCore
import WeirProxy
import WeirSystem

/// The admin HTTP endpoint: `GET /healthz`, `/readyz`, `/metrics`, `/config`. A thread and a listening socket of its
/// own, outside the proxy's workers and limits, so probes keep being answered when the proxy is saturated.
///
/// One non-blocking epoll loop serves every connection at once, so no client, however slow, delays another: a
/// request is read as its bytes arrive and answered as soon as its head is complete (`AdminRequest.parse`). Each
/// connection has one deadline for the whole exchange (`requestDeadlineMs`, from accept to the last byte of the
/// reply), and there is a ceiling on open admin connections (`maxConnections`): past it the oldest connection still
/// waiting for its request is closed to make room, so a crowd of idle or byte-a-second clients can never lock a probe
/// out.
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

    /// One request, as the handler sees it.
    public struct Request {
        public let path: String
        /// The client connected from 127.0.0.0/8 or ::1 (or ::ffff:127.x): the node itself, under hostNetwork.
        public let peerIsLoopback: Bool
        /// The `Authorization: Bearer` token, if the request carried one.
        public let bearerToken: String?
    }

    public typealias Handler = (_ request: Request) -> Response

    public static let requestDeadlineMs: Int64 = 5_000
    public static let maxRequestBytes = 8192
    public let maxConnections: Int
    public let port: UInt16
    public let address: String

    private let listener: Int32
    private let handler: Handler
    private let epoll: Int32
    private let wake: Int32
    private let stopping = AtomicWord()
    /// Alive from creation: the first wait may last 500 ms, and the watchdog may look before it ends.
    private let beat = AtomicWord(weir_now_ms())
    private let done = AtomicWord()
    private var clients: [Int32: Client] = [:]
    private var started = false
    /// Set while the listener is out of epoll because descriptors ran out.
    private var acceptPausedUntil: Int64 = 0

    private final class Client {
        let fd: Int32
        let acceptedMs: Int64
        var loopback = false
        var request: [UInt8] = []
        var reply: [UInt8] = []
        var sent = 0
        var answering: Bool { !reply.isEmpty }
        init(fd: Int32, acceptedMs: Int64) {
            self.fd = fd
            self.acceptedMs = acceptedMs
        }
    }

    /// Binds `host:port` (IPv4 or IPv6 literal) and listens; port 0 picks a free port (see `port`). Throws
    /// `AgentError` naming the address and errno: call it before changing anything on the node.
    public init(host: String, port: UInt16, maxConnections: Int = 256, handler: @escaping Handler) throws {
        self.handler = handler
        self.maxConnections = maxConnections
        guard let address = SocketAddress(ip: host, port: port) else {
            throw AgentError("admin address '\(host)' is not an IP address")
        }
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
                        | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw AgentError("admin socket: \(errnoName(errno))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let text = address.description
        guard address.withSockaddr({ Glibc.bind(fd, $0, $1) }) == 0, Glibc.listen(fd, 1024) == 0 else {
            let e = errno
            close(fd)
            throw AgentError("admin listener \(text): \(errnoName(e))")
        }
        listener = fd
        self.port = SocketAddress.local(of: fd)?.port ?? port
        self.address = address.family == AF_INET6 ? "[\(host)]:\(self.port)" : "\(host):\(self.port)"
        epoll = weir_epoll_create()
        wake = weir_eventfd()
        guard epoll >= 0, wake >= 0 else {
            let e = errno
            close(fd)
            if epoll >= 0 { close(epoll) }
            if wake >= 0 { close(wake) }
            started = true  // nothing left for deinit to close
            throw AgentError("admin epoll: \(errnoName(e))")
        }
        _ = weir_epoll_add(epoll, listener, WEIR_EPOLLIN, UInt64(UInt32(bitPattern: listener)))
        _ = weir_epoll_add(epoll, wake, WEIR_EPOLLIN, UInt64(UInt32(bitPattern: wake)))
    }

    public func start() throws {
        started = true
        do {
            // Detached: it ends on its own after stop(), nobody joins it.
            pthread_detach(try startThread(name: "weir-admin", stackSize: 512 * 1024) { [self] in serve() })
        } catch let e as ThreadStartError {
            throw AgentError("admin thread: \(e.description)")
        }
    }

    /// Stops serving; the loop closes every connection and ends.
    public func stop() {
        guard started else { return }
        stopping.store(true)
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
        // Wait briefly so the listener is closed before the caller goes on (a restart may bind it again at once).
        for _ in 0..<100 where !done.bool { usleep(10_000) }
    }

    /// When the loop last ran (CLOCK_MONOTONIC ms); it wakes at least every 500 ms. The watchdog's proof of life.
    public var heartbeat: Int64 { beat.load() }

    /// Connections closed to make room under the ceiling, or at their deadline.
    public var shedTotal: Int64 { shedCount.load() }
    private let shedCount = AtomicWord()

    /// Connections open now.
    public var openConnections: Int { Int(openCount.load()) }
    private let openCount = AtomicWord()

    private func serve() {
        let events = UnsafeMutablePointer<weir_event>.allocate(capacity: 64)
        defer {
            events.deallocate()
            for fd in clients.keys { close(fd) }
            clients.removeAll()
            close(listener)
            close(epoll)
            close(wake)
            done.store(true)
        }
        while !stopping.bool {
            let n = weir_epoll_wait(epoll, events, 64, 500)
            let now = weir_now_ms()
            beat.store(now)
            for i in 0..<max(0, Int(n)) {
                let fd = Int32(truncatingIfNeeded: events[i].data)
                if fd == wake { continue }
                if fd == listener { acceptAll(now); continue }
                guard let c = clients[fd] else { continue }
                if c.answering { flush(c) } else { readRequest(c) }
            }
            expire(now)
            if acceptPausedUntil > 0 && now >= acceptPausedUntil {
                acceptPausedUntil = 0
                _ = weir_epoll_add(epoll, listener, WEIR_EPOLLIN, UInt64(UInt32(bitPattern: listener)))
            }
            openCount.store(Int64(clients.count))
        }
    }

    private func acceptAll(_ now: Int64) {
        while true {
            var peer = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = weir_accept(listener, &peer, &length)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if errno == EMFILE || errno == ENFILE {
                    // Out of descriptors: make room by closing the oldest waiting connection; with none to close,
                    // take the listener out of epoll for 100 ms instead of spinning on it.
                    if shedOldest() { continue }
                    _ = weir_epoll_del(epoll, listener)
                    acceptPausedUntil = now + 100
                    return
                }
                return
            }
            if clients.count >= maxConnections && !shedOldest() {
                close(fd)
                shedCount.add(1)
                continue
            }
            let c = Client(fd: fd, acceptedMs: now)
            var address = SocketAddress()
            address.storage = peer
            address.length = length
            let ip = address.ip.hasPrefix("::ffff:") ? String(address.ip.dropFirst(7)) : address.ip
            c.loopback = IPAddress(ip)?.isLoopback ?? false
            clients[fd] = c
            _ = weir_epoll_add(epoll, fd, WEIR_EPOLLIN | WEIR_EPOLLRDHUP, UInt64(UInt32(bitPattern: fd)))
            // A probe's request is often there already.
            readRequest(c)
        }
    }

    /// Closes the oldest connection that is still waiting for its request. False if none is.
    private func shedOldest() -> Bool {
        guard let oldest = clients.values.filter({ !$0.answering }).min(by: { $0.acceptedMs < $1.acceptedMs })
        else { return false }
        drop(oldest)
        shedCount.add(1)
        return true
    }

    private func drop(_ c: Client) {
        _ = weir_epoll_del(epoll, c.fd)
        close(c.fd)
        clients[c.fd] = nil
    }

    private func expire(_ now: Int64) {
        for c in clients.values where now - c.acceptedMs >= Self.requestDeadlineMs {
            drop(c)
            shedCount.add(1)
        }
    }

    private func readRequest(_ c: Client) {
        var buffer = [UInt8](repeating: 0, count: 2048)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
            if n <= 0 { drop(c); return }
            c.request += buffer[0..<n]
            switch AdminRequest.parse(c.request, maxBytes: Self.maxRequestBytes) {
            case .incomplete:
                continue
            case .tooLarge:
                respond(c, Response(status: 431, body: "request head too large\n"), head: false)
            case .methodNotAllowed:
                respond(c, Response(status: 405, body: "only GET and HEAD\n"), head: false)
            case .get(let path, let headOnly):
                let request = Request(path: path, peerIsLoopback: c.loopback,
                                      bearerToken: AdminRequest.bearerToken(c.request))
                respond(c, handler(request), head: headOnly)
            }
            return
        }
    }

    private func respond(_ c: Client, _ response: Response, head: Bool) {
        let reasons = [200: "OK", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
                       431: "Request Header Fields Too Large", 503: "Service Unavailable"]
        let body = Array(response.body.utf8)
        let text = "HTTP/1.1 \(response.status) \(reasons[response.status] ?? "Status")\r\n"
            + "Content-Type: \(response.contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        c.reply = Array(text.utf8) + (head ? [] : body)
        _ = weir_epoll_mod(epoll, c.fd, WEIR_EPOLLOUT, UInt64(UInt32(bitPattern: c.fd)))
        flush(c)
    }

    private func flush(_ c: Client) {
        while c.sent < c.reply.count {
            let n = c.reply.withUnsafeBytes { bytes -> Int in
                guard let base = bytes.baseAddress else { return 0 }
                return send(c.fd, base + c.sent, bytes.count - c.sent, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
            if n <= 0 { break }
            c.sent += n
        }
        drop(c)
    }

    deinit {
        if !started {
            close(listener)
            close(epoll)
            close(wake)
        }
    }
}

/// A failure of the agent, already worded for the operator.
public struct AgentError: Error, CustomStringConvertible {
    public let description: String
    /// What a capture install changed before it failed (its repairs count even so).
    public var partialChanges: [CaptureChange] = []
    public init(_ description: String, partialChanges: [CaptureChange] = []) {
        self.description = description
        self.partialChanges = partialChanges
    }
}
