// I/O dispatch: one epoll event on one side of a connection, turned into readiness flags and a pump of both
// directions.
import WeirCore
import WeirSystem

extension Worker {
    // MARK: I/O

    func handleIO(_ c: Connection, side: ProxySide, events: PollEvents) {
        if c.state.isClosed { return }
        let failed = events.contains(.error)
        // Remember a FIN even while connecting: edge-triggered, it is signalled once (data + FIN often come together).
        if events.contains(.readHangup) || events.contains(.hangup) {
            if side == .client { c.clientHangup = true } else { c.upstreamHangup = true }
        }
        if events.contains(.urgent) { c.urgent = true }
        // Readable is recorded while connecting too: forwarding starts from what the events said, with no read that
        // would only say EAGAIN (the client's first bytes were read at accept; anything after them raised an event,
        // as did anything already queued when the socket was registered).
        if events.contains(.readable) || events.contains(.readHangup) || events.contains(.hangup) {
            setReadable(c, side, true)
        }
        if !c.state.connected {
            if side == .upstream {
                if !(events.contains(.writable) || failed || events.contains(.hangup)) { return }
                // Writable without error or hang-up means connected; SO_ERROR is asked only on failure.
                if !failed && !events.contains(.hangup) {
                    apply(c, c.state.handle(.connected))
                    return
                }
                let err = socketError(c.upstream)
                if err == 0 && !failed && events.contains(.writable) {
                    apply(c, c.state.handle(.connected))
                } else if err == Errno.ECONNRESET {
                    // Connected, then reset by the upstream before this worker saw the connect complete (a busy
                    // machine): a reset like any other, not a failed connect. The client is reset either way.
                    counters.add(.resets)
                    apply(c, c.state.handle(.connectFailed))
                } else {
                    counters.upstreamFailed(worker: index, .of(errno: err))
                    c.pod?.add(c.inbound ? .failedInbound : .failedOutbound)
                    eventLog.log("connect_failed", ["worker": index, "errno": errnoName(err)])
                    apply(c, c.state.handle(.connectFailed))
                }
            } else if failed || events.contains(.hangup) && !events.contains(.readable) {
                apply(c, c.state.handle(.failed(.client)))
            }
            return
        }
        if failed, socketError(c.fd(side)) != 0 {
            counters.add(.resets)
            apply(c, c.state.handle(.failed(side)))
            return
        }
        if events.contains(.writable) || events.contains(.hangup) { setWritable(c, side, true) }
        pumpBoth(c)
        touch(c)
    }

    func touch(_ c: Connection) {
        if c.state.isClosed || c.inConnectingList || now - c.listTime < touchGranularity { return }
        active.remove(c)
        c.listTime = now
        active.append(c)
    }

    @inline(__always) func setReadable(_ c: Connection, _ side: ProxySide, _ v: Bool) {
        if side == .client { c.clientReadable = v } else { c.upstreamReadable = v }
    }

    @inline(__always) func setWritable(_ c: Connection, _ side: ProxySide, _ v: Bool) {
        if side == .client { c.clientWritable = v } else { c.upstreamWritable = v }
    }

    func pumpBoth(_ c: Connection) {
        pump(c, from: .client)
        if !c.state.isClosed { pump(c, from: .upstream) }
    }

    enum PumpOutcome {
        case blocked
        case flushed
        case failed(ProxySide)
    }

    func pump(_ c: Connection, from source: ProxySide) {
        let outcome = source == .client
            ? move(c, from: .client, flight: &c.toUpstream) : move(c, from: .upstream, flight: &c.toClient)
        switch outcome {
        case .blocked: break
        case .flushed: apply(c, c.state.handle(.flushed(toward: source.other)))
        case .failed(let side):
            counters.add(.resets)
            apply(c, c.state.handle(.failed(side)))
        }
    }
}
