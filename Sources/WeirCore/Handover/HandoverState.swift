/// What one weir process hands to the one that replaces it: its listeners, its pods and every live connection, as
/// values (this file) plus the descriptors themselves (passed beside them: SCM_RIGHTS or systemd's file-descriptor
/// store). A descriptor is named by its `DescriptorKey` (the inode of its socket or pipe and its access mode), never
/// by its number or its position in a message: numbers differ between processes, and systemd's store neither keeps
/// the order nor gives each descriptor a name of its own.
///
/// The encoding is versioned: a process that reads a `version` it does not know refuses the state and says so (the
/// caller then falls back to a drain). Every field is bounded; a decoder never trusts a count or a length.
public enum Handover {
    /// Bump on any change of the encoding below.
    public static let version: UInt16 = 1
    static let magic: [UInt8] = Array("WEIRHO".utf8)
}

/// A descriptor as the other process can find it among those it received: (inode, access mode). Sockets have an
/// inode each; a pipe's two ends share one and differ in access mode.
public struct DescriptorKey: Hashable, Sendable, CustomStringConvertible {
    public let inode: UInt64
    /// O_RDONLY 0, O_WRONLY 1, O_RDWR 2.
    public let accessMode: UInt8

    public init(inode: UInt64, accessMode: UInt8) {
        self.inode = inode
        self.accessMode = accessMode
    }

    public var description: String { "\(inode)/\(accessMode)" }
}

/// A listening socket: which capture port, family and worker it served, and the pod whose namespace it is in ("" for
/// the agent's own namespace). Admin and metrics listeners have kinds of their own.
public struct HandoverListener: Equatable, Sendable {
    public enum Kind: UInt8, Sendable {
        case outbound = 0, inbound = 1, admin = 2, metrics = 3
        /// The pod-mode plugin's socket (`cni.sock`) and the successor's (`handover.sock`).
        case cni = 4, handover = 5
    }

    public var kind: Kind
    public var port: UInt16
    /// AF_INET or AF_INET6 as numbers (2, 10).
    public var family: UInt8
    public var pod: String
    public var key: DescriptorKey

    /// A pod key as systemd's store may carry it in a name (printable, no ':'; anything else becomes '_').
    public static func storeSafe(_ key: String) -> String {
        String(String.UnicodeScalarView(key.unicodeScalars.prefix(200).map {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "._-".unicodeScalars
                .contains($0) ? $0 : "_"
        }))
    }

    public init(kind: Kind, port: UInt16, family: UInt8, pod: String, key: DescriptorKey) {
        self.kind = kind
        self.port = port
        self.family = family
        self.pod = pod
        self.key = key
    }
}

/// A pod's network namespace (pod mode): the new process serves it without opening its path again.
public struct HandoverPod: Equatable, Sendable {
    public var key: String
    public var namespace: DescriptorKey

    public init(key: String, namespace: DescriptorKey) {
        self.key = key
        self.namespace = namespace
    }
}

/// Bytes in flight in one direction of a connection: in a pipe (passed as two descriptors, the bytes inside it), or
/// in the copy buffer (the bytes themselves, here).
public struct HandoverFlight: Equatable, Sendable {
    public var pipeRead: DescriptorKey?
    public var pipeWrite: DescriptorKey?
    /// Bytes in the pipe, or the length of `buffered`.
    public var pending: Int
    public var buffered: [UInt8]
    public var copyOnly: Bool
    public var bulk: Bool

    public init(pipeRead: DescriptorKey? = nil, pipeWrite: DescriptorKey? = nil, pending: Int = 0,
                buffered: [UInt8] = [], copyOnly: Bool = false, bulk: Bool = false) {
        self.pipeRead = pipeRead
        self.pipeWrite = pipeWrite
        self.pending = pending
        self.buffered = buffered
        self.copyOnly = copyOnly
        self.bulk = bulk
    }
}

