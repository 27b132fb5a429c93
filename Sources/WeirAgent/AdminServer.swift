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

    private let listener: Socket
    private let handler: Handler
    private let poller: Poller
    private var accepting = AcceptGate()
    private let stopping = AtomicWord()
    /// Alive from creation: the first wait may last 500 ms, and the watchdog may look before it ends.
    private let beat = AtomicWord(Clock.nowMs())
    private let done = AtomicWord()
    private var clients: [Int32: Client] = [:]
    private var started = false

    /// One admin connection; its socket closes with it.
    private final class Client {
        let socket: Socket
        let acceptedMs: Int64
        var loopback = false
        var request: [UInt8] = []
        var reply: [UInt8] = []
        var sent = 0
        var answering: Bool { !reply.isEmpty }
        var fd: Int32 { socket.fd }
        init(socket: Socket, acceptedMs: Int64) {
            self.socket = socket
            self.acceptedMs = acceptedMs
        }
    }

    /// Binds `host:port` (IPv4 or IPv6 literal) and listens; port 0 picks a free port (see `port`). Throws
    /// `AgentError` naming the address and errno: call it before changing anything on the node. Everything it opened
    /// closes itself when the server is let go, started or not.
    /// `inherited`: the listening socket of the process this one replaces (bound to the same address), used
    /// instead of binding, so no probe or scrape is refused while weir is replaced.
    public init(host: String, port: UInt16, maxConnections: Int = 256, inherited: Socket? = nil,
                handler: @escaping Handler) throws {
        self.handler = handler
        self.maxConnections = maxConnections
        guard let address = SocketAddress(ip: host, port: port) else {
            throw AgentError("admin address '\(host)' is not an IP address")
        }
        do {
            listener = try inherited ?? Socket.listener(on: address, backlog: 1024)
        } catch let e as SystemError {
            throw AgentError(e.call == "socket" ? "admin socket: \(errnoName(e.errno))"
                                                : "admin listener \(address): \(errnoName(e.errno))")
        }
        self.port = listener.localAddress?.port ?? port
        self.address = address.family == AddressFamily.ipv6 ? "[\(host)]:\(self.port)" : "\(host):\(self.port)"
        do { poller = try Poller(capacity: 64) } catch let e as SystemError {
            throw AgentError("admin epoll: \(errnoName(e.errno))")
        }
        accepting.open(poller, listenerToken)
    }

    /// The listener with its poller token (client tokens are their descriptor numbers).
    private var listenerToken: [(fd: Int32, token: UInt64)] { [(listener.fd, UInt64(UInt32(bitPattern: listener.fd)))] }

    /// The listening socket's descriptor, to hand over or keep in systemd's store.
    public var listenerDescriptor: Int32 { listener.fd }

    public func start() throws {
        do {
            // Detached: it ends on its own after stop(), nobody joins it.
            detachThread(try startThread(name: "weir-admin", stackSize: 512 * 1024) { [self] in serve() })
        } catch let e as ThreadStartError {
            throw AgentError("admin thread: \(e.description)")
        }
        started = true
    }

    /// Stops serving; the loop closes every connection and ends.
    public func stop() {
        guard started else { return }
        stopping.store(true)
        poller.wake()
        // Wait briefly so the listener is closed before the caller goes on (a restart may bind it again at once).
        for _ in 0..<100 where !done.bool { sleepMilliseconds(10) }
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
        defer {
            clients.removeAll()  // closes them
            listener.close()
            done.store(true)
        }
        while !stopping.bool {
            let n = (try? poller.wait(timeoutMs: 500)) ?? 0
            let now = Clock.nowMs()
            beat.store(now)
            for i in 0..<n {
                let token = poller[i].token
                if token == Poller.wakeToken {
                    poller.acknowledgeWake()
                } else if token == UInt64(UInt32(bitPattern: listener.fd)) {
                    acceptAll(now)
                } else if let c = clients[Int32(truncatingIfNeeded: token)] {
                    if c.answering { flush(c) } else { readRequest(c) }
                }
            }
            expire(now)
            if accepting.pauseEnded(now: now) { accepting.open(poller, listenerToken) }
            openCount.store(Int64(clients.count))
        }
    }

    private func acceptAll(_ now: Int64) {
        while accepting.isOpen {
            var peer = SocketAddress()
            switch acceptConnection(listener.fd, peer: &peer) {
            case .accepted(let fd):
                admit(Socket(owning: fd, family: listener.family), peer: peer, now: now)
            case .outOfDescriptors(let e) where e == Errno.EMFILE || e == Errno.ENFILE:
                // Out of descriptors: make room by closing the oldest waiting connection; with none to close,
                // pause accepting instead of spinning on the listener.
                if shedOldest() { continue }
                accepting.pause(poller, listenerToken, now: now)
                return
            case .wouldBlock, .outOfDescriptors, .failed:
                return
            }
        }
    }

    private func admit(_ socket: Socket, peer: SocketAddress, now: Int64) {
        if clients.count >= maxConnections && !shedOldest() {
            shedCount.add(1)
            return  // the socket closes as it goes
        }
        let c = Client(socket: socket, acceptedMs: now)
        let ip = peer.ip.hasPrefix("::ffff:") ? String(peer.ip.dropFirst(7)) : peer.ip
        c.loopback = IPAddress(ip)?.isLoopback ?? false
        clients[c.fd] = c
        poller.add(c.fd, PollEvents.readable.union(.readHangup), token: UInt64(UInt32(bitPattern: c.fd)))
        // A probe's request is often there already.
        readRequest(c)
    }

    /// Closes the oldest connection that is still waiting for its request. False if none is.
    private func shedOldest() -> Bool {
        guard let oldest = clients.values.filter({ !$0.answering }).min(by: { $0.acceptedMs < $1.acceptedMs })
        else { return false }
        drop(oldest)
        shedCount.add(1)
        return true
    }

    /// Forgets a connection; its socket closes (and leaves the poller) with it.
    private func drop(_ c: Client) {
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
            let r = buffer.withUnsafeMutableBytes { readBytes(c.fd, into: $0.baseAddress!, count: $0.count) }
            guard case .done(let n) = r else {
                if r != .wouldBlock { drop(c) }
                return
            }
            if n == 0 { drop(c); return }
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
        poller.modify(c.fd, .writable, token: UInt64(UInt32(bitPattern: c.fd)))
        flush(c)
    }

    private func flush(_ c: Client) {
        while c.sent < c.reply.count {
            let r = c.reply.withUnsafeBytes { bytes in
                sendBytes(c.fd, from: bytes.baseAddress! + c.sent, count: bytes.count - c.sent, more: false)
            }
            if r == .wouldBlock { return }
            guard case .done(let n) = r, n > 0 else { break }
            c.sent += n
        }
        drop(c)
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
