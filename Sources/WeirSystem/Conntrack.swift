import CConntrack
import Glibc

/// Conntrack entries through libnetfilter_conntrack's `nfct_query`: the delete of one flow (the proxy's workers
/// forget the entry of an upstream flow that ended without their own FIN or RST, see WeirProxy's WorkerConntrack),
/// and the dump of the entries that carry a mark followed by the delete of those a caller picks (the agent's start-up
/// clean-up of its predecessor's upstream entries). Conntrack statistics are not here: the library has no API for
/// them (WeirNetfilter's NodeStatusNetlink reads them with WeirSystem's netlink codec).
///
/// The kernel checks CAP_NET_ADMIN against the credentials of the thread that opened the handle, and the handle
/// works in the network namespace that thread was in: each worker opens its own, on its own thread, and pod mode
/// opens one inside each pod's namespace. One handle is used by one thread at a time.
public final class Conntrack {
    /// What a delete did.
    public enum Deletion: Equatable {
        case deleted
        /// The kernel had no such entry (it expired, or the flow never created one).
        case noEntry
        /// The entry on that 4-tuple is a connection redirected to the proxy (`delete(...sparingRedirectsTo:)`): a new
        /// one, not the flow asked for, and it was left alone.
        case spared
        /// Refused or failed: errno (EPERM without CAP_NET_ADMIN; EAFNOSUPPORT for mixed or non-IP addresses).
        case failed(Int32)
    }

    /// One entry of a dump, as `deleteEntries` shows it to the caller's choice.
    public struct Entry: Equatable, CustomStringConvertible {
        /// IP protocol number (6 for TCP).
        public var ipProtocol: UInt8
        /// The kernel's TCP state (`enum tcp_conntrack`: 1 is SYN_SENT); 0 for other protocols.
        public var tcpState: UInt8
        public var mark: UInt32
        /// The original direction's source and destination.
        public var source: SocketAddress
        public var destination: SocketAddress

        public var description: String { "\(source) -> \(destination)" }
    }

    /// What `deleteEntries` did: entries deleted, entries chosen but gone by the time of their delete, entries chosen
    /// but not confirmed just before their delete (spared), and failures (the first errno kept).
    public struct Sweep: Equatable {
        public var deleted = 0
        public var gone = 0
        public var spared = 0
        public var failed = 0
        public var firstError: Int32?
        public init() {}
    }

    private let handle: OpaquePointer
    /// The delete's request objects, one per family (an object keeps the attributes of its last use), reused: a
    /// delete is on the path of a failed connection, and allocates nothing.
    private let flow4: OpaquePointer, flow6: OpaquePointer

    private init(handle: OpaquePointer, flow4: OpaquePointer, flow6: OpaquePointer) {
        self.handle = handle
        self.flow4 = flow4
        self.flow6 = flow6
    }

    deinit {
        nfct_destroy(flow4)
        nfct_destroy(flow6)
        nfct_close(handle)
    }

    /// A ctnetlink handle for this thread's credentials and network namespace. Throws `SystemError`.
    public static func open() throws -> Conntrack {
        guard let handle = nfct_open(UInt8(CONNTRACK), 0) else { throw SystemError("nfct_open", errno: errno) }
        // The kernel queues its answer before the request's send returns, so a receive never needs to wait: one that
        // would (an answer lost to a full receive buffer) fails with EAGAIN instead of stopping a worker's loop. A
        // dump's next part is queued by the receive that empties the queue, so a dump never sees EAGAIN either.
        let fd = nfct_fd(handle)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        guard let flow4 = nfct_new(), let flow6 = nfct_new() else {
            nfct_close(handle)
            throw SystemError("nfct_new", errno: ENOMEM)
        }
        for (flow, family) in [(flow4, AF_INET), (flow6, AF_INET6)] {
            nfct_set_attr_u8(flow, ATTR_ORIG_L3PROTO, UInt8(family))
            nfct_set_attr_u8(flow, ATTR_ORIG_L4PROTO, UInt8(IPPROTO_TCP))
        }
        return Conntrack(handle: handle, flow4: flow4, flow6: flow6)
    }

