// Accepting a captured connection and dialling its upstream: the original destination (SO_ORIGINAL_DST, or the
// local address under TPROXY), the source the upstream keeps (127.0.0.6/::6, or the client's own address), the
// client's first bytes read at accept, and refusing what cannot be forwarded.
import WeirCore
import WeirSystem

extension Worker {
    // MARK: accept

    /// Accepts up to `limit` waiting connections from `l` (see `acceptsPerTurn`). A pod's ceilings hold, the rate
    /// ceiling only while serving: a drain takes every connection that waits (its clients count them as
    /// established, and closing the listener would reset them).
    func acceptAll(_ l: Listener, limit: Int, draining: Bool = false) {
        var peer = SocketAddress()
        var taken = 0
        let nowUs = l.pod?.rate.enabled == true ? Clock.nowUs() : 0
        while accepting.isOpen && taken < limit {
            if let pod = l.pod {
                let full = pod.full
                if full || !draining && pod.rateLimited(nowUs: nowUs) {
                    // Paused only when a connection is known to wait: the listener was reported ready and none has
                    // been taken since. After one was taken, the listener (level-triggered) is reported again at
                    // the next wait if more wait, and paused then.
                    if taken == 0 { pauseAccepting(for: pod, rate: !full) }
                    return
                }
            }
            taken += 1
            switch acceptConnection(l.fd, peer: &peer) {
            case .accepted(let fd):
                counters.add(.accepted)
                if let pod = l.pod {
                    pod.add(l.kind == .inbound ? .acceptedInbound : .acceptedOutbound)
                    pod.charge(nowUs: nowUs)
                }
                if counters.addFetch(.active, 1) > Int64(config.maxConnections) {
                    counters.add(.active, -1)
                    counters.add(.refusedMaxConnections)
                    reset(fd)
                    continue
                }
                startConnection(fd, peer: peer, listener: l)
            case .wouldBlock:
                return
            case .outOfDescriptors(let e):
                descriptorsExhausted(l, errno: e)
                return
            case .failed(let e):
                log("accept_failed", ["worker": index, "errno": errnoName(e)])
                return
            }
        }
    }

    /// Out of descriptors: refuse one waiting client with the reserve descriptor, then stop accepting for a while
    /// (`AcceptGate`) so the loop does not spin; accepting resumes by itself when the pause ends.
    func descriptorsExhausted(_ l: Listener, errno e: Int32) {
        counters.add(.fdExhausted)
        if reserveFd >= 0 {
            closeDescriptor(reserveFd)
            var peer = SocketAddress()
            if case .accepted(let fd) = acceptConnection(l.fd, peer: &peer) { reset(fd) }
            reserveFd = openReserveDescriptor()
        }
        pauseAccepting(reason: errnoName(e))
    }

    /// A pod at its ceiling (open connections, or `rate`: new connections per second): this worker stops watching
    /// the pod's listeners; `resumePods` watches them again once the pod is below both ceilings: checked every
    /// 10 ms at the open-connection ceiling, and at the moment the rate allows the next connection (so a storm at
    /// its rate is taken a connection or two at a time, not in bunches).
    func pauseAccepting(for pod: PodContext, rate: Bool) {
        for case let l? in listeners where l.pod === pod { poller.remove(l.fd) }
        guard !pausedPods.contains(where: { $0 === pod }) else { return }  // unwatched again all the same
        pausedPods.append(pod)
        pod.add(rate ? .ratePauses : .ceilingPauses)
        resumeAtMs = min(resumeAtMs, resumeTime(of: pod, nowUs: Clock.nowUs()))
    }

    func resumePods() {
        let nowUs = Clock.nowUs()
        var next = Int64.max
        pausedPods.removeAll { pod in
            guard !pod.full && !pod.rateLimited(nowUs: nowUs) else {
                next = min(next, resumeTime(of: pod, nowUs: nowUs))
                return false
            }
            if accepting.isOpen {
                for (i, l) in listeners.enumerated() where l?.pod === pod {
                    _ = poller.add(l!.fd, .readable, token: tagListenerBase + UInt64(i))
                }
            }
            return true
        }
        resumeAtMs = next
    }

    /// When a paused pod is looked at again (CLOCK_MONOTONIC ms).
    private func resumeTime(of pod: PodContext, nowUs: Int64) -> Int64 {
        let nowMs = nowUs / 1000
        if pod.full || !pod.rate.enabled { return nowMs + 10 }
        return max(nowMs + 1, (pod.rateAllowedAtUs + 999) / 1000)
    }

