// Accepting a captured connection and dialling its upstream: the original destination (SO_ORIGINAL_DST, or the
// local address under TPROXY), the source the upstream keeps (127.0.0.6/::6, or the client's own address), the
// client's first bytes read at accept, and refusing what cannot be forwarded.
import CWeirLinux
import Glibc
import WeirCore
import WeirSystem

extension Worker {
    // MARK: accept

    func acceptAll(_ l: Listener) {
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
    func descriptorsExhausted(_ l: Listener, errno e: Int32) {
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

    func pauseAccepting(reason: String) {
        if listenersRegistered {
            unregisterListeners()
            log("accept_paused", ["worker": index, "reason": reason, "for_ms": 100])
        }
        acceptPausedUntil = now + 100
    }

    /// Closes a socket with a RST.
    func reset(_ fd: Int32) {
        _ = weir_set_linger_reset(fd)
        close(fd)
    }

    /// Where the client of accepted socket `fd` was going: under TPROXY (the listener is IP_TRANSPARENT) the
    /// socket's local address, else the destination before REDIRECT rewrote it. Nil when the kernel cannot say.
    func destination(ofClient fd: Int32, tproxy: Bool, family: Int32) -> SocketAddress? {
        tproxy ? SocketAddress.local(of: fd) : SocketAddress.originalDestination(of: fd, family: family)
    }

    func startConnection(_ fd: Int32, peer: SocketAddress, listener l: Listener) {
        let tproxy = l.kind == .inbound && config.mode == .tproxy
        guard let target = destination(ofClient: fd, tproxy: tproxy, family: l.family) else {
            // TPROXY: no local address. REDIRECT: no NAT entry, so not redirected.
            if tproxy {
                refuse(fd)
            } else {
                notRedirected(fd, local: SocketAddress.local(of: fd) ?? SocketAddress(), peer: peer)
            }
            return
        }
        if tproxy {
            if target.port == l.port { notRedirected(fd, local: target, peer: peer); return }
        } else if target.port == l.port, let local = SocketAddress.local(of: fd), target == local {
            // The original destination is the listener itself. Only a destination on the listener's port can be
            // the listener, so the common case costs no getsockname.
            notRedirected(fd, local: local, peer: peer)
            return
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
            // Each option decides where the hand-off comes from and where replies go: if one fails, the connection
            // is refused rather than forwarded from the wrong source (or captured again as a loop).
            let prepared: Bool
            if tproxy {
                // Keep the client's address: transparent socket bound to it, marked so replies come back to us.
                prepared = weir_set_transparent(up, target.family) == 0 && weir_set_mark(up, config.tproxyMark) == 0
                source = peer
                source.port = 0
            } else {
                // Hand-off from 127.0.0.6 / ::6: FREEBIND works before ::6 exists on lo.
                prepared = weir_set_freebind(up, target.family) == 0
                source = SocketAddress(ip: target.family == AF_INET6 ? "::6" : "127.0.0.6", port: 0)!
            }
            // NO_PORT defers the port choice to connect(), so binding does not use up ephemeral ports.
            if !prepared || weir_set_bind_address_no_port(up) != 0 || source.withSockaddr({ bind(up, $0, $1) }) != 0 {
                eventLog.log("bind_failed", ["worker": index, "source": source, "errno": errnoName(errno)])
                close(up)
                refuse(fd)
                return
            }
        }
        // No Nagle delay added by the proxy: bytes leave when the client's did (the listeners' sockets inherit it).
        // TCP_NODELAY and TCP_QUICKACK only tune segments: a failure changes timing, never where bytes go.
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
        if early > sent && !holdScratch(&c.toUpstream, from: sent, count: early - sent) { close(up); refuse(fd); return }
        if early == scratchSize { c.toUpstream.bulk = true }
        if early > 0 {
            // The handshake's ACK has left with the first bytes, or will with the held ones once connected.
            if sent == early { _ = weir_set_quickack(up, 1) } else { c.quickAckOff = true }
        }
        if shared.copyOnly {
            c.toUpstream.copyOnly = true
            c.toUpstream.bulk = true
            c.toClient.copyOnly = true
            c.toClient.bulk = true
        }
        connecting.append(c)
        let cookie = UInt64(UInt(bitPattern: Unmanaged.passUnretained(c).toOpaque()))
        let mask = WEIR_EPOLLIN | WEIR_EPOLLOUT | WEIR_EPOLLRDHUP | WEIR_EPOLLET
        guard weir_epoll_add(epoll, fd, mask, cookie) == 0, weir_epoll_add(epoll, up, mask, cookie | 1) == 0 else {
            // Without both registrations the connection would never see an event and only the idle timeout would
            // end it: end it now (ENOMEM, or fs.epoll.max_user_watches reached).
            eventLog.log("epoll_add_failed", ["worker": index, "errno": errnoName(errno)])
            apply(c, c.state.handle(.failed(.client)))
            return
        }
    }

    /// The upstream connect failed (errno still says why): close it and reset the client.
    func upstreamFailed(_ up: Int32, client fd: Int32, target: SocketAddress) {
        let e = errno
        counters.upstreamFailed(worker: index, .of(errno: e))
        eventLog.log("connect_failed", ["worker": index, "destination": target, "errno": errnoName(e)])
        let flow = upstreamFlow(up, target: target)
        close(up)
        forget(flow)  // after the close: a socket still open could send its SYN again and make the entry anew
        refuse(fd)
    }

    /// A connection we accepted but cannot forward: reset it and give back its slot.
    func refuse(_ fd: Int32) {
        reset(fd)
        counters.add(.active, -1)
        counters.add(.closed)
    }

    func notRedirected(_ fd: Int32, local: SocketAddress, peer: SocketAddress) {
        counters.add(.notRedirected)
        eventLog.log("not_redirected", ["worker": index, "local": local, "peer": peer])
        refuse(fd)
    }
}
