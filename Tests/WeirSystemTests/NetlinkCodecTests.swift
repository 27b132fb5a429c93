import Testing
import WeirSystem

/// The netlink codec on bytes, without a socket: what it builds reads back, and what it reads never traps.
struct NetlinkCodecTests {
    /// nfgenmsg: family, version, resource id (big endian).
    static let nfgenmsg = (UInt8(2), UInt8(0), UInt16(0))

    static func u16(_ b: [UInt8], _ at: Int) -> Int { Int(b[at]) | Int(b[at + 1]) << 8 }
    static func u32(_ b: [UInt8], _ at: Int) -> Int { u16(b, at) | u16(b, at + 2) << 16 }

    @Test func aBuiltMessageReadsBack() throws {
        let request = NetlinkRequest(capacity: 16)
        request.begin(type: 10 << 8 | 6, flags: [.request, .ack, .create], sequence: 77)
        request.put(header: Self.nfgenmsg)
        request.put(1, UInt32(0x0102_0304))
        request.put(2, string: "weir")
        request.put(3, bytes: [9, 8, 7])
        let bytes = request.bytes
        #expect(Self.u32(bytes, 0) == bytes.count && request.count == bytes.count)
        let messages = NetlinkMessage.split(bytes)
        try #require(messages.count == 1)
        let m = messages[0]
        #expect(m.type == 10 << 8 | 6 && m.flags == 0x405 && m.sequence == 77)
        #expect(m.fixedHeader(4).map(Array.init) == [2, 0, 0, 0])
        let attributes = m.attributes(after: 4)
        let all = Array(attributes)
        #expect(all.map(\.type) == [1, 2, 3])
        #expect(attributes.integer(all[0], as: UInt32.self) == 0x0102_0304)
        #expect(Array(attributes.value(all[1])) == Array("weir".utf8) + [0])
        #expect(Array(attributes.value(all[2])) == [9, 8, 7])
        #expect(attributes.integer(all[2], as: UInt32.self) == nil)  // 3 bytes is no u32
        #expect(attributes.last(3) == all[2] && attributes.last(4) == nil)
        #expect(attributes.byType()[2].map(Array.init) == Array("weir".utf8) + [0])
    }

