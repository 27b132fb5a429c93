// I/O dispatch: one epoll event on one side of a connection, turned into readiness flags and a pump of both
// directions.
import CWeirLinux
import Glibc
import WeirCore
import WeirSystem

extension Worker {
    // MARK: I/O

    func handleIO(_ c: Connection, side: ProxySide, events: UInt32) {
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
                } else if err == ECONNRESET {
                    // Connected, then reset by the upstream before this worker saw the connect complete (a busy
                    // machine): a reset like any other, not a failed connect. The client is reset either way.
                    counters.add(.resets)
                    apply(c, c.state.handle(.connectFailed))
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
