// The data path. One worker per usable CPU, each with its own SO_REUSEPORT listeners and an edge-triggered epoll
// loop; a connection lives and dies on the worker that accepted it, so nothing on the data path is shared or locked.
//
// Bytes move with splice: source socket -> pipe -> destination socket. A pipe is borrowed from the worker's pool
// only while a direction has bytes in flight and goes back only when empty (drain before pump: the pipe is emptied
// into the destination before the source is read again), so idle connections hold no pipe and no buffer. When a pipe
// cannot be had (descriptors exhausted) or splice refuses the socket, the direction falls back to a copy through a
// buffer of --buffer-limit bytes, freed again as soon as it is empty. Small messages (a read that does not fill the
// worker's 16 KiB scratch buffer) are copied through that scratch buffer instead: for a request or a reply, one read
// and one write are cheaper than two splices. The first read that fills it marks the direction bulk: splice from then.
//
// Every event goes through `ProxyConnectionState` (WeirCore), which returns the actions to perform: shutdown to
// propagate half-close, SO_LINGER 0 to propagate a reset, close. Deadlines of one duration are FIFO lists
// (connecting, active), so timeouts cost O(1) per connection without timers in the kernel.
import CWeirLinux
import Glibc
import Synchronization
import WeirCore
import WeirSystem

/// State shared by all workers and the main thread.
final class SharedState: @unchecked Sendable {
    let config: ProxyConfig
    let counters: ProxyCounters
    /// 1 once SIGTERM arrived; read by workers after their eventfd fires.
    let draining: UnsafeMutablePointer<Int64>
    /// Diagnostic switch (WEIR_PROXY_COPY=1): never splice, always use the bounded copy, to exercise that path.
    let copyOnly: Bool
    /// Set by a worker that cannot go on; the server decides what follows (a worker never exits the process).
    let failure = Mutex<String?>(nil)

    init(config: ProxyConfig, counters: ProxyCounters, copyOnly: Bool) {
        self.config = config
        self.counters = counters
        self.copyOnly = copyOnly
        draining = .allocate(capacity: 1)
        draining.initialize(to: 0)
    }

    deinit { draining.deallocate() }

    func fail(_ reason: String) {
        failure.withLock { if $0 == nil { $0 = reason } }
    }
}

// epoll cookies: 1 is the wake eventfd, 16 + i is listener i; anything else is a Connection's address (aligned, so
// far above these) with bit 0 telling the side: 0 client, 1 upstream.
private let tagWake: UInt64 = 1
private let tagListenerBase: UInt64 = 16
private let tagListenerLimit: UInt64 = 4096
private let maxPooledPipes = 16

final class Worker {
    let index: Int
    /// Per-connection event lines, rate-limited per event.
    private let eventLog = EventLogLimiter()
    let shared: SharedState
    let config: ProxyConfig
    let counters: ProxyCounters
    let epoll: Int32
    let wake: Int32
    var listeners: [Listener]
    var pipePool: [(Int32, Int32)] = []
    var connecting = ConnectionList()
    var active = ConnectionList()
    /// Connections closed during the current batch of events; freed after it, as later events may name them.
    var graveyard: [Connection] = []
    var now: Int64 = weir_now_ms()
    var acceptPausedUntil: Int64 = 0
    var listenersRegistered = false
    var reserveFd: Int32 = -1
    var draining = false
    var drainDeadline: Int64 = 0
    let pipeSize: Int32
    /// Scratch buffer for small messages, shared by all connections of this worker (only used within one call).
    let scratch: UnsafeMutableRawPointer
    let scratchSize = 16 * 1024
    let touchGranularity: Int64

    init(index: Int, shared: SharedState, listeners: [Listener]) throws {
        self.index = index
        self.shared = shared
        self.config = shared.config
        self.counters = shared.counters
        self.listeners = listeners
        epoll = weir_epoll_create()
        wake = weir_eventfd()
        guard epoll >= 0, wake >= 0 else { throw ListenError(description: "epoll/eventfd: \(errnoName(errno))") }
        pipeSize = Int32(shared.config.bufferLimit)
        scratch = UnsafeMutableRawPointer.allocate(byteCount: scratchSize, alignment: 16)
        let idle = shared.config.idleTimeoutMs
        touchGranularity = idle > 0 ? max(1, min(1000, idle / 10)) : Int64.max
        _ = weir_epoll_add(epoll, wake, WEIR_EPOLLIN, tagWake)
        registerListeners()
        reserveFd = open("/dev/null", O_RDONLY | O_CLOEXEC)
    }