/// One proxied connection: its two sockets, both directions' bytes in flight, its state machine and where it stands
/// against its deadlines.
public struct HandoverConnection: Equatable, Sendable {
    public var client: DescriptorKey
    public var upstream: DescriptorKey
    public var state: ProxyConnectionState
    public var toUpstream: HandoverFlight
    public var toClient: HandoverFlight
    /// The worker's readiness knowledge (edge-triggered): readable/writable per side, a FIN seen, urgent data.
    public var flags: UInt16
    /// Still connecting (else established).
    public var connecting: Bool
    public var inbound: Bool
    /// Milliseconds since the last activity (the idle deadline's start) or since connect() while connecting.
    public var idleAgeMs: Int64
    /// Milliseconds since accept (the lifetime histogram) and since connect() (the connect histogram), in µs.
    public var ageMs: Int64
    public var dialAgeUs: Int64
    /// The pod's key ("" for the agent's own namespace).
    public var pod: String

    public init(client: DescriptorKey, upstream: DescriptorKey, state: ProxyConnectionState,
                toUpstream: HandoverFlight, toClient: HandoverFlight, flags: UInt16, connecting: Bool,
                inbound: Bool, idleAgeMs: Int64, ageMs: Int64, dialAgeUs: Int64, pod: String) {
        self.client = client
        self.upstream = upstream
        self.state = state
        self.toUpstream = toUpstream
        self.toClient = toClient
        self.flags = flags
        self.connecting = connecting
        self.inbound = inbound
        self.idleAgeMs = idleAgeMs
        self.ageMs = ageMs
        self.dialAgeUs = dialAgeUs
        self.pod = pod
    }

    /// Every descriptor the connection holds.
    public var keys: [DescriptorKey] {
        [client, upstream] + [toUpstream.pipeRead, toUpstream.pipeWrite, toClient.pipeRead, toClient.pipeWrite]
            .compactMap { $0 }
    }
}

/// The live connections and the counters: the part of a handover whose encoding may change between versions (a
/// process that cannot read it refuses it, and the old process drains its connections instead).
public struct HandoverState: Equatable, Sendable {
    /// The version string of the binary that wrote it, for messages.
    public var writer: String
    public var connections: [HandoverConnection]
    /// The proxy's counters (totals, not gauges), so the metric series go on; empty when not carried.
    public var counters: [Int64]

    public init(writer: String, connections: [HandoverConnection] = [], counters: [Int64] = []) {
        self.writer = writer
        self.connections = connections
        self.counters = counters
    }

    public var encoded: [UInt8] {
        var w = ByteWriter()
        w.bytes(Handover.magic)
        w.u16(Handover.version)
        w.string(writer)
        w.u32(UInt32(connections.count))
        for c in connections { w.connection(c) }
        w.u32(UInt32(counters.count))
        for v in counters { w.u64(UInt64(bitPattern: v)) }
        return w.out
    }

    /// The version of an encoded state, without reading the rest; nil when it is not one.
    public static func version(of bytes: [UInt8]) -> UInt16? {
        var r = ByteReader(bytes)
        guard (try? r.bytes(Handover.magic.count)) == Handover.magic else { return nil }
        return try? r.u16()
    }

    /// Reads a state; throws naming what is wrong (an unknown version says which).
    public static func decode(_ bytes: [UInt8]) throws(HandoverError) -> HandoverState {
        var r = ByteReader(bytes)
        guard try r.bytes(Handover.magic.count) == Handover.magic else { throw HandoverError("not weir handover state") }
        let version = try r.u16()
        guard version == Handover.version else {
            throw HandoverError("handover state version \(version) is not known to this weir (it reads "
                                + "\(Handover.version))", versionMismatch: true)
        }
        var state = HandoverState(writer: try r.string())
        for _ in 0..<(try r.count(max: 1 << 24)) { state.connections.append(try r.connection()) }
        for _ in 0..<(try r.count(max: 4096)) { state.counters.append(Int64(bitPattern: try r.u64())) }
        guard r.atEnd else { throw HandoverError("bytes after the state") }
        return state
    }
}

