import WeirCore
import WeirProxy
import WeirSystem

// The live handover between two `weir run` processes of one run directory, over `<run-dir>/handover.sock`
// (SOCK_SEQPACKET, root's, 0600). The new process (`--takeover`) connects; the running one hands over and exits.
//
//   new -> old  HELLO      state version it reads, its build
//   old -> new  WELCOME    state version it writes, its build. Equal: everything moves. Not: listeners only, and the
//                          old process drains its connections as before (both say so).
//   old         exports: every worker stops accepting and lets go of its connections (they wait, untouched)
//   old -> new  LISTENERS  capture, admin, metrics, cni and handover sockets, pods' namespaces (stable encoding;
//                          several messages when more than 253 descriptors), then LISTENERS_END
//   new -> old  SERVING    the new workers accept on those sockets
//   old -> new  CONNECTIONS a batch: records and their descriptors        } repeated; the old process closes a
//   new -> old  ACK        the batch is served by the new process         } batch only once acknowledged
//   old -> new  DONE       the counters
//   new -> old  BYE        the old process exits (no drain: nothing is left to drain)
//
// A failure at any step leaves every connection with exactly one process: whatever was not acknowledged is given back
// to the old process's workers, and they accept on their listeners again. The new process then exits 1.

/// The handover version this process says it speaks: `Handover.version`, unless `WEIR_HANDOVER_VERSION` pretends
/// another (the tests' way to see the fallback between two versions with one binary).
public let spokenHandoverVersion: UInt16 = ProcessEnvironment.get("WEIR_HANDOVER_VERSION").flatMap { UInt16($0) }
    ?? Handover.version

enum TakeoverMessage: UInt8 {
    case hello = 1, welcome, listeners, listenersEnd, serving, connections, ack, done, bye, abort
}

struct TakeoverError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One message: its type, body and descriptors.
struct TakeoverFrame {
    var type: TakeoverMessage
    var body: [UInt8] = []
    var descriptors: [Descriptor] = []

    static func send(_ type: TakeoverMessage, _ body: [UInt8] = [], fds: [Int32] = [], on socket: Descriptor) throws {
        try UnixSeqpacket.send([type.rawValue] + body, descriptors: fds, on: socket)
    }

    static func receive(on socket: Descriptor) throws -> TakeoverFrame {
        let m = try UnixSeqpacket.receive(on: socket, limit: 4 << 20, maxDescriptors: 253)
        guard !m.truncated else { throw TakeoverError("a handover message was cut short") }
        guard let first = m.bytes.first else { throw TakeoverError("the other process closed the handover") }
        guard let type = TakeoverMessage(rawValue: first) else { throw TakeoverError("handover message type \(first)") }
        if type == .abort {
            throw TakeoverError("the other process gave up: " + String(decoding: m.bytes.dropFirst(), as: UTF8.self))
        }
        return TakeoverFrame(type: type, body: Array(m.bytes.dropFirst()), descriptors: m.descriptors)
    }

    static func expect(_ type: TakeoverMessage, on socket: Descriptor) throws -> TakeoverFrame {
        let f = try receive(on: socket)
        guard f.type == type else { throw TakeoverError("expected handover message \(type), got \(f.type)") }
        return f
    }
}

/// HELLO's and WELCOME's body: the handover version, the sender's pid (SO_PEERCRED names whoever created an
/// inherited listening socket, not the process serving it now) and its build.
func versionBody(_ version: UInt16) -> [UInt8] {
    let pid = UInt32(bitPattern: ProcessEnvironment.pid)
    return [UInt8(version & 0xff), UInt8(version >> 8)] + (0..<4).map { UInt8(truncatingIfNeeded: pid >> (8 * $0)) }
        + Array(BuildInfo.version.utf8)
}

func parseVersionBody(_ body: [UInt8]) -> (version: UInt16, pid: Int32, build: String) {
    guard body.count >= 6 else { return (0, 0, "") }
    let pid = (0..<4).reduce(UInt32(0)) { $0 | UInt32(body[2 + $1]) << (8 * $1) }
    return (UInt16(body[0]) | UInt16(body[1]) << 8, Int32(bitPattern: pid),
            String(decoding: body.dropFirst(6), as: UTF8.self))
}

