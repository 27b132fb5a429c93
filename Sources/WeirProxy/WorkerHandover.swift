// Handing live connections to another process, and taking them in.
//
// A connection's whole state is its two sockets, the pipes holding its bytes in flight (those bytes stay inside
// them), the copy buffer's bytes when splice was not used, a `ProxyConnectionState` value, the readiness the worker
// knew (edge-triggered: what it has not drained yet) and where it stands against its deadlines. `export` takes every
// connection off this worker's poller and lists without closing anything: from then on this worker does not touch
// it. The caller then either `commit`s (the other process took them: this process's descriptors close) or gives them
// back (`.resume`: registered again, as if nothing happened). `adopt` registers handed-in connections; registering
// an edge-triggered socket reports what is already pending on it, so nothing waits for an event that came before.
import WeirCore
import WeirSystem

/// Connections taken off a worker, not served by it until resumed, and not yet closed.
public final class ExportedConnections: @unchecked Sendable {
    public internal(set) var records: [HandoverConnection] = []
    /// Every descriptor of the records, by key: what is passed to the other process.
    public internal(set) var descriptors: [DescriptorKey: Int32] = [:]
    /// The listeners the worker stopped accepting on (they stay open until `commit`).
    var listeners: [Listener] = []
    var connections: [Connection] = []
    let worker: Int

    init(worker: Int) { self.worker = worker }

    /// The listeners as handover values, with their descriptors.
    public var listenerRecords: [(HandoverListener, Int32)] {
        listeners.compactMap { l in
            guard let key = Inheritance.key(of: l.fd) else { return nil }
            let record = HandoverListener(kind: l.kind == .inbound ? .inbound : .outbound, port: l.port,
                                          family: UInt8(l.family), pod: l.pod?.key ?? "",
                                          key: DescriptorKey(inode: key.inode, accessMode: key.accessMode))
            return (record, l.fd)
        }
    }
}

extension Worker {
    /// Stops accepting and takes every connection off this worker (see the file's comment). Runs on the worker's
    /// thread.
    func export() -> ExportedConnections {
        let out = ExportedConnections(worker: index)
        if accepting.isOpen { for case let l? in listeners { poller.remove(l.fd) } }
        accepting.close()
        surrendered = true
        out.listeners = listeners.compactMap { $0 }
        listeners.removeAll()
        for list in [connecting, active] {
            var next = list.head
            while let c = next {
                next = c.next
                guard let record = record(of: c) else { continue }  // a descriptor already gone: it stays here
                poller.remove(c.client)
                poller.remove(c.upstream)
                c.handedOff = true
                if c.inConnectingList { connecting.remove(c) } else { active.remove(c) }
                countDetached(c, by: -1)
                out.records.append(record)
                out.connections.append(c)
                for fd in [c.client, c.upstream, c.toUpstream.pipeRead, c.toUpstream.pipeWrite, c.toClient.pipeRead,
                           c.toClient.pipeWrite] where fd >= 0 {
                    if let k = Inheritance.key(of: fd) {
                        out.descriptors[DescriptorKey(inode: k.inode, accessMode: k.accessMode)] = fd
                    }
                }
            }
        }
        nextGauges = 0
        log("handover_exported", ["worker": index, "connections": out.records.count, "listeners": out.listeners.count])
        return out
    }

    /// The gauges a connection is part of, while it is on this worker.
    private func countDetached(_ c: Connection, by v: Int64) {
        counters.add(.active, v)
        counters.addWorker(index, c.inbound ? ProxyCounters.Slot.inboundActive : ProxyCounters.Slot.outboundActive, v)
        c.pod?.add(c.inbound ? .activeInbound : .activeOutbound, v)
    }

