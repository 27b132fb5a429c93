// Moving bytes: splice through a pipe from the worker's pool, or the scratch buffer for small messages, or the
// bounded copy when splice cannot be used; drain before pump, so a direction never holds more than --buffer-limit.
import CWeirLinux
import Glibc
import WeirCore
import WeirSystem

extension Worker {
    enum ReadStop {
        case stop
        case retry
        case error(Int32)
    }

    /// After a read or splice from `source` that returned `n <= 0`: end of stream or an empty receive queue stops
    /// reading (and records which), EINTR retries, anything else is the caller's error.
    @inline(__always) func afterEmptyRead(_ n: Int, _ c: Connection, _ source: ProxySide) -> ReadStop {
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
    func move(_ c: Connection, from source: ProxySide, flight f: inout Flight) -> PumpOutcome {
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
    func sendScratch(_ n: Int, to fd: Int32, toward side: ProxySide, more: Bool) -> Int? {
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
    func holdScratch(_ f: inout Flight, from offset: Int, count: Int) -> Bool {
        guard let buffer = malloc(max(config.bufferLimit, scratchSize)) else { return false }
        memcpy(buffer, scratch + offset, count)
        f.buffer = buffer
        f.offset = 0
        f.pending = count
        return true
    }

    /// Gives a direction somewhere to put bytes: a pooled or new pipe, else the bounded copy buffer.
    func acquire(_ f: inout Flight) -> Bool {
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
    func release(_ f: inout Flight) {
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

    func closePipe(_ f: inout Flight) {
        if f.pipeRead >= 0 { close(f.pipeRead); close(f.pipeWrite) }
        f.pipeRead = -1
        f.pipeWrite = -1
    }
}