/// The listeners and the pods' namespaces: what every weir hands over, whatever its version. This encoding never
/// changes incompatibly (a new field goes at the end, and readers ignore what follows what they know), so even a
/// process that cannot read the connections takes the listeners: new connections are never refused.
public struct HandoverListeners: Equatable, Sendable {
    public var listeners: [HandoverListener]
    public var pods: [HandoverPod]

    public init(listeners: [HandoverListener] = [], pods: [HandoverPod] = []) {
        self.listeners = listeners
        self.pods = pods
    }

    static let magic: [UInt8] = Array("WEIRHL".utf8)

    public var encoded: [UInt8] {
        var w = ByteWriter()
        w.bytes(Self.magic)
        w.u32(UInt32(listeners.count))
        for l in listeners {
            w.u8(l.kind.rawValue)
            w.u16(l.port)
            w.u8(l.family)
            w.string(l.pod)
            w.key(l.key)
        }
        w.u32(UInt32(pods.count))
        for p in pods {
            w.string(p.key)
            w.key(p.namespace)
        }
        return w.out
    }

    public static func decode(_ bytes: [UInt8]) throws(HandoverError) -> HandoverListeners {
        var r = ByteReader(bytes)
        guard try r.bytes(magic.count) == magic else { throw HandoverError("not a weir listener list") }
        var out = HandoverListeners()
        for _ in 0..<(try r.count(max: 1 << 20)) {
            let kind = try r.u8()
            let port = try r.u16(), family = try r.u8(), pod = try r.string(), key = try r.key()
            // A kind a later version added: its socket is closed with the unused descriptors.
            guard let k = HandoverListener.Kind(rawValue: kind) else { continue }
            out.listeners.append(HandoverListener(kind: k, port: port, family: family, pod: pod, key: key))
        }
        for _ in 0..<(try r.count(max: 1 << 20)) {
            out.pods.append(HandoverPod(key: try r.string(), namespace: try r.key()))
        }
        return out
    }
}

public struct HandoverError: Error, Equatable, CustomStringConvertible {
    public let description: String
    /// The other process speaks another version: fall back to a drain.
    public let versionMismatch: Bool
    public init(_ description: String, versionMismatch: Bool = false) {
        self.description = description
        self.versionMismatch = versionMismatch
    }
}

extension ProxyConnectionState {
    /// The state as one byte-sized set of fields (handover).
    public var packed: UInt8 {
        (connected ? 1 : 0) | (isClosed ? 2 : 0) | (draining ? 4 : 0) | (clientFlow.rawValue << 3)
            | (upstreamFlow.rawValue << 5)
    }

    /// A state from `packed`; nil for a byte no state packs to.
    public init?(packed b: UInt8) {
        guard let client = ProxyFlow(rawValue: (b >> 3) & 3), let upstream = ProxyFlow(rawValue: (b >> 5) & 3),
              b >> 7 == 0 else { return nil }
        self.init(connected: b & 1 != 0, isClosed: b & 2 != 0, draining: b & 4 != 0, clientFlow: client,
                  upstreamFlow: upstream)
    }
}

/// Little-endian fields, strings and byte strings with a length in front.
struct ByteWriter {
    var out: [UInt8] = []