    private func record(of c: Connection) -> HandoverConnection? {
        func key(_ fd: Int32) -> DescriptorKey? {
            guard fd >= 0, let k = Inheritance.key(of: fd) else { return nil }
            return DescriptorKey(inode: k.inode, accessMode: k.accessMode)
        }
        func flight(_ f: Flight) -> HandoverFlight {
            var buffered: [UInt8] = []
            if !f.hasPipe, let b = f.buffer, f.pending > 0 {
                buffered = Array(UnsafeRawBufferPointer(start: b + f.offset, count: f.pending))
            }
            return HandoverFlight(pipeRead: key(f.pipeRead), pipeWrite: key(f.pipeWrite), pending: f.pending,
                                  buffered: buffered, copyOnly: f.copyOnly, bulk: f.bulk)
        }
        guard let client = key(c.client), let upstream = key(c.upstream) else { return nil }
        let flags = UInt16(c.clientReadable ? 1 : 0) | (c.clientWritable ? 2 : 0) | (c.upstreamReadable ? 4 : 0)
            | (c.upstreamWritable ? 8 : 0) | (c.clientHangup ? 16 : 0) | (c.upstreamHangup ? 32 : 0) | (c.urgent ? 64 : 0)
        return HandoverConnection(client: client, upstream: upstream, state: c.state, toUpstream: flight(c.toUpstream),
                                  toClient: flight(c.toClient), flags: flags, connecting: c.inConnectingList,
                                  inbound: c.inbound, idleAgeMs: max(0, now - c.listTime),
                                  ageMs: max(0, now - c.createdMs), dialAgeUs: max(0, Clock.nowUs() - c.dialedUs),
                                  pod: c.pod?.key ?? "")
    }

    /// Takes connections in (handed over by another process, or given back after a failed handover): each on this
    /// worker's poller and in its deadline lists, in order of its deadline.
    func adopt(_ incoming: [Connection]) {
        for c in incoming.sorted(by: { $0.listTime < $1.listTime }) {
            c.handedOff = false
            c.sharedDescriptors = true
            if c.inConnectingList { insertOrdered(c, into: &connecting) } else { insertOrdered(c, into: &active) }
            countDetached(c, by: 1)
            register(c)
        }
        nextGauges = 0
    }

    /// Inserts `c` into `list` keeping it ordered by `listTime` (the adopted are older than most, so the walk is
    /// from the head).
    private func insertOrdered(_ c: Connection, into list: inout ConnectionList) {
        guard let head = list.head, head.listTime < c.listTime else {
            c.prev = nil
            c.next = list.head
            if let head = list.head { head.prev = c } else { list.tail = c }
            list.head = c
            list.count += 1
            return
        }
        var at = head
        while let n = at.next, n.listTime <= c.listTime { at = n }
        c.next = at.next
        c.prev = at
        if let n = at.next { n.prev = c } else { list.tail = c }
        at.next = c
        list.count += 1
    }
}

extension Connection {
    /// A connection built from a handed-over record and the descriptors it names (already open in this process).
    /// Nil when a descriptor is missing.
    static func adopted(_ r: HandoverConnection, descriptors: [DescriptorKey: Int32], now: Int64, pod: PodContext?,
                        bufferLimit: Int) -> Connection? {
        guard let client = descriptors[r.client], let upstream = descriptors[r.upstream] else { return nil }
        func flight(_ h: HandoverFlight) -> Flight? {
            var f = Flight()
            if let read = h.pipeRead, let write = h.pipeWrite {
                guard let r = descriptors[read], let w = descriptors[write] else { return nil }
                f.pipeRead = r
                f.pipeWrite = w
                f.pending = h.pending
            } else if !h.buffered.isEmpty {
                guard let b = tryAllocate(byteCount: max(bufferLimit, 16 * 1024, h.buffered.count)) else { return nil }
                h.buffered.withUnsafeBytes { b.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                f.buffer = b
                f.pending = h.buffered.count
            }
            f.copyOnly = h.copyOnly
            f.bulk = h.bulk
            return f
        }
        guard let up = flight(r.toUpstream), let down = flight(r.toClient) else { return nil }
        let c = Connection(client: client, now: now - r.ageMs)
        c.upstream = upstream
        c.state = r.state
        c.toUpstream = up
        c.toClient = down
        c.clientReadable = r.flags & 1 != 0
        c.clientWritable = r.flags & 2 != 0
        c.upstreamReadable = r.flags & 4 != 0
        c.upstreamWritable = r.flags & 8 != 0
        c.clientHangup = r.flags & 16 != 0
        c.upstreamHangup = r.flags & 32 != 0
        c.urgent = r.flags & 64 != 0
        c.inConnectingList = r.connecting
        c.inbound = r.inbound
        c.listTime = now - r.idleAgeMs
        c.dialedUs = Clock.nowUs() - r.dialAgeUs
        c.pod = pod
        return c
    }
}

extension ExportedConnections {
    /// The other process took them: this process's descriptors of the connections and listeners close, and the
    /// copy buffers are freed. Call once, after the workers let go (they no longer list the connections).
    public func commit() {
        for c in connections {
            for fd in [c.client, c.upstream, c.toUpstream.pipeRead, c.toUpstream.pipeWrite, c.toClient.pipeRead,
                       c.toClient.pipeWrite] where fd >= 0 { closeDescriptor(fd) }
            for b in [c.toUpstream.buffer, c.toClient.buffer] { if let b { freeAllocation(b) } }
            c.toUpstream.buffer = nil
            c.toClient.buffer = nil
            c.client = -1
            c.upstream = -1
        }
        connections.removeAll()
        listeners.removeAll()
    }
}

/// Connections on their way to another process, a batch at a time: each batch goes in one message (at most 253
/// descriptors, SCM_RIGHTS' limit), and is closed here only once the other process said it took it.
public final class HandoverBatch: @unchecked Sendable {
    public let records: [HandoverConnection]
    /// The descriptors the records name, in one list (what is attached to the message).
    public let descriptors: [Int32]
    let connections: [(worker: Int, connection: Connection)]

