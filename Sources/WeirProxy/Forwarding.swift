// Moving bytes: splice through a pipe from the worker's pool, or the scratch buffer for small messages, or the
// bounded copy when splice cannot be used; drain before pump, so a direction never holds more than --buffer-limit.
import WeirCore
import WeirSystem

extension Worker {
    enum ReadStop {
        case stop
        case error(Int32)
    }

    /// After a read or splice from `source` that moved nothing: end of stream or an empty receive queue stops
    /// reading (and records which); anything else is the caller's error.
    @inline(__always) func afterEmptyRead(_ r: IOStatus, _ c: Connection, _ source: ProxySide) -> ReadStop {
        switch r {
        case .done:
            setReadable(c, source, false)
            _ = c.state.handle(.endOfStream(from: source))
            return .stop
        case .wouldBlock:
            setReadable(c, source, false)
            return .stop
        case .failed(let e):
            return .error(e)
        }
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
                let more = c.state.flow(from: source) == .ending
                let r = f.hasPipe ? splice(from: f.pipeRead, to: dst, count: f.pending, more: more)
                    : sendBytes(dst, from: f.buffer! + f.offset, count: f.pending, more: more)
                switch r {
                case .done(let n) where n > 0:
                    f.pending -= n
                    f.offset += n
                    counters.addBytes(worker: index, toward: dest, n)
                    if let pod = c.pod { pod.add(dest == .upstream ? .bytesToUpstream : .bytesToClient, Int64(n)) }
                    continue
                case .wouldBlock:
                    setWritable(c, dest, false)
                    counters.add(.bufferFull)
                    break moving
                default:
                    return .failed(dest)
                }
            }
            if c.state.flow(from: source) != .open || !(source == .client ? c.clientReadable : c.upstreamReadable) {
                break
            }
            if !f.bulk && !f.hasPipe && f.buffer == nil {
                switch relaySmall(c, from: source, flight: &f) {
                case .moved: continue moving
                case .stop: break moving
                case .failed(let side): return .failed(side)
                }
            }
            if !f.hasPipe && f.buffer == nil && !acquire(&f) { break }
            let limit = config.bufferLimit
            let r = f.hasPipe ? splice(from: src, to: f.pipeWrite, count: limit, more: false)
                : readBytes(src, into: f.buffer!, count: limit)
            if case .done(let n) = r, n > 0 {
                f.pending = n
                f.offset = 0
                continue
            }
            switch afterEmptyRead(r, c, source) {
            case .stop: break moving
            case .error(let e):
                if f.hasPipe && (e == Errno.EINVAL || e == Errno.ENOSYS) {
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

    enum SmallOutcome {
        case moved
        case stop
        case failed(ProxySide)
    }

    /// Small messages: reads into the worker's scratch buffer and writes at once; cheaper than two splices for a
    /// request or a reply. Only what the destination does not take is kept, in a buffer. The first read that fills
    /// the scratch buffer marks the direction bulk.
    @inline(__always)
    private func relaySmall(_ c: Connection, from source: ProxySide, flight f: inout Flight) -> SmallOutcome {
        let dest = source.other
        let r = readBytes(c.fd(source), into: scratch, count: scratchSize)
        guard case .done(let n) = r, n > 0 else {
            if case .error = afterEmptyRead(r, c, source) { return .failed(source) }
            return .stop
        }
        if n == scratchSize {
            f.bulk = true
        } else if !(source == .client ? c.clientHangup : c.upstreamHangup) {
            // A short read emptied the receive queue (as nginx assumes with edge-triggered epoll): new data raises
            // a new event, so skip the read that would only say EAGAIN.
            setReadable(c, source, false)
        } else if !c.urgent {
            // The peer's FIN was signalled before this read, so all it sent was queued, and this short read emptied
            // the queue: the end of stream is next, known without the read that would only return 0. Recording it
            // now lets the FIN leave in the same segment as these bytes (one segment and one ACK fewer). Urgent
            // data is the one thing that ends a read early with bytes still queued: then the next read says.
            setReadable(c, source, false)
            _ = c.state.handle(.endOfStream(from: source))
        }
        var written = 0
        if dest == .client ? c.clientWritable : c.upstreamWritable {
            let r = sendScratch(n, to: c.fd(dest), toward: dest, more: c.state.flow(from: source) == .ending)
            if let pod = c.pod, case .done(let w) = r {
                pod.add(dest == .upstream ? .bytesToUpstream : .bytesToClient, Int64(w))
            }
            switch r {
            case .done(let w): written = w
            case .wouldBlock: break
            case .failed: return .failed(dest)
            }
        }
        if written < n && !holdScratch(&f, from: written, count: n - written) { return .failed(source) }
        return .moved
    }

    /// Sends the first `n` bytes of the scratch buffer and counts what was written.
    @inline(__always)
    func sendScratch(_ n: Int, to fd: Int32, toward side: ProxySide, more: Bool) -> IOStatus {
        let r = sendBytes(fd, from: scratch, count: n, more: more)
        if case .done(let w) = r { counters.addBytes(worker: index, toward: side, w) }
        return r
    }

    /// Keeps `count` scratch bytes from `offset` as the direction's pending bytes, written before anything is read
    /// again (drain before pump). The buffer has the copy fallback's size: the direction may read into it later.
    func holdScratch(_ f: inout Flight, from offset: Int, count: Int) -> Bool {
        guard let buffer = tryAllocate(byteCount: max(config.bufferLimit, scratchSize)) else { return false }
        buffer.copyMemory(from: scratch + offset, byteCount: count)
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
            if let pipe = makePipe(size: pipeSize) {
                f.pipeRead = pipe.read
                f.pipeWrite = pipe.write
                return true
            }
        }
        guard let buffer = tryAllocate(byteCount: config.bufferLimit) else { return false }
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
            freeAllocation(b)
            f.buffer = nil
        }
        f.offset = 0
    }

    func closePipe(_ f: inout Flight) {
        if f.pipeRead >= 0 { closeDescriptor(f.pipeRead); closeDescriptor(f.pipeWrite) }
        f.pipeRead = -1
        f.pipeWrite = -1
    }
}