    mutating func u8(_ v: UInt8) { out.append(v) }
    mutating func u16(_ v: UInt16) { for i in 0..<2 { out.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func u32(_ v: UInt32) { for i in 0..<4 { out.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func u64(_ v: UInt64) { for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func bytes(_ b: [UInt8]) { out += b }
    mutating func blob(_ b: [UInt8]) {
        u32(UInt32(b.count))
        out += b
    }
    mutating func string(_ s: String) { blob(Array(s.utf8)) }
    mutating func key(_ k: DescriptorKey) {
        u64(k.inode)
        u8(k.accessMode)
    }
    mutating func optionalKey(_ k: DescriptorKey?) {
        u8(k == nil ? 0 : 1)
        if let k { key(k) }
    }
    mutating func flight(_ f: HandoverFlight) {
        optionalKey(f.pipeRead)
        optionalKey(f.pipeWrite)
        u64(UInt64(f.pending))
        blob(f.buffered)
        u8((f.copyOnly ? 1 : 0) | (f.bulk ? 2 : 0))
    }
    mutating func connection(_ c: HandoverConnection) {
        key(c.client)
        key(c.upstream)
        u8(c.state.packed)
        flight(c.toUpstream)
        flight(c.toClient)
        u16(c.flags)
        u8((c.connecting ? 1 : 0) | (c.inbound ? 2 : 0))
        u64(UInt64(bitPattern: c.idleAgeMs))
        u64(UInt64(bitPattern: c.ageMs))
        u64(UInt64(bitPattern: c.dialAgeUs))
        string(c.pod)
    }
}

struct ByteReader {
    let data: [UInt8]
    var at = 0

    init(_ data: [UInt8]) { self.data = data }

    var atEnd: Bool { at == data.count }

    mutating func bytes(_ n: Int) throws(HandoverError) -> [UInt8] {
        guard n >= 0, data.count - at >= n else { throw HandoverError("state ends early at byte \(at)") }
        defer { at += n }
        return Array(data[at..<at + n])
    }
    mutating func u8() throws(HandoverError) -> UInt8 { try bytes(1)[0] }
    mutating func uint(_ n: Int) throws(HandoverError) -> UInt64 {
        var v: UInt64 = 0
        for (i, b) in try bytes(n).enumerated() { v |= UInt64(b) << (8 * i) }
        return v
    }
    mutating func u16() throws(HandoverError) -> UInt16 { UInt16(try uint(2)) }
    mutating func u32() throws(HandoverError) -> UInt32 { UInt32(try uint(4)) }
    mutating func u64() throws(HandoverError) -> UInt64 { try uint(8) }
    mutating func count(max: Int) throws(HandoverError) -> Int {
        let n = Int(try u32())
        guard n <= max else { throw HandoverError("a count of \(n) at byte \(at - 4) is over \(max)") }
        return n
    }
    mutating func blob(max: Int = 1 << 24) throws(HandoverError) -> [UInt8] { try bytes(try count(max: max)) }
    mutating func string() throws(HandoverError) -> String {
        String(decoding: try blob(max: 4096), as: UTF8.self)
    }
    mutating func key() throws(HandoverError) -> DescriptorKey {
        let inode = try u64()
        let mode = try u8()
        guard mode <= 2 else { throw HandoverError("access mode \(mode)") }
        return DescriptorKey(inode: inode, accessMode: mode)
    }
    mutating func optionalKey() throws(HandoverError) -> DescriptorKey? {
        switch try u8() {
        case 0: return nil
        case 1: return try key()
        case let b: throw HandoverError("optional descriptor tag \(b)")
        }
    }
    mutating func flight() throws(HandoverError) -> HandoverFlight {
        let read = try optionalKey(), write = try optionalKey()
        let pending = try u64()
        let buffered = try blob()
        let bits = try u8()
        guard pending <= 1 << 30, (read == nil) == (write == nil), read != nil || Int(pending) == buffered.count,
              bits < 4 else { throw HandoverError("inconsistent bytes in flight") }
        return HandoverFlight(pipeRead: read, pipeWrite: write, pending: Int(pending), buffered: buffered,
                              copyOnly: bits & 1 != 0, bulk: bits & 2 != 0)
    }
    mutating func connection() throws(HandoverError) -> HandoverConnection {
        let client = try key(), upstream = try key()
        let packed = try u8()
        guard let state = ProxyConnectionState(packed: packed) else { throw HandoverError("state byte \(packed)") }
        let toUpstream = try flight(), toClient = try flight()
        let flags = try u16()
        let bits = try u8()
        guard bits < 4 else { throw HandoverError("connection bits \(bits)") }
        return HandoverConnection(client: client, upstream: upstream, state: state, toUpstream: toUpstream,
                                  toClient: toClient, flags: flags, connecting: bits & 1 != 0, inbound: bits & 2 != 0,
                                  idleAgeMs: Int64(bitPattern: try u64()), ageMs: Int64(bitPattern: try u64()),
                                  dialAgeUs: Int64(bitPattern: try u64()), pod: try string())
    }
}