/// The descriptor map of a message: each received descriptor by its key.
func keyed(_ descriptors: [Descriptor]) -> [DescriptorKey: Descriptor] {
    var out: [DescriptorKey: Descriptor] = [:]
    for d in descriptors {
        guard let k = Inheritance.key(of: d.rawValue) else { continue }
        out[DescriptorKey(inode: k.inode, accessMode: k.accessMode)] = d
    }
    return out
}

// MARK: the new process

/// The new process's side, from HELLO to BYE.
final class TakeoverSession {
    let socket: Descriptor
    /// The predecessor's pid (SO_PEERCRED), waited for before this process takes the locks and claims the tables.
    let predecessor: Int32
    /// Both speak the same state version: connections move; else the predecessor drains them.
    let full: Bool

    private init(socket: Descriptor, predecessor: Int32, full: Bool) {
        self.socket = socket
        self.predecessor = predecessor
        self.full = full
    }

    /// Connects to the running agent of `runDirectory` and takes its listeners. Nil when no agent listens there
    /// (`--takeover` then starts normally).
    static func begin(runDirectory: String, timeoutMs: Int = 10_000) throws -> HandedOver? {
        let path = runDirectory + "/handover.sock"
        let socket: Descriptor
        do {
            socket = try UnixSeqpacket.connect(to: path, timeoutMs: timeoutMs)
        } catch let e as SystemError where e.errno == Errno.ENOENT || e.errno == Errno.ECONNREFUSED {
            agentLog("takeover", ["result": "no running agent at \(path): starting normally"])
            return nil
        }
        do {
            try TakeoverFrame.send(.hello, versionBody(spokenHandoverVersion), on: socket)
            let (theirs, pid, build) = parseVersionBody(try TakeoverFrame.expect(.welcome, on: socket).body)
            let full = theirs == spokenHandoverVersion
            if !full {
                agentLog("handover_fallback", ["from": "pid \(pid) (weir \(build))", "reason": "it writes handover "
                    + "state version \(theirs), this weir reads \(spokenHandoverVersion)",
                    "action": "listeners taken over; the running agent drains its connections"])
            }
            let out = HandedOver(source: "pid \(pid)")
            var received: [Descriptor] = []
            var lists: [HandoverListeners] = []
            while true {
                let f = try TakeoverFrame.receive(on: socket)
                if f.type == .listenersEnd { break }
                guard f.type == .listeners else { throw TakeoverError("expected listeners, got \(f.type)") }
                lists.append(try HandoverListeners.decode(f.body))
                received += f.descriptors
            }
            var byKey = keyed(received)
            for list in lists {
                for l in list.listeners {
                    guard let d = byKey.removeValue(forKey: l.key) else { continue }
                    out.listeners.append(InheritedListener(record: l, descriptor: d))
                }
                for p in list.pods {
                    if let d = byKey.removeValue(forKey: p.namespace) { out.namespaces[p.key] = d }
                }
            }
            out.session = TakeoverSession(socket: socket, predecessor: pid, full: full)
            agentLog("takeover_listeners", ["from": "pid \(pid) (weir \(build))", "listeners": out.listeners.count,
                                            "pods": out.namespaces.count])
            return out
        } catch {
            throw Self.failure(error, path: path)
        }
    }

    /// A takeover's failure as `weir run` reports it: `--takeover: ...`, a socket error naming `path` when given.
    /// Any other error passes unchanged.
    private static func failure(_ error: Error, path: String? = nil) -> Error {
        switch error {
        case let e as SystemError: AgentError("--takeover: \(path.map { "\($0): " } ?? "")\(e)")
        case is TakeoverError, is HandoverError: AgentError("--takeover: \(error)")
        default: error
        }
    }

    /// Tells the predecessor this process serves its listeners, takes in its connections batch by batch (each
    /// acknowledged once the workers have it) and its counters, and lets it go. Returns how many connections moved.
    func finish(_ server: ProxyServer, pods: [String: PodContext]) throws -> (adopted: Int, failed: Int) {
        var adopted = 0, failed = 0
        do {
            try TakeoverFrame.send(.serving, on: socket)
            while true {
                let f = try TakeoverFrame.receive(on: socket)
                if f.type == .done {
                    if !f.body.isEmpty, let state = try? HandoverState.decode(f.body) {
                        server.counters.carryOver(state.counters)
                    }
                    break
                }
                guard f.type == .connections else { throw TakeoverError("expected connections, got \(f.type)") }
                let batch = try HandoverState.decode(f.body)
                let r = server.adopt(batch.connections, descriptors: keyed(f.descriptors), pods: pods)
                adopted += r.adopted
                failed += r.failed
                let n = UInt32(batch.connections.count)
                try TakeoverFrame.send(.ack, [UInt8(n & 0xff), UInt8(n >> 8 & 0xff), UInt8(n >> 16 & 0xff),
                                              UInt8(n >> 24)], on: socket)
            }
            try TakeoverFrame.send(.bye, on: socket)
        } catch {
            throw Self.failure(error)
        }
        return (adopted, failed)
    }

}