    /// Releases what `init` took, for a worker that never runs (a later listener of the server failed to bind).
    func closeAll() {
        for l in listeners { close(l.fd) }
        listeners.removeAll()
        scratch.deallocate()
        close(epoll)
        close(wake)
        if reserveFd >= 0 { close(reserveFd) }
    }

    /// Wakes the worker from another thread (drain).
    func notify() {
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
    }

    private func registerListeners() {
        for (i, l) in listeners.enumerated() {
            _ = weir_epoll_add(epoll, l.fd, WEIR_EPOLLIN, tagListenerBase + UInt64(i))
        }
        listenersRegistered = true
    }

    private func unregisterListeners() {
        for l in listeners { _ = weir_epoll_del(epoll, l.fd) }
        listenersRegistered = false
    }

    // MARK: loop

    func run() {
        let uid = config.proxyUID, gid = config.proxyGID
        if weir_set_thread_fs_ids(uid, gid) != 0 {
            shared.fail("worker \(index) cannot own upstream sockets as uid \(uid) gid \(gid): run as root or as "
                        + "that user")
            return
        }
        let events = UnsafeMutablePointer<weir_event>.allocate(capacity: 256)
        defer { events.deallocate() }
        while true {
            let n = weir_epoll_wait(epoll, events, 256, nextTimeout())
            now = weir_now_ms()
            counters.beat(worker: index, nowMs: now)
            if n < 0 && errno != EINTR {
                shared.fail("worker \(index): epoll_wait: \(errnoName(errno))")
                break
            }
            for i in 0..<max(0, Int(n)) {
                let e = events[i]
                if e.data == tagWake {
                    var value: UInt64 = 0
                    _ = read(wake, &value, 8)
                    if weir_atomic_load(shared.draining) != 0 && !draining { startDrain() }
                } else if e.data < tagListenerLimit {
                    acceptAll(listeners[Int(e.data - tagListenerBase)])
                } else {
                    let side: ProxySide = e.data & 1 == 0 ? .client : .upstream
                    let c = Unmanaged<Connection>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(e.data & ~1))!)
                        .takeUnretainedValue()
                    handleIO(c, side: side, events: e.events)
                }
            }
            expireDeadlines()
            graveyard.removeAll(keepingCapacity: true)
            if draining && connecting.count == 0 && active.count == 0 { break }
        }
        for (r, w) in pipePool { close(r); close(w) }
        pipePool.removeAll()
        scratch.deallocate()
        close(epoll)
        close(wake)
        if reserveFd >= 0 { close(reserveFd) }
    }

    private func nextTimeout() -> Int32 {
        var deadline = now + 1000
        if let c = connecting.head { deadline = min(deadline, c.listTime + config.connectTimeoutMs) }
        if config.idleTimeoutMs > 0, let c = active.head { deadline = min(deadline, c.listTime + config.idleTimeoutMs) }
        if !listenersRegistered && !draining { deadline = min(deadline, acceptPausedUntil) }
        if draining { deadline = min(deadline, drainDeadline) }
        return Int32(max(0, min(1000, deadline - weir_now_ms())))
    }

    private func expireDeadlines() {
        while let c = connecting.head, c.listTime + config.connectTimeoutMs <= now {
            counters.add(.connectTimeouts)
            counters.addWorker(index, ProxyCounters.Slot.failures + UpstreamFailure.timeout.rawValue)
            eventLog.log("connect_timeout", ["worker": index, "after_ms": config.connectTimeoutMs])
            apply(c, c.state.handle(.connectTimeout))
        }
        if config.idleTimeoutMs > 0 {
            while let c = active.head, c.listTime + config.idleTimeoutMs <= now {
                counters.add(.idleTimeouts)
                apply(c, c.state.handle(.idleTimeout))
            }
        }
        if !listenersRegistered && !draining && now >= acceptPausedUntil {
            if reserveFd < 0 { reserveFd = open("/dev/null", O_RDONLY | O_CLOEXEC) }
            registerListeners()
        }
        if draining && now >= drainDeadline {
            for list in [connecting, active] {
                var c = list.head
                while let current = c {
                    c = current.next
                    counters.add(.drainClosed)
                    apply(current, current.state.handle(.drainDeadline))
                }
            }
        }
    }

    private func startDrain() {
        draining = true
        drainDeadline = now + config.drainTimeoutMs
        for l in listeners { close(l.fd) }
        listeners.removeAll()
        listenersRegistered = false
        log("drain_started", ["worker": index, "connections": connecting.count + active.count,
                              "deadline_ms": config.drainTimeoutMs])
        for list in [connecting, active] {
            var c = list.head
            while let current = c {
                c = current.next
                apply(current, current.state.handle(.drainStarted))
            }
        }
    }

    // MARK: accept

    private func acceptAll(_ l: Listener) {
        var peer = SocketAddress()
        while listenersRegistered {
            let fd = weir_accept(l.fd, &peer.storage, &peer.length)
            if fd < 0 {
                let e = errno
                if e == EAGAIN || e == EWOULDBLOCK { return }
                if e == EINTR || e == ECONNABORTED || e == EPROTO { continue }
                if e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM {
                    descriptorsExhausted(l, errno: e)
                    return
                }
                log("accept_failed", ["worker": index, "errno": errnoName(e)])
                return
            }
            counters.add(.accepted)
            if counters.addFetch(.active, 1) > Int64(config.maxConnections) {
                counters.add(.active, -1)
                counters.add(.refusedMaxConnections)
                reset(fd)
                continue
            }
            startConnection(fd, peer: peer, listener: l)
        }
    }

    /// Out of descriptors: refuse one waiting client with the reserve descriptor, then stop accepting for 100 ms
    /// (listeners out of epoll) so the loop does not spin; accepting resumes by itself when descriptors free up.
    private func descriptorsExhausted(_ l: Listener, errno e: Int32) {
        counters.add(.fdExhausted)
        if reserveFd >= 0 {
            close(reserveFd)
            var peer = SocketAddress()
            let fd = weir_accept(l.fd, &peer.storage, &peer.length)
            if fd >= 0 { reset(fd) }
            reserveFd = open("/dev/null", O_RDONLY | O_CLOEXEC)
        }
        pauseAccepting(reason: errnoName(e))
    }

    private func pauseAccepting(reason: String) {
        if listenersRegistered {
            unregisterListeners()
            log("accept_paused", ["worker": index, "reason": reason, "for_ms": 100])
        }
        acceptPausedUntil = now + 100
    }

    /// Closes a socket with a RST.
    private func reset(_ fd: Int32) {
        _ = weir_set_linger_reset(fd)
        close(fd)
    }

    private func startConnection(_ fd: Int32, peer: SocketAddress, listener l: Listener) {
        let target: SocketAddress
        let tproxy = l.kind == .inbound && config.mode == .tproxy
        if tproxy {
            // TPROXY: the listener is IP_TRANSPARENT and the accepted socket's local address is the destination.
            guard let local = SocketAddress.local(of: fd) else { refuse(fd); return }
            target = local
            if local.port == l.port { notRedirected(fd, local: local, peer: peer); return }
        } else {
            // Not redirected: no NAT entry, or the original destination is the listener itself. Only a destination
            // on the listener's port can be the listener, so the common case costs no getsockname.
            guard let original = SocketAddress.originalDestination(of: fd, family: l.family) else {
                notRedirected(fd, local: SocketAddress.local(of: fd) ?? SocketAddress(), peer: peer)
                return
            }
            if original.port == l.port, let local = SocketAddress.local(of: fd), original == local {
                notRedirected(fd, local: local, peer: peer)
                return
            }
            target = original
        }
        // The client usually speaks first and its first bytes are often here already (HTTP, TLS): read them now.
        // Then the upstream's handshake can end with those bytes instead of a bare ACK (TCP_QUICKACK 0), one
        // segment fewer per connection. A client that has not spoken yet costs one read that says EAGAIN.
        var early = 0
        if !shared.copyOnly {
            let r = read(fd, scratch, scratchSize)
            if r > 0 {
                early = r
            } else if r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                refuse(fd)  // reset or failed before there was anything to forward
                return
            }  // 0: the client's end of stream; epoll reports it again once registered
        }
        let up = socket(target.family, nonBlockingStream, 0)
        if up < 0 {
            let e = errno
            if e == EMFILE || e == ENFILE { counters.add(.fdExhausted); pauseAccepting(reason: errnoName(e)) }
            refuse(fd)
            return
        }
        if l.kind == .inbound {
            var source: SocketAddress
            if tproxy {
                // Keep the client's address: transparent socket bound to it, marked so replies come back to us.
                _ = weir_set_transparent(up, target.family)
                _ = weir_set_mark(up, config.tproxyMark)
                source = peer
                source.port = 0
            } else {
                // Hand-off from 127.0.0.6 / ::6: FREEBIND works before ::6 exists on lo; NO_PORT defers the port
                // choice to connect(), so binding does not use up ephemeral ports.
                _ = weir_set_freebind(up, target.family)
                source = SocketAddress(ip: target.family == AF_INET6 ? "::6" : "127.0.0.6", port: 0)!
            }
            _ = weir_set_bind_address_no_port(up)
            if source.withSockaddr({ bind(up, $0, $1) }) != 0 {
                eventLog.log("bind_failed", ["worker": index, "source": source, "errno": errnoName(errno)])
                close(up)
                refuse(fd)
                return
            }
        }
        // No Nagle delay added by the proxy: bytes leave when the client's did (the listeners' sockets inherit it).
        _ = weir_set_nodelay(up)
        if early > 0 { _ = weir_set_quickack(up, 0) }
        let dialedUs = weir_now_us()
        let rc = target.withSockaddr { connect(up, $0, $1) }
        if rc != 0 && errno != EINPROGRESS {
            upstreamFailed(up, client: fd, target: target)
            return
        }
        var sent = 0
        if early > 0 {
            // On loopback and fast links the handshake is done by now; otherwise EAGAIN and the bytes wait.
            guard let n = sendScratch(early, to: up, toward: .upstream, more: false) else {
                upstreamFailed(up, client: fd, target: target)  // refused or unreachable, known at once
                return
            }
            sent = n
        }
        let c = Connection(client: fd, now: now)
        c.upstream = up
        c.inbound = l.kind == .inbound
        c.dialedUs = dialedUs
        counters.opened(worker: index, inbound: c.inbound)
        // Held until the upstream is connected: drain before pump writes it first.
        if early > sent && !holdScratch(&c.up, from: sent, count: early - sent) { close(up); refuse(fd); return }
        if early == scratchSize { c.up.bulk = true }
        if early > 0 {
            // The handshake's ACK has left with the first bytes, or will with the held ones once connected.
            if sent == early { _ = weir_set_quickack(up, 1) } else { c.quickAckOff = true }
        }
        if shared.copyOnly {
            c.up.copyOnly = true
            c.up.bulk = true
            c.down.copyOnly = true
            c.down.bulk = true
        }
        connecting.append(c)
        let cookie = UInt64(UInt(bitPattern: Unmanaged.passUnretained(c).toOpaque()))
        let mask = WEIR_EPOLLIN | WEIR_EPOLLOUT | WEIR_EPOLLRDHUP | WEIR_EPOLLET
        _ = weir_epoll_add(epoll, fd, mask, cookie)
        _ = weir_epoll_add(epoll, up, mask, cookie | 1)
    }

    /// The upstream connect failed (errno still says why): close it and reset the client.
    private func upstreamFailed(_ up: Int32, client fd: Int32, target: SocketAddress) {
        let e = errno
        counters.upstreamFailed(worker: index, .of(errno: e))
        eventLog.log("connect_failed", ["worker": index, "destination": target, "errno": errnoName(e)])
        close(up)
        refuse(fd)
    }

    /// A connection we accepted but cannot forward: reset it and give back its slot.
    private func refuse(_ fd: Int32) {
        reset(fd)
        counters.add(.active, -1)
        counters.add(.closed)
    }

    private func notRedirected(_ fd: Int32, local: SocketAddress, peer: SocketAddress) {
        counters.add(.notRedirected)
        eventLog.log("not_redirected", ["worker": index, "local": local, "peer": peer])
        refuse(fd)
    }

    // MARK: I/O

    private func handleIO(_ c: Connection, side: ProxySide, events: UInt32) {
        if c.state.isClosed { return }
        let failed = events & WEIR_EPOLLERR != 0
        // Remember a FIN even while connecting: edge-triggered, it is signalled once (data + FIN often come together).
        if events & (WEIR_EPOLLRDHUP | WEIR_EPOLLHUP) != 0 {
            if side == .client { c.clientHangup = true } else { c.upstreamHangup = true }
        }
        if !c.state.connected {
            if side == .upstream {
                if events & (WEIR_EPOLLOUT | WEIR_EPOLLERR | WEIR_EPOLLHUP) == 0 { return }
                // Writable without error or hang-up means connected; SO_ERROR is asked only on failure.
                if events & (WEIR_EPOLLERR | WEIR_EPOLLHUP) == 0 {
                    apply(c, c.state.handle(.connected))
                    return
                }
                let err = weir_socket_error(c.upstream)
                if err == 0 && !failed && events & WEIR_EPOLLOUT != 0 {
                    apply(c, c.state.handle(.connected))
                } else {
                    counters.upstreamFailed(worker: index, .of(errno: err))
                    eventLog.log("connect_failed", ["worker": index, "errno": errnoName(err)])
                    apply(c, c.state.handle(.connectFailed))
                }
            } else if failed || events & WEIR_EPOLLHUP != 0 && events & WEIR_EPOLLIN == 0 {
                apply(c, c.state.handle(.failed(.client)))
            }
            return
        }
        if failed, weir_socket_error(c.fd(side)) != 0 {
            counters.add(.resets)
            apply(c, c.state.handle(.failed(side)))
            return
        }
        if events & (WEIR_EPOLLIN | WEIR_EPOLLRDHUP | WEIR_EPOLLHUP) != 0 { setReadable(c, side, true) }
        if events & (WEIR_EPOLLOUT | WEIR_EPOLLHUP) != 0 { setWritable(c, side, true) }
        pumpBoth(c)
        touch(c)
    }

    private func touch(_ c: Connection) {
        if c.state.isClosed || c.inConnectingList || now - c.listTime < touchGranularity { return }
        active.remove(c)
        c.listTime = now
        active.append(c)
    }

    @inline(__always) private func setReadable(_ c: Connection, _ side: ProxySide, _ v: Bool) {
        if side == .client { c.clientReadable = v } else { c.upstreamReadable = v }
    }

    @inline(__always) private func setWritable(_ c: Connection, _ side: ProxySide, _ v: Bool) {
        if side == .client { c.clientWritable = v } else { c.upstreamWritable = v }
    }

    private func pumpBoth(_ c: Connection) {
        pump(c, from: .client)
        if !c.state.isClosed { pump(c, from: .upstream) }
    }

    private enum PumpOutcome {
        case blocked
        case flushed
        case failed(ProxySide)
    }

    private func pump(_ c: Connection, from source: ProxySide) {
        let outcome = source == .client
            ? move(c, from: .client, flight: &c.up) : move(c, from: .upstream, flight: &c.down)
        switch outcome {
        case .blocked: break
        case .flushed: apply(c, c.state.handle(.flushed(toward: source.other)))
        case .failed(let side):
            counters.add(.resets)
            apply(c, c.state.handle(.failed(side)))
        }
    }

    private enum ReadStop {
        case stop
        case retry
        case error(Int32)
    }

    /// After a read or splice from `source` that returned `n <= 0`: end of stream or an empty receive queue stops
    /// reading (and records which), EINTR retries, anything else is the caller's error.
    @inline(__always) private func afterEmptyRead(_ n: Int, _ c: Connection, _ source: ProxySide) -> ReadStop {
        if n == 0 {
            setReadable(c, source, false)
            _ = c.state.handle(.endOfStream(from: source))
            return .stop
        }
        let e = errno
        if e == EAGAIN || e == EWOULDBLOCK {
            setReadable(c, source, false)
            return .stop
        }
        return e == EINTR ? .retry : .error(e)
    }

    /// Moves bytes from `source` to the other side until one of them would block. Touches only this direction's
    /// flight and the readiness flags, so the caller applies state changes afterwards.
    private func move(_ c: Connection, from source: ProxySide, flight f: inout Flight) -> PumpOutcome {
        let dest = source.other
        let src = c.fd(source), dst = c.fd(dest)
        moving: while true {
            if f.pending > 0 {
                if !(dest == .client ? c.clientWritable : c.upstreamWritable) { break }
                // The source's end of stream is known and follows these bytes at once: MSG_MORE lets the last of
                // them wait in the socket for the FIN, so both leave in one segment.
                let more: Int32 = c.state.flow(from: source) == .ending ? 1 : 0
                let n = f.hasPipe
                    ? weir_splice(f.pipeRead, dst, f.pending, more) : weir_send(dst, f.buffer! + f.offset, f.pending, more)
                if n > 0 {
                    f.pending -= n
                    f.offset += n
                    counters.addBytes(worker: index, toward: dest, n)
                    continue
                }
                let e = errno
                if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) {
                    setWritable(c, dest, false)
                    counters.add(.bufferFull)
                    break
                }
                if n < 0 && e == EINTR { continue }
                return .failed(dest)
            }
            if c.state.flow(from: source) != .open || !(source == .client ? c.clientReadable : c.upstreamReadable) {
                break
            }
            if !f.bulk && !f.hasPipe && f.buffer == nil {
                // Small messages: read into the worker's scratch buffer and write at once; cheaper than two
                // splices for a request or a reply. Only what the destination does not take is kept, in a buffer.
                var n = read(src, scratch, scratchSize)
                if n > 0 {
                    if n == scratchSize {
                        f.bulk = true
                    } else if !(source == .client ? c.clientHangup : c.upstreamHangup) {
                        // A short read emptied the receive queue (as nginx assumes with edge-triggered epoll): new
                        // data raises a new event, so skip the read that would only say EAGAIN.
                        setReadable(c, source, false)
                    } else {
                        // The peer's FIN was signalled, so all it sent is queued: this short read emptied the queue
                        // and the next read is the end of stream. Read it before writing, so that the FIN can
                        // leave in the same segment as these bytes (one segment and one ACK fewer).
                        let m = read(src, scratch + n, scratchSize - n)
                        if m > 0 {
                            n += m
                        } else if case .error = afterEmptyRead(m, c, source) {
                            return .failed(source)
                        }
                    }
                    var written = 0
                    if dest == .client ? c.clientWritable : c.upstreamWritable {
                        guard let w = sendScratch(n, to: dst, toward: dest, more: c.state.flow(from: source) == .ending)
                        else { return .failed(dest) }
                        written = w
                    }
                    if written < n && !holdScratch(&f, from: written, count: n - written) { return .failed(source) }
                    continue
                }
                switch afterEmptyRead(n, c, source) {
                case .stop: break moving
                case .retry: continue moving
                case .error: return .failed(source)
                }
            }
            if !f.hasPipe && f.buffer == nil && !acquire(&f) { break }
            let limit = config.bufferLimit
            let n = f.hasPipe ? weir_splice(src, f.pipeWrite, limit, 0) : read(src, f.buffer!, limit)
            if n > 0 {
                f.pending = n
                f.offset = 0
                continue
            }
            switch afterEmptyRead(n, c, source) {
            case .stop: break moving
            case .retry: continue moving
            case .error(let e):
                if f.hasPipe && (e == EINVAL || e == ENOSYS) {
                    // splice cannot read this socket: copy from now on.
                    closePipe(&f)
                    f.copyOnly = true
                    continue moving
                }
                return .failed(source)
            }
        }
        if f.pending == 0 {
            release(&f)
            return .flushed
        }
        return .blocked
    }

    /// Sends the first `n` bytes of the scratch buffer and counts what was written. Returns how many the socket
    /// took (0 when it is full), or nil on a failure for good, with errno saying which.
    private func sendScratch(_ n: Int, to fd: Int32, toward side: ProxySide, more: Bool) -> Int? {
        let w = weir_send(fd, scratch, n, more ? 1 : 0)
        if w < 0 {
            let e = errno
            return e == EAGAIN || e == EWOULDBLOCK || e == EINTR ? 0 : nil
        }
        counters.addBytes(worker: index, toward: side, w)
        return w
    }

    /// Keeps `count` scratch bytes from `offset` as the direction's pending bytes, written before anything is read
    /// again (drain before pump). The buffer has the copy fallback's size: the direction may read into it later.
    private func holdScratch(_ f: inout Flight, from offset: Int, count: Int) -> Bool {
        guard let buffer = malloc(max(config.bufferLimit, scratchSize)) else { return false }
        memcpy(buffer, scratch + offset, count)
        f.buffer = buffer
        f.offset = 0
        f.pending = count
        return true
    }

    /// Gives a direction somewhere to put bytes: a pooled or new pipe, else the bounded copy buffer.
    private func acquire(_ f: inout Flight) -> Bool {
        if !f.copyOnly {
            if let (r, w) = pipePool.popLast() {
                f.pipeRead = r
                f.pipeWrite = w
                return true
            }
            var fds: [Int32] = [-1, -1]
            if weir_pipe(&fds, pipeSize) == 0 {
                f.pipeRead = fds[0]
                f.pipeWrite = fds[1]
                return true
            }
        }
        guard let buffer = malloc(config.bufferLimit) else { return false }
        counters.add(.copyFallbacks)
        f.buffer = buffer
        return true
    }

    /// Returns an empty pipe to the pool, frees an empty copy buffer.
    private func release(_ f: inout Flight) {
        if f.hasPipe {
            if f.pending == 0 && pipePool.count < maxPooledPipes {
                pipePool.append((f.pipeRead, f.pipeWrite))
                f.pipeRead = -1
                f.pipeWrite = -1
            } else {
                closePipe(&f)
            }
        }
        if let b = f.buffer {
            free(b)
            f.buffer = nil
        }
        f.offset = 0
    }

    private func closePipe(_ f: inout Flight) {
        if f.pipeRead >= 0 { close(f.pipeRead); close(f.pipeWrite) }
        f.pipeRead = -1
        f.pipeWrite = -1
    }

    // MARK: actions

    private func apply(_ c: Connection, _ actions: ProxyActions) {
        if actions.isEmpty { return }
        if actions.contains(.startForwarding) {
            counters.connected(worker: index, afterUs: weir_now_us() - c.dialedUs)
            connecting.remove(c)
            c.inConnectingList = false
            c.listTime = now
            active.append(c)
            c.clientReadable = true
            c.clientWritable = true
            c.upstreamReadable = true
            c.upstreamWritable = true
            pumpBoth(c)
            // Not once pumping closed the connection: the descriptor may already belong to someone else.
            if c.quickAckOff && !c.state.isClosed { _ = weir_set_quickack(c.upstream, 1) }
            c.quickAckOff = false
            return
        }
        if actions.contains(.shutdownClientWrite) { shutdown(c.client, Int32(SHUT_WR)) }
        if actions.contains(.shutdownUpstreamWrite) { shutdown(c.upstream, Int32(SHUT_WR)) }
        if actions.contains(.resetClient) { _ = weir_set_linger_reset(c.client) }
        if actions.contains(.resetUpstream) { _ = weir_set_linger_reset(c.upstream) }
        if actions.contains(.close) {
            // Pipes that still hold bytes are closed, never pooled.
            c.up.pending = 0
            c.down.pending = 0
            closePipe(&c.up)
            closePipe(&c.down)
            release(&c.up)
            release(&c.down)
            close(c.client)
            close(c.upstream)
            graveyard.append(c)
            if c.inConnectingList { connecting.remove(c) } else { active.remove(c) }
            counters.add(.active, -1)
            counters.add(.closed)
            counters.closedForwarded(worker: index, inbound: c.inbound, lifetimeMs: now - c.createdMs)
        }
    }
}