    init(_ entries: [(Int, Connection, HandoverConnection)], descriptors: [DescriptorKey: Int32]) {
        records = entries.map { $0.2 }
        connections = entries.map { ($0.0, $0.1) }
        self.descriptors = records.flatMap { $0.keys.compactMap { descriptors[$0] } }
    }
}

extension ProxyServer {
    /// Cuts what the workers exported into batches of at most `maxDescriptors` descriptors and about `maxBytes` of
    /// buffered bytes (a connection is never split).
    public func batches(_ exported: [ExportedConnections], maxDescriptors: Int = 240, maxBytes: Int = 1 << 18)
        -> [HandoverBatch]
    {
        var out: [HandoverBatch] = []
        var current: [(Int, Connection, HandoverConnection)] = []
        var fds = 0, bytes = 0
        var keys: [DescriptorKey: Int32] = [:]
        for e in exported {
            keys.merge(e.descriptors) { a, _ in a }
            for (c, r) in zip(e.connections, e.records) {
                let n = r.keys.count, b = r.toUpstream.buffered.count + r.toClient.buffered.count + 128
                if !current.isEmpty && (fds + n > maxDescriptors || bytes + b > maxBytes) {
                    out.append(HandoverBatch(current, descriptors: keys))
                    current = []
                    fds = 0
                    bytes = 0
                }
                current.append((e.worker, c, r))
                fds += n
                bytes += b
            }
            e.connections = []
            e.records = []
        }
        if !current.isEmpty { out.append(HandoverBatch(current, descriptors: keys)) }
        return out
    }

    /// The other process took `batch`: this process's descriptors close and its buffers are freed.
    public func commit(_ batch: HandoverBatch) {
        let holder = ExportedConnections(worker: -1)
        holder.connections = batch.connections.map(\.connection)
        holder.commit()
    }

    /// Batches the other process did not take: each connection goes back to the worker it came from.
    public func giveBack(_ batches: some Sequence<HandoverBatch>) {
        var perWorker: [Int: [Connection]] = [:]
        for b in batches { for (w, c) in b.connections { perWorker[w, default: []].append(c) } }
        for (w, list) in perWorker where w < workers.count { workers[w].post(.adopt(list)) }
    }

    /// The listeners exported: this process's copies close (the other process holds its own).
    public func releaseListeners(_ exported: [ExportedConnections]) {
        for e in exported { e.listeners.removeAll() }
    }

    /// A successor failed after it took the listeners: each worker accepts on its exported listeners again. The
    /// connections are not part of this (each was committed or given back on its own).
    public func resumeListeners(_ exported: [ExportedConnections]) {
        for e in exported where e.worker < workers.count {
            e.connections = []
            e.records = []
            workers[e.worker].post(.resume(e))
        }
    }
}
