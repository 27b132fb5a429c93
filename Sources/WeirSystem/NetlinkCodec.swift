// The one netlink codec: requests built and replies read here for nftables, rtnetlink and ctnetlink alike.
// The wire format (linux/netlink.h): a message is a 16-byte header (length, type, flags, sequence, port), a fixed
// header of its family (nfgenmsg, rtmsg, ...), then attributes; an attribute is length (u16), type (u16) and its
// payload, padded to 4 bytes. All of it in host byte order, except the values a family sends in network order.

/// `nlmsghdr.nlmsg_flags` (linux/netlink.h; the C macros are not importable as one type).
public struct NetlinkFlags: OptionSet, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let request = NetlinkFlags(rawValue: 0x1)
    public static let ack = NetlinkFlags(rawValue: 0x4)
    /// GET requests: the whole table (NLM_F_ROOT | NLM_F_MATCH).
    public static let dump = NetlinkFlags(rawValue: 0x300)
    /// NEW requests.
    public static let replace = NetlinkFlags(rawValue: 0x100)
    public static let exclusive = NetlinkFlags(rawValue: 0x200)
    public static let create = NetlinkFlags(rawValue: 0x400)
    public static let append = NetlinkFlags(rawValue: 0x800)
}

public enum Netlink {
    /// Message types every family shares.
    public static let error: UInt16 = 2, done: UInt16 = 3
    /// `sizeof(struct nlmsghdr)`, `sizeof(struct nlattr)`.
    public static let headerLength = 16, attributeHeaderLength = 4
    /// NLA_F_NESTED: set on a nest's type by weir's requests (the kernel's strict validation wants it).
    public static let nested: UInt16 = 0x8000
    /// The bits of an attribute's type that are its type (NLA_TYPE_MASK: without NESTED and NET_BYTEORDER).
    public static let typeMask: UInt16 = 0x3fff

    /// NLMSG_ALIGN and NLA_ALIGN: both are 4.
    @inline(__always)
    public static func align(_ length: Int) -> Int { (length + 3) & ~3 }
}

/// One or more netlink messages built into one buffer (an nftables batch is several), sent with one sendmsg.
///
/// Each `put` appends at the end of the current message and keeps its `nlmsg_len` up to date, the way libmnl does,
/// so that libnftnl can append an object's attributes to a message begun here (`withMessage`). A class over raw
/// memory rather than an array: building a batch of 100,000 set elements then costs memcpy and no per-element work
/// (an `[UInt8]` grown with `append(contentsOf:)` cost a third of `weir rules` in a debug build).
public final class NetlinkRequest {
    /// `capacity` bytes, of which the first `count` are the request. Grows by doubling.
    private var base: UnsafeMutableRawPointer
    private var capacity: Int
    public private(set) var count = 0
    /// Offset of the current message's header.
    private var start = 0

    public init(capacity: Int = 1024) {
        self.capacity = max(capacity, Netlink.headerLength)
        base = UnsafeMutableRawPointer.allocate(byteCount: self.capacity, alignment: 8)
    }

    deinit { base.deallocate() }

    /// Empties the request, keeping its memory (a socket that sends one request after another).
    public func removeAll() {
        count = 0
        start = 0
    }