// MARK: the running process

/// What the running agent hands over: its server, its other listening sockets, its pods.
struct SuccessionSources {
    let server: ProxyServer
    /// Admin, metrics, cni and handover sockets, with their kind.
    let sockets: [(HandoverListener.Kind, Int32)]
    /// Pods' namespaces by key.
    let pods: [(String, Int32)]
}

enum Succession {
    /// The outcome of a successor's request, for the agent's loop.
    enum Outcome {
        /// Everything moved: exit now (nothing to drain).
        case handedOver
        /// The successor reads another version: it has the listeners; drain the connections, then exit.
        case drainThenExit
        /// Nothing moved (or everything came back): carry on serving.
        case stayed
    }

    /// Serves one successor on `connection` (accepted from handover.sock). See the protocol at the top of the file.
    static func handOver(on connection: Descriptor, _ sources: SuccessionSources) -> Outcome {
        var peer = UnixSeqpacket.peerPID(connection) ?? 0  // the connecting process: it created this socket
        guard UnixSeqpacket.peerUID(connection) == 0 else {
            agentLog("handover_refused", ["from": "pid \(peer)", "reason": "not root"])
            return .stayed
        }
        let started = Clock.nowUs()
        let server = sources.server
        let full: Bool
        do {
            let (theirs, pid, build) = parseVersionBody(try TakeoverFrame.expect(.hello, on: connection).body)
            if pid > 0 { peer = pid }
            full = theirs == spokenHandoverVersion
            try TakeoverFrame.send(.welcome, versionBody(spokenHandoverVersion), on: connection)
            agentLog("handover_started", ["to": "pid \(peer) (weir \(build))",
                                          "mode": full ? "connections and listeners" : "listeners; draining here"])
        } catch {
            agentLog("handover_failed", ["to": "pid \(peer)", "step": "hello", "error": "\(error)"])
            return .stayed
        }
        guard let exported = server.exportAll(timeoutMs: 5000) else {
            try? TakeoverFrame.send(.abort, Array("a worker did not stop in time".utf8), on: connection)
            return .stayed
        }
        // Listeners, the other sockets and the pods' namespaces: every descriptor once, in messages of <= 253.
        var listeners = exported.flatMap(\.listenerRecords)
        for (kind, fd) in sources.sockets {
            guard let k = Inheritance.key(of: fd) else { continue }
            let local = SocketAddress.local(of: fd)
            listeners.append((HandoverListener(kind: kind, port: local?.port ?? 0,
                                               family: UInt8(truncatingIfNeeded: local?.family ?? 1), pod: "",
                                               key: DescriptorKey(inode: k.inode, accessMode: k.accessMode)), fd))
        }
        let pods: [(HandoverPod, Int32)] = sources.pods.compactMap { key, fd in
            Inheritance.key(of: fd).map { (HandoverPod(key: key, namespace: DescriptorKey(inode: $0.inode,
                                                                                        accessMode: $0.accessMode)), fd) }
        }
        do {
            var at = 0, podAt = 0
            repeat {
                let l = Array(listeners[at..<min(listeners.count, at + 200)])
                let p = Array(pods[podAt..<min(pods.count, podAt + (200 - l.count))])
                let list = HandoverListeners(listeners: l.map(\.0), pods: p.map(\.0))
                try TakeoverFrame.send(.listeners, list.encoded, fds: l.map(\.1) + p.map(\.1), on: connection)
                at += l.count
                podAt += p.count
            } while at < listeners.count || podAt < pods.count
            try TakeoverFrame.send(.listenersEnd, on: connection)
            _ = try TakeoverFrame.expect(.serving, on: connection)
        } catch {
            agentLog("handover_failed", ["to": "pid \(peer)", "step": "listeners", "error": "\(error)",
                                         "action": "every listener and connection stays here"])
            server.resume(exported)
            return .stayed
        }
        // The successor accepts on the listeners now. Ours stay open, unwatched, until it said BYE: a successor that
        // fails before that exits (or has died), and this process accepts on them again. Closed at once, they would
        // leave the ports with nobody, refusing connections and free for anyone to bind.
        guard full else {
            // Listeners only: the connections are this process's again, to drain.
            server.giveBack(server.batches(exported))
            do {
                try TakeoverFrame.send(.done, on: connection)
                _ = try TakeoverFrame.expect(.bye, on: connection)
            } catch {
                server.resumeListeners(exported)
                agentLog("handover_failed", ["to": "pid \(peer)", "step": "done", "error": "\(error)",
                                             "action": "every listener and connection stays here"])
                return .stayed
            }
            server.releaseListeners(exported)
            agentLog("handover_done", ["to": "pid \(peer)", "connections": "draining here",
                                       "took_us": Clock.nowUs() - started])
            return .drainThenExit
        }
        let batches = server.batches(exported)
        var moved = 0
        for (i, batch) in batches.enumerated() {
            do {
                try TakeoverFrame.send(.connections, HandoverState(writer: BuildInfo.version,
                                                                   connections: batch.records).encoded,
                                       fds: batch.descriptors, on: connection)
                _ = try TakeoverFrame.expect(.ack, on: connection)
            } catch {
                // Not acknowledged: this batch and the rest are served here again, and so are the listeners (the
                // successor failed: it exits, and the connections it had acknowledged with it).
                server.giveBack(batches[i...])
                server.resumeListeners(exported)
                agentLog("handover_failed", ["to": "pid \(peer)", "step": "connections", "error": "\(error)",
                                             "moved": moved, "kept": batches[i...].reduce(0) { $0 + $1.records.count },
                                             "action": "the listeners and the connections not taken stay here"])
                return .stayed
            }
            server.commit(batch)
            moved += batch.records.count
        }
        do {
            try TakeoverFrame.send(.done, HandoverState(writer: BuildInfo.version,
                                                        counters: server.counters.totals()).encoded, on: connection)
            _ = try TakeoverFrame.expect(.bye, on: connection)
        } catch {
            // Every connection went and was acknowledged: the successor serves them (if it is still alive, it holds
            // the listeners too). Going on here could leave two agents on one node.
            agentLog("handover_failed", ["to": "pid \(peer)", "step": "done", "error": "\(error)"])
        }
        server.releaseListeners(exported)
        agentLog("handover_done", ["to": "pid \(peer)", "connections": moved, "took_us": Clock.nowUs() - started])
        return .handedOver
    }