    /// Deletes the TCP entry whose original direction is `source` -> `destination` (both IPv4 or both IPv6, default
    /// zone), unless the entry the kernel holds on that 4-tuple now is a connection redirected (DNAT) to one of
    /// `ports`, a listener of the proxy: that is not the flow asked for but an application's connection that took
    /// the 4-tuple after it (`.spared`). Two `nfct_query` calls, each answered before its send returns: a GET of the
    /// entry, then the delete of exactly that entry, by its id (one that ended and was replaced in between is not
    /// touched: `.noEntry`). Does not throw: a failure is a value for the caller to count and log, per connection.
    ///
    /// Why the check: the 4-tuple of a proxy's upstream flow is free as soon as its socket is closed, or reset by
    /// its peer, and the delete comes after that (see WeirProxy's WorkerConntrack). An application's connect can
    /// take the same 4-tuple in between. When the old entry had seen a FIN, the kernel drops it on the new SYN and
    /// starts a new one, redirected to the proxy like any other; deleting that one cuts a live connection: its next
    /// packet starts yet another entry, and the proxy's replies and the application's packets then miss each
    /// other's sockets and end in resets.
    public func delete(source: SocketAddress, destination: SocketAddress,
                       sparingRedirectsTo ports: (UInt16, UInt16)) -> Deletion {
        let family = source.family
        guard family == destination.family, family == AF_INET || family == AF_INET6 else {
            return .failed(EAFNOSUPPORT)
        }
        let flow = family == AF_INET6 ? flow6 : flow4
        withUnsafeBytes(of: source.storage) { s in
            withUnsafeBytes(of: destination.storage) { d in
                // The addresses and ports in network order, as a sockaddr_in/in6 holds them (address at offset 4 or
                // 8, port at 2); the library copies them.
                if family == AF_INET6 {
                    nfct_set_attr(flow, ATTR_ORIG_IPV6_SRC, s.baseAddress! + 8)
                    nfct_set_attr(flow, ATTR_ORIG_IPV6_DST, d.baseAddress! + 8)
                } else {
                    nfct_set_attr_u32(flow, ATTR_ORIG_IPV4_SRC, s.load(fromByteOffset: 4, as: UInt32.self))
                    nfct_set_attr_u32(flow, ATTR_ORIG_IPV4_DST, d.load(fromByteOffset: 4, as: UInt32.self))
                }
                nfct_set_attr_u16(flow, ATTR_ORIG_PORT_SRC, s.load(fromByteOffset: 2, as: UInt16.self))
                nfct_set_attr_u16(flow, ATTR_ORIG_PORT_DST, d.load(fromByteOffset: 2, as: UInt16.self))
            }
        }
        nfct_attr_unset(flow, ATTR_ID)
        var found = FoundEntry(ports: (ports.0.bigEndian, ports.1.bigEndian))
        let got: Int32 = withUnsafeMutablePointer(to: &found) { pointer in
            nfct_callback_register(handle, NFCT_T_ALL, { _, ct, data in
                guard let ct, let data else { return Int32(NFCT_CB_CONTINUE) }
                data.assumingMemoryBound(to: FoundEntry.self).pointee.read(ct)
                return Int32(NFCT_CB_CONTINUE)
            }, pointer)
            defer { nfct_callback_unregister(handle) }
            return nfct_query(handle, NFCT_Q_GET, UnsafeRawPointer(flow))
        }
        guard got == 0 else { return Self.deletion(got, errno) }
        guard let id = found.id else { return .noEntry }
        if found.redirected { return .spared }
        nfct_set_attr_u32(flow, ATTR_ID, id)
        defer { nfct_attr_unset(flow, ATTR_ID) }
        return Self.deletion(nfct_query(handle, NFCT_Q_DESTROY, UnsafeRawPointer(flow)), errno)
    }

    private static func deletion(_ result: Int32, _ error: Int32) -> Deletion {
        if result == 0 { return .deleted }
        return error == ENOENT ? .noEntry : .failed(error == 0 ? EPROTO : error)
    }

    /// Dumps the entries whose mark is `mark` (all 32 bits; the kernel filters the dump, `NFCT_Q_DUMP_FILTER`), of
    /// both families in one dump, and deletes those `choose` picks, each by its own tuple, zone and id (an entry that
    /// ended and was replaced by a new one on the same tuple meanwhile is not touched), each only if `confirm`, asked
    /// right before its delete, still agrees. Throws `SystemError` when the dump fails; a failed delete is counted in
    /// the result.
    ///
    /// A dump costs what the kernel's walk of its whole conntrack hash costs (every bucket of every namespace's
    /// entries: ~6 ms with 262,144 buckets here, whatever this namespace holds), so both families share one walk: the
    /// request's family is AF_UNSPEC (no `NFCT_FILTER_DUMP_L3NUM`), which the kernel's filter reads as "any".
    public func deleteEntries(mark: UInt32, where choose: (Entry) -> Bool,
                              confirm: (Entry) -> Bool = { _ in true }) throws -> Sweep {
        var sweep = Sweep()
        let picked = try dump(mark: mark, choose)
        defer { picked.forEach { nfct_destroy($0) } }
        for ct in picked {
            if let entry = DumpCollector.entry(ct), !confirm(entry) {
                sweep.spared += 1
                continue
            }
            switch Self.deletion(nfct_query(handle, NFCT_Q_DESTROY, UnsafeRawPointer(ct)), errno) {
            case .deleted: sweep.deleted += 1
            case .noEntry: sweep.gone += 1
            case .spared: sweep.spared += 1  // not returned by a plain delete
            case .failed(let e):
                sweep.failed += 1
                if sweep.firstError == nil { sweep.firstError = e }
            }
        }
        return sweep
    }