    /// The request as it goes out.
    public func withUnsafeBytes<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try body(UnsafeRawBufferPointer(start: base, count: count))
    }

    /// A copy of the bytes (for tests and for messages kept as values).
    public var bytes: [UInt8] { Array(UnsafeRawBufferPointer(start: base, count: count)) }

    /// Starts a message after the previous one.
    public func begin(type: UInt16, flags: NetlinkFlags, sequence: UInt32) {
        start = count
        reserve(Netlink.headerLength)
        base.storeBytes(of: UInt32(Netlink.headerLength), toByteOffset: start, as: UInt32.self)
        base.storeBytes(of: type, toByteOffset: start + 4, as: UInt16.self)
        base.storeBytes(of: flags.rawValue, toByteOffset: start + 6, as: UInt16.self)
        base.storeBytes(of: sequence, toByteOffset: start + 8, as: UInt32.self)
        base.storeBytes(of: UInt32(0), toByteOffset: start + 12, as: UInt32.self)
        count = start + Netlink.headerLength
    }

    /// Appends the family's fixed header (`nfgenmsg`, `rtmsg`, `fib_rule_hdr`, `ifaddrmsg`: a C struct value).
    public func put<Header>(header: Header) {
        precondition(_isPOD(Header.self), "a netlink header is a C struct, not \(Header.self)")
        Swift.withUnsafeBytes(of: header) { append($0) }
    }

    /// Appends a fixed header given as bytes (one read from a reply, sent back to delete its object).
    public func put<Bytes: Collection>(headerBytes: Bytes) where Bytes.Element == UInt8 {
        Array(headerBytes).withUnsafeBytes { append($0) }
    }

    /// Appends an attribute with `payload` as it is.
    public func put(_ type: UInt16, _ payload: UnsafeRawBufferPointer) {
        attributeHeader(type, payloadLength: payload.count)
        append(payload)
    }

    public func put(_ type: UInt16, bytes: [UInt8]) {
        bytes.withUnsafeBytes { put(type, $0) }
    }

    /// An integer attribute in host byte order (pass `value.bigEndian` where the family wants network order).
    public func put<T: FixedWidthInteger>(_ type: UInt16, _ value: T) {
        Swift.withUnsafeBytes(of: value) { put(type, $0) }
    }

    /// A NUL-terminated string attribute.
    public func put(_ type: UInt16, string: String) {
        var s = string
        s.withUTF8 { utf8 in
            attributeHeader(type, payloadLength: utf8.count + 1)
            append(UnsafeRawBufferPointer(utf8), terminated: true)
        }
    }

    /// Opens a nest; attributes put until `endNest` go inside it.
    public func beginNest(_ type: UInt16) -> NetlinkNest {
        let at = count
        attributeHeader(type | Netlink.nested, payloadLength: 0)
        return NetlinkNest(offset: at)
    }

    public func endNest(_ nest: NetlinkNest) {
        let length = count - nest.offset
        precondition(length <= Int(UInt16.max), "netlink nest of \(length) bytes")
        base.storeBytes(of: UInt16(length), toByteOffset: nest.offset, as: UInt16.self)
    }

    /// Lets C code (libnftnl's `*_nlmsg_build_payload`) append to the current message: `body` gets its header with at
    /// least `capacity` bytes free after the message, and must keep `nlmsg_len` up to date, as libmnl does.
    public func withMessage(capacity: Int, _ body: (UnsafeMutableRawPointer) -> Void) {
        reserve(capacity)
        body(base + start)
        let length = Int(base.load(fromByteOffset: start, as: UInt32.self))
        precondition(start + length <= self.capacity, "netlink message overran its buffer")
        count = start + Netlink.align(length)
    }

    private func attributeHeader(_ type: UInt16, payloadLength: Int) {
        let length = Netlink.attributeHeaderLength + payloadLength
        precondition(length <= Int(UInt16.max), "netlink attribute of \(length) bytes")
        var header = (UInt16(length), type)
        Swift.withUnsafeBytes(of: &header) { append($0) }
    }

    private func reserve(_ extra: Int) {
        let needed = count + extra
        guard needed > capacity else { return }
        var size = capacity * 2
        while size < needed { size *= 2 }
        let grown = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
        grown.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = grown
        capacity = size
    }

    /// Appends `bytes` (a NUL after them when `terminated`), pads to 4 and updates the message's length.
    private func append(_ bytes: UnsafeRawBufferPointer, terminated: Bool = false) {
        let length = bytes.count + (terminated ? 1 : 0)
        let padded = Netlink.align(length)
        reserve(padded)
        if let from = bytes.baseAddress { (base + count).copyMemory(from: from, byteCount: bytes.count) }
        // The NUL and the padding: the memory is not zeroed.
        (base + count + bytes.count).initializeMemory(as: UInt8.self, repeating: 0, count: padded - bytes.count)
        count += padded
        base.storeBytes(of: UInt32(count - start), toByteOffset: start, as: UInt32.self)
    }
}

/// An open nest of a `NetlinkRequest`.
public struct NetlinkNest {
    fileprivate let offset: Int
}