    func pauseAccepting(reason: String) {
        if accepting.pause(poller, listenerTokens, now: now) {
            log("accept_paused", ["worker": index, "reason": reason, "for_ms": AcceptGate.pauseMs])
        }
    }

    /// Closes a socket with a RST.
    func reset(_ fd: Int32) {
        _ = SocketOption.lingerReset.apply(to: fd, family: 0)
        closeDescriptor(fd)
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
            switch readBytes(fd, into: scratch, count: scratchSize) {
            case .done(let n): early = n  // 0: the client's end of stream; the poller reports it once registered
            case .wouldBlock: break
            case .failed:
                refuse(fd)  // reset or failed before there was anything to forward
                return
            }
        }
        guard let up = dial(target, client: fd, peer: peer, inbound: l.kind == .inbound, tproxy: tproxy, early: early,
                            pod: l.pod)
        else {
            l.pod?.add(l.kind == .inbound ? .failedInbound : .failedOutbound)
            return
        }
        let c = Connection(client: fd, now: now)
        c.upstream = up.fd
        c.inbound = l.kind == .inbound
        c.dialedUs = up.dialedUs
        counters.opened(worker: index, inbound: c.inbound)
        if let pod = l.pod {
            c.pod = pod
            pod.add(c.inbound ? .activeInbound : .activeOutbound)
            if up.sent > 0 { pod.add(.bytesToUpstream, Int64(up.sent)) }
        }
        // Held until the upstream is connected: drain before pump writes it first.
        if early > up.sent && !holdScratch(&c.toUpstream, from: up.sent, count: early - up.sent) {
            closeDescriptor(up.fd)
            refuse(fd)
            return
        }
        if early == scratchSize { c.toUpstream.bulk = true }
        if shared.copyOnly {
            c.toUpstream.copyOnly = true
            c.toUpstream.bulk = true
            c.toClient.copyOnly = true
            c.toClient.bulk = true
        }
        connecting.append(c)
        register(c)
    }

    /// Opens the upstream socket, prepares its source (inbound), connects and sends the client's early bytes. Nil
    /// when the connection was refused (the client is reset and its slot given back).
    ///
    /// TCP_QUICKACK 0 before connect delays the handshake's last ACK so that it leaves with the early bytes. It is
    /// not set back: the kernel leaves that delayed-ACK mode by itself when the handshake completes (the SYN-ACK of
    /// a socket in it puts the socket in quick-ACK mode: tcp_rcv_synsent_state_process), and the early bytes carry
    /// the pending ACK, so a TCP_QUICKACK 1 afterwards would change nothing but cost a setsockopt per connection.
    private func dial(_ target: SocketAddress, client fd: Int32, peer: SocketAddress, inbound: Bool, tproxy: Bool,
                      early: Int, pod: PodContext?) -> (fd: Int32, dialedUs: Int64, sent: Int)?
    {
        var up: Int32 = -1
        var dialedUs: Int64 = 0
        // An explicit TPROXY source port (`--tproxy-source-ports`) can be taken on the 4-tuple: connect says
        // EADDRNOTAVAIL before any SYN leaves, and the next port is tried on a new socket. `portTries` counts every
        // port tried for this connection, at bind and at connect.
        var portTries = 0
        while true {
            // A pod's upstream socket is made in the pod's namespace: its address, routes and capture rules apply.
            let opened = if let pod, let home { pod.namespace.openStreamSocket(family: target.family, home: home) }
                         else { openStreamSocket(family: target.family) }
            guard case .done(let socket) = opened else {
                if case .failed(let e) = opened, e == Errno.EMFILE || e == Errno.ENFILE {
                    counters.add(.fdExhausted)
                    pauseAccepting(reason: errnoName(e))
                }
                refuse(fd)
                return nil
            }
            up = Int32(socket)
            if inbound {
                let (source, failure) = bindSource(up, family: target.family, peer: peer, tproxy: tproxy,
                                                   portTries: &portTries)
                if failure != 0 {
                    eventLog.log("bind_failed", ["worker": index, "source": source, "errno": errnoName(failure)])
                    closeDescriptor(up)
                    refuse(fd)
                    return nil
                }
            }
            // No Nagle delay added by the proxy: bytes leave when the client's did (the listeners' sockets inherit
            // it). TCP_NODELAY and TCP_QUICKACK only tune segments: a failure changes timing, never where bytes go.
            _ = SocketOption.noDelay.apply(to: up, family: target.family)
            if early > 0 { _ = SocketOption.quickAck(false).apply(to: up, family: target.family) }
            dialedUs = Clock.nowUs()
            guard case .failed(let e) = connectSocket(up, to: target) else { break }
            if e == Errno.EADDRNOTAVAIL && tproxy && inbound && sourcePorts != nil
                && portTries < Self.sourcePortAttempts {
                closeDescriptor(up)
                continue
            }
            upstreamFailed(up, client: fd, target: target, errno: e, pod: pod, inbound: inbound)
            return nil
        }
        var sent = 0
        if early > 0 {
            // On loopback and fast links the handshake is done by now; otherwise EAGAIN and the bytes wait.
            switch sendScratch(early, to: up, toward: .upstream, more: false) {
            case .done(let n): sent = n
            case .wouldBlock: break
            case .failed(let e):
                // Refused or unreachable, known at once.
                upstreamFailed(up, client: fd, target: target, errno: e, pod: pod, inbound: inbound)
                return nil
            }
        }
        return (up, dialedUs, sent)
    }

    /// Inbound: the source the hand-off comes from. Each option decides where it comes from and where replies go:
    /// if one fails, the connection is refused rather than forwarded from the wrong source (or captured again as a
    /// loop). Returns the source and 0, or the errno of the call that failed.
    private func bindSource(_ up: Int32, family: Int32, peer: SocketAddress, tproxy: Bool, portTries: inout Int)
        -> (SocketAddress, Int32)
    {
        var source: SocketAddress
        var failure: Int32
        if tproxy {
            // Keep the client's address: transparent socket bound to it, marked so replies come back to us.
            source = peer
            source.port = 0
            failure = SocketOption.transparent.apply(to: up, family: family)
            if failure == 0 { failure = SocketOption.mark(config.tproxyMark).apply(to: up, family: family) }
            if failure == 0, sourcePortCursor != nil {
                // A port of `--tproxy-source-ports`, which the clients do not use. SO_REUSEADDR lets sockets to
                // other destinations share it (connect refuses a taken 4-tuple); a port in use by a listener on the
                // wildcard address is skipped.
                failure = SocketOption.reuseAddress.apply(to: up, family: family)
                while failure == 0 {
                    source.port = sourcePortCursor!.next(tries: portTries)
                    failure = bindSocket(up, to: source)
                    portTries += 1
                    if failure != Errno.EADDRINUSE || portTries >= Self.sourcePortAttempts { break }
                    failure = 0
                }
                return (source, failure)
            }
        } else {
            // Hand-off from 127.0.0.6 / ::6: FREEBIND works before ::6 exists on lo.
            source = SocketAddress(ip: family == AddressFamily.ipv6 ? "::6" : "127.0.0.6", port: 0)!
            failure = SocketOption.freeBind.apply(to: up, family: family)
        }
        // NO_PORT defers the port choice to connect(), so binding does not use up ephemeral ports.
        if failure == 0 { failure = SocketOption.bindAddressNoPort.apply(to: up, family: family) }
        if failure == 0 { failure = bindSocket(up, to: source) }
        return (source, failure)
    }

    /// Watches both sockets of a new connection, edge-triggered. EPOLLPRI tells of urgent data, which stops a read
    /// at its mark (see `move`).
    func register(_ c: Connection) {
        let cookie = UInt64(UInt(bitPattern: Unmanaged.passUnretained(c).toOpaque()))
        let mask: PollEvents = PollEvents.readable.union(.writable).union(.readHangup).union(.urgent)
            .union(.edgeTriggered)
        var failure = poller.add(c.client, mask, token: cookie)
        if failure == 0 { failure = poller.add(c.upstream, mask, token: cookie | 1) }
        if failure != 0 {
            // Without both registrations the connection would never see an event and only the idle timeout would
            // end it: end it now (ENOMEM, or fs.epoll.max_user_watches reached).
            eventLog.log("epoll_add_failed", ["worker": index, "errno": errnoName(failure)])
            apply(c, c.state.handle(.failed(.client)))
        }
    }

    /// The upstream connect failed with `e`: close it and reset the client.
    func upstreamFailed(_ up: Int32, client fd: Int32, target: SocketAddress, errno e: Int32, pod: PodContext?,
                        inbound: Bool) {
        counters.upstreamFailed(worker: index, .of(errno: e))
        eventLog.log("connect_failed", ["worker": index, "destination": target, "errno": errnoName(e)])
        let flow = ownsUpstreamTuples(inbound: inbound) ? nil : upstreamFlow(up, target: target)
        closeDescriptor(up)
        forget(flow, pod: pod)  // after the close: a socket still open could send its SYN again and make the entry anew
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