    /// The entries of both families with this mark that `choose` picks, kept (`NFCT_CB_STOLEN`) for the caller to
    /// delete after the dump and free.
    private func dump(mark: UInt32, _ choose: (Entry) -> Bool) throws -> [OpaquePointer] {
        guard let filter = nfct_filter_dump_create() else { throw SystemError("nfct_filter_dump_create", errno: ENOMEM) }
        defer { nfct_filter_dump_destroy(filter) }
        var value = nfct_filter_dump_mark(val: mark, mask: UInt32.max)
        nfct_filter_dump_set_attr(filter, NFCT_FILTER_DUMP_MARK, &value)
        return try withoutActuallyEscaping(choose) { choose in
            var collector = DumpCollector(mark: mark, choose: choose)
            let status: Int32 = withUnsafeMutablePointer(to: &collector) { pointer in
                nfct_callback_register(handle, NFCT_T_ALL, { _, ct, data in
                    guard let ct, let data else { return Int32(NFCT_CB_CONTINUE) }
                    let collector = data.assumingMemoryBound(to: DumpCollector.self)
                    return collector.pointee.take(ct) ? Int32(NFCT_CB_STOLEN)
                                                      : Int32(NFCT_CB_CONTINUE)
                }, pointer)
                defer { nfct_callback_unregister(handle) }
                return nfct_query(handle, NFCT_Q_DUMP_FILTER, UnsafeRawPointer(filter))
            }
            guard status == 0 else {
                let e = errno
                collector.picked.forEach { nfct_destroy($0) }
                throw SystemError("conntrack dump", errno: e == 0 ? EPROTO : e)
            }
            return collector.picked
        }
    }
}

/// What the GET's callback of `Conntrack.delete` reads of the entry the kernel answered with.
private struct FoundEntry {
    /// The proxy's listener ports, in network order (as the library returns ports).
    let ports: (UInt16, UInt16)
    var id: UInt32?
    var redirected = false

    mutating func read(_ ct: OpaquePointer) {
        id = nfct_get_attr_u32(ct, ATTR_ID)
        let port = nfct_get_attr_u16(ct, ATTR_REPL_PORT_SRC)
        redirected = nfct_get_attr_u32(ct, ATTR_STATUS) & UInt32(IPS_DST_NAT.rawValue) != 0
            && (port == ports.0 || port == ports.1)
    }
}

/// What the dump's callback fills in.
private struct DumpCollector {
    let mark: UInt32
    let choose: (Conntrack.Entry) -> Bool
    var picked: [OpaquePointer] = []

    /// True when `ct` is kept (the caller frees it).
    mutating func take(_ ct: OpaquePointer) -> Bool {
        // The kernel filters by mark; checked again, as an older kernel may ignore the filter.
        guard nfct_get_attr_u32(ct, ATTR_MARK) == mark, let entry = Self.entry(ct), choose(entry) else { return false }
        picked.append(ct)
        return true
    }

    static func entry(_ ct: OpaquePointer) -> Conntrack.Entry? {
        let family = Int32(nfct_get_attr_u8(ct, ATTR_ORIG_L3PROTO))
        guard family == AF_INET || family == AF_INET6 else { return nil }
        let ipProtocol = nfct_get_attr_u8(ct, ATTR_ORIG_L4PROTO)
        let tcp = ipProtocol == UInt8(IPPROTO_TCP)
        return Conntrack.Entry(
            ipProtocol: ipProtocol,
            tcpState: tcp && nfct_attr_is_set(ct, ATTR_TCP_STATE) > 0 ? nfct_get_attr_u8(ct, ATTR_TCP_STATE) : 0,
            mark: nfct_get_attr_u32(ct, ATTR_MARK),
            source: address(ct, family, v4: ATTR_ORIG_IPV4_SRC, v6: ATTR_ORIG_IPV6_SRC, port: ATTR_ORIG_PORT_SRC),
            destination: address(ct, family, v4: ATTR_ORIG_IPV4_DST, v6: ATTR_ORIG_IPV6_DST, port: ATTR_ORIG_PORT_DST))
    }

    private static func address(_ ct: OpaquePointer, _ family: Int32, v4: nf_conntrack_attr, v6: nf_conntrack_attr,
                                port: nf_conntrack_attr) -> SocketAddress {
        var a = SocketAddress()
        let bytes = family == AF_INET6 ? 16 : 4
        if let p = nfct_get_attr(ct, family == AF_INET6 ? v6 : v4) {
            withUnsafeMutableBytes(of: &a.storage) { $0.baseAddress!.advanced(by: family == AF_INET6 ? 8 : 4)
                .copyMemory(from: p, byteCount: bytes) }
        }
        a.storage.ss_family = sa_family_t(family)
        a.length = socklen_t(family == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
        a.port = UInt16(bigEndian: nfct_get_attr_u16(ct, port))
        return a
    }
}