/// One netlink message as received (its header included), with checked accessors: any byte sequence is safe to read.
public struct NetlinkMessage {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = bytes }

    public var type: UInt16 { field(4) }
    public var flags: UInt16 { field(6) }
    public var sequence: UInt32 { field(8) }

    private func field<T: FixedWidthInteger>(_ offset: Int) -> T {
        guard bytes.count >= offset + MemoryLayout<T>.size else { return 0 }
        return bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
    }

    /// For an NLMSG_ERROR message (`struct nlmsgerr`): 0 for an ack, else the negative errno; -EPROTO when the
    /// message is too short to say.
    public var errorCode: Int32 {
        bytes.count >= Netlink.headerLength + 4 ? field(Netlink.headerLength) : -Errno.EPROTO
    }

    /// The `length` bytes of the family's fixed header after the netlink header; nil when the message is shorter.
    public func fixedHeader(_ length: Int) -> ArraySlice<UInt8>? {
        let end = Netlink.headerLength + length
        return bytes.count >= end ? bytes[Netlink.headerLength..<end] : nil
    }

    /// The attributes after a fixed header of `headerLength` bytes (padded to 4, as the kernel lays it out).
    public func attributes(after headerLength: Int) -> NetlinkAttributes {
        let from = Swift.min(bytes.count, Netlink.headerLength + Netlink.align(headerLength))
        return NetlinkAttributes(bytes, from..<bytes.count)
    }

    /// The messages of one receive buffer, in order. Stops at the first whose length is impossible.
    public static func split(_ buffer: UnsafeRawBufferPointer) -> [NetlinkMessage] {
        var out: [NetlinkMessage] = []
        var offset = 0
        while offset + Netlink.headerLength <= buffer.count {
            let length = Int(buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            guard length >= Netlink.headerLength, length <= buffer.count - offset else { break }
            out.append(NetlinkMessage(bytes: Array(buffer[offset..<(offset + length)])))
            offset += Netlink.align(length)
        }
        return out
    }

    public static func split(_ buffer: [UInt8]) -> [NetlinkMessage] {
        buffer.withUnsafeBytes { split($0) }
    }
}

/// One attribute: its type (without the NESTED and NET_BYTEORDER bits) and where its payload is.
public struct NetlinkAttribute: Equatable {
    public let type: UInt16
    public let payload: Range<Int>
}

/// The attributes in a range of a message, in order, read as libmnl reads them: the walk stops at the first
/// attribute whose length is impossible (shorter than its header, or past the end), so a truncated or corrupt message
/// yields the attributes before the damage and never reads outside `bytes`.
public struct NetlinkAttributes: Sequence, IteratorProtocol {
    public let bytes: [UInt8]
    private var offset: Int
    private let end: Int

    public init(_ bytes: [UInt8], _ range: Range<Int>) {
        self.bytes = bytes
        offset = range.lowerBound
        end = Swift.min(range.upperBound, bytes.count)
    }

    public mutating func next() -> NetlinkAttribute? {
        guard offset + Netlink.attributeHeaderLength <= end else { return nil }
        let length = Int(u16(offset)), type = u16(offset + 2) & Netlink.typeMask
        guard length >= Netlink.attributeHeaderLength, length <= end - offset else {
            offset = end
            return nil
        }
        let attribute = NetlinkAttribute(type: type, payload: (offset + 4)..<(offset + length))
        offset += Netlink.align(length)
        return attribute
    }

    private func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }

    /// The attributes inside `attribute` (a nest).
    public func nested(_ attribute: NetlinkAttribute) -> NetlinkAttributes {
        NetlinkAttributes(bytes, attribute.payload)
    }

    /// The payload's bytes.
    public func value(_ attribute: NetlinkAttribute) -> ArraySlice<UInt8> { bytes[attribute.payload] }

    /// An integer attribute of exactly its size (as libmnl's `mnl_attr_validate` wants), in host byte order; nil for
    /// any other size.
    public func integer<T: FixedWidthInteger>(_ attribute: NetlinkAttribute, as: T.Type = T.self) -> T? {
        guard attribute.payload.count == MemoryLayout<T>.size else { return nil }
        return bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: attribute.payload.lowerBound, as: T.self) }
    }

    /// The last attribute of `type`: the one libmnl's attribute tables keep when a type repeats.
    public func last(_ type: UInt16) -> NetlinkAttribute? {
        var found: NetlinkAttribute?
        for a in self where a.type == type { found = a }
        return found
    }

    /// Every attribute by type, the last one winning (as libmnl's attribute tables do).
    public func byType() -> [UInt16: ArraySlice<UInt8>] {
        var out: [UInt16: ArraySlice<UInt8>] = [:]
        for a in self { out[a.type] = bytes[a.payload] }
        return out
    }
}