    @Test func nestedAttributesCarryTheNestedFlagAndReadBack() throws {
        let request = NetlinkRequest()
        request.begin(type: 1 << 8 | 2, flags: .request, sequence: 1)
        request.put(header: Self.nfgenmsg)
        let outer = request.beginNest(1)
        let inner = request.beginNest(1)
        request.put(1, bytes: [198, 18, 0, 1])
        request.put(2, bytes: [198, 18, 0, 2])
        request.endNest(inner)
        let proto = request.beginNest(2)
        request.put(1, UInt8(6))
        request.put(2, UInt16(8080).bigEndian)
        request.endNest(proto)
        request.endNest(outer)
        let bytes = request.bytes
        // The outer nest: the whole payload after nfgenmsg, type 1 with NLA_F_NESTED.
        #expect(Self.u16(bytes, 20) == bytes.count - 20 && Self.u16(bytes, 22) == 0x8001)
        let m = NetlinkMessage.split(bytes)[0]
        let top = m.attributes(after: 4)
        let tuple = try #require(top.last(1))
        let parts = top.nested(tuple)
        #expect(Array(parts).map(\.type) == [1, 2])
        let ip = parts.nested(try #require(parts.last(1)))
        #expect(Array(ip).map { Array(ip.value($0)) } == [[198, 18, 0, 1], [198, 18, 0, 2]])
        let ports = parts.nested(try #require(parts.last(2)))
        #expect(ports.integer(try #require(ports.last(2)), as: UInt16.self).map(UInt16.init(bigEndian:)) == 8080)
        #expect(ports.integer(try #require(ports.last(1)), as: UInt8.self) == 6)
    }

    @Test func attributesAndMessagesArePaddedToFourBytes() throws {
        let request = NetlinkRequest(capacity: 16)
        request.begin(type: 20, flags: .request, sequence: 1)
        for n in 0...5 { request.put(UInt16(n + 1), bytes: [UInt8](repeating: 0xff, count: n)) }
        request.put(7, string: "abc")  // 3 bytes and the NUL: no padding
        request.put(8, string: "abcd")  // 4 and the NUL: 3 bytes of padding
        let firstLength = request.count
        request.begin(type: 21, flags: .request, sequence: 2)
        request.put(1, UInt32(5))
        let bytes = request.bytes
        #expect(firstLength % 4 == 0 && bytes.count % 4 == 0)
        // Each attribute starts on a multiple of 4 and its padding is zero.
        var offset = 16
        for n in 0...5 {
            #expect(Self.u16(bytes, offset) == 4 + n && offset % 4 == 0)
            let padded = (4 + n + 3) & ~3
            #expect(bytes[(offset + 4 + n)..<(offset + padded)].allSatisfy { $0 == 0 })
            offset += padded
        }
        #expect(Self.u16(bytes, offset) == 8 && bytes[offset + 7] == 0)
        #expect(Self.u16(bytes, offset + 8) == 9 && bytes[(offset + 16)..<(offset + 20)] == [0, 0, 0, 0])
        let messages = NetlinkMessage.split(bytes)
        #expect(messages.map(\.sequence) == [1, 2])
        #expect(Array(messages[0].attributes(after: 0)).count == 8)
        #expect(messages[1].bytes.count == 24)
    }

    @Test func cCodeAppendsToAMessageInPlace() {
        // As libnftnl does: writes an attribute after the message and updates nlmsg_len.
        let request = NetlinkRequest(capacity: 16)
        request.begin(type: 10 << 8, flags: .request, sequence: 3)
        request.put(header: Self.nfgenmsg)
        request.withMessage(capacity: 4096) { header in
            let length = Int(header.load(as: UInt32.self))
            header.storeBytes(of: UInt16(8), toByteOffset: length, as: UInt16.self)
            header.storeBytes(of: UInt16(5), toByteOffset: length + 2, as: UInt16.self)
            header.storeBytes(of: UInt32(42), toByteOffset: length + 4, as: UInt32.self)
            header.storeBytes(of: UInt32(length + 8), as: UInt32.self)
        }
        request.put(6, UInt32(43))
        let m = NetlinkMessage.split(request.bytes)[0]
        let attributes = m.attributes(after: 4)
        #expect(Array(attributes).compactMap { attributes.integer($0, as: UInt32.self) } == [42, 43])
        #expect(m.bytes.count == 36)
    }

    @Test func aRequestGrowsPastItsCapacityIntact() {
        let request = NetlinkRequest(capacity: 16)
        request.begin(type: 20, flags: .request, sequence: 1)
        for i in 0..<10_000 { request.put(1, UInt32(i)) }
        let m = NetlinkMessage.split(request.bytes)[0]
        let attributes = m.attributes(after: 0)
        let values = Array(attributes).compactMap { attributes.integer($0, as: UInt32.self) }
        #expect(values == (0..<10_000).map(UInt32.init))
        request.removeAll()
        #expect(request.count == 0 && request.bytes.isEmpty)
    }

    @Test func anErrorReplyIsDecoded() {
        // NLMSG_ERROR: struct nlmsgerr (error, then the header of the refused request).
        func reply(_ error: Int32, sequence: UInt32) -> [UInt8] {
            let request = NetlinkRequest()
            request.begin(type: Netlink.error, flags: [], sequence: sequence)
            request.put(header: error)
            request.put(header: (UInt32(16), UInt16(10 << 8 | 6), UInt16(5), sequence, UInt32(0)))
            return request.bytes
        }
        let messages = NetlinkMessage.split(reply(-2, sequence: 9) + reply(0, sequence: 10))
        #expect(messages.map(\.type) == [Netlink.error, Netlink.error])
        #expect(messages.map(\.errorCode) == [-2, 0])  // ENOENT, then an ack
        #expect(messages.map(\.sequence) == [9, 10])
        // Too short to carry the error: a malformed reply, not an ack.
        let short = NetlinkMessage(bytes: [18, 0, 0, 0, 2, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        #expect(short.errorCode == -Errno.EPROTO)
    }

    @Test func truncatedOrInvalidInputIsRejectedNotTrapped() {
        let request = NetlinkRequest()
        request.begin(type: 20, flags: .request, sequence: 1)
        request.put(1, UInt32(1))
        request.put(2, string: "weir")
        let good = request.bytes
        // A message longer than the buffer, or shorter than its header, ends the split.
        #expect(NetlinkMessage.split(Array(good.dropLast())).isEmpty)
        #expect(NetlinkMessage.split([4, 0, 0, 0] + [UInt8](repeating: 0, count: 12)).isEmpty)
        #expect(NetlinkMessage.split(good + [0xff, 0xff, 0xff, 0x7f] + [UInt8](repeating: 0, count: 12)).count == 1)
        #expect(NetlinkMessage.split([UInt8](repeating: 0, count: 15)).isEmpty)
        // An attribute running past the message, or shorter than its header, ends the walk.
        var long = good
        long[16] = 200
        #expect(Array(NetlinkMessage(bytes: long).attributes(after: 0)).isEmpty)
        var tiny = good
        tiny[24] = 3
        #expect(Array(NetlinkMessage(bytes: tiny).attributes(after: 0)).map(\.type) == [1])
        // Headers and fields of a message too short for them.
        let stub = NetlinkMessage(bytes: [1, 2, 3])
        #expect(stub.type == 0 && stub.sequence == 0 && stub.fixedHeader(4) == nil)
        #expect(Array(stub.attributes(after: 12)).isEmpty)
    }

    @Test func arbitraryBytesNeverTrap() {
        // Every message and attribute, nests included, of pseudo-random buffers: reads stay inside the bytes.
        var state: UInt64 = 0x9e37_79b9_7f4a_7c15
        func next() -> UInt8 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        func walk(_ attributes: NetlinkAttributes, depth: Int) -> Int {
            var seen = 0
            for a in attributes {
                seen += 1
                _ = attributes.integer(a, as: UInt32.self)
                if depth < 4 { seen += walk(attributes.nested(a), depth: depth + 1) }
            }
            return seen
        }
        for _ in 0..<2000 {
            var bytes = (0..<Int(next()) + 16).map { _ in next() }
            bytes[0] = UInt8(min(bytes.count, 255))  // a plausible length: the walk goes into the attributes
            bytes[1] = 0; bytes[2] = 0; bytes[3] = 0
            for m in NetlinkMessage.split(bytes) {
                _ = (m.type, m.flags, m.sequence, m.errorCode, m.fixedHeader(4))
                _ = walk(m.attributes(after: Int(next() % 16)), depth: 0)
            }
        }
    }
}