    /// SIGTERM under systemd with a restart queued: the connections and their state go to the file-descriptor store,
    /// for the next process. True when they did (exit without a drain).
    static func handOverToSystemd(_ server: ProxyServer) -> Bool {
        if let why = SystemdSuccession.refusal() {
            agentLog("handover_skipped", ["to": "systemd", "reason": why, "action": "drain"])
            return false
        }
        let started = Clock.nowUs()
        guard let exported = server.exportAll(timeoutMs: 5000) else { return false }
        let batches = server.batches(exported, maxDescriptors: 253, maxBytes: Int.max)
        let records = batches.flatMap(\.records)
        let state = HandoverState(writer: BuildInfo.version, connections: records, counters: server.counters.totals())
        let memory: Descriptor
        do { memory = try Inheritance.memoryFile(named: "weir-state", holding: state.encoded) } catch {
            agentLog("handover_failed", ["to": "systemd", "error": "\(error)", "action": "drain"])
            server.giveBack(batches)
            server.resume(exported)
            return false
        }
        let fds = batches.flatMap(\.descriptors)
        guard (fds.isEmpty || FDStore.keep("weir-conn", fds)) && FDStore.keep("weir-state", [memory.rawValue]) else {
            FDStore.forget("weir-conn")
            agentLog("handover_failed", ["to": "systemd", "error": "FDSTORE=1 not sent", "action": "drain"])
            server.giveBack(batches)
            server.resume(exported)
            return false
        }
        batches.forEach(server.commit)
        server.releaseListeners(exported)
        agentLog("handover_done", ["to": "systemd", "connections": records.count, "descriptors": fds.count,
                                   "took_us": Clock.nowUs() - started])
        return true
    }
}
