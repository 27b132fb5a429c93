/// An IPv4 or IPv6 address family.
public enum IPFamily: String, Hashable, Sendable, Comparable {
    case ipv4, ipv6

    /// Address length in bytes.
    public var byteCount: Int { self == .ipv4 ? 4 : 16 }

    /// nft's keyword for the network header of this family (`ip`, `ip6`).
    public var nftKeyword: String { self == .ipv4 ? "ip" : "ip6" }

    public static func < (lhs: IPFamily, rhs: IPFamily) -> Bool { lhs == .ipv4 && rhs == .ipv6 }
}

/// An IP address. Pure Swift: parsing and formatting do not call into libc.
///
/// Held as one 128-bit big-endian number in two words (IPv4 in the low 32 bits), so sorting, hashing, masking and
/// merging 100,000 prefixes allocate nothing; `bytes` gives the network-order bytes.
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let family: IPFamily
    let high: UInt64
    let low: UInt64

    init(family: IPFamily, high: UInt64, low: UInt64) {
        self.family = family
        self.high = high
        self.low = low
    }

    public init(family: IPFamily, bytes: [UInt8]) {
        precondition(bytes.count == family.byteCount, "address length does not match family")
        var words: (UInt64, UInt64) = (0, 0)
        for b in bytes { words = (words.0 << 8 | words.1 >> 56, words.1 << 8 | UInt64(b)) }
        self.init(family: family, high: words.0, low: words.1)
    }

    /// Network-order bytes: 4 for IPv4, 16 for IPv6.
    public var bytes: [UInt8] {
        let count = family.byteCount
        return (0..<count).map { i in
            let shift = (count - 1 - i) * 8
            return UInt8(truncatingIfNeeded: shift >= 64 ? high >> (shift - 64) : low >> shift)
        }
    }

    /// The host bits below a prefix of `length`, as the two words of a mask.
    static func hostMask(_ family: IPFamily, _ length: Int) -> (high: UInt64, low: UInt64) {
        let hostBits = family.byteCount * 8 - length
        if hostBits >= 64 { return (hostBits == 128 ? ~0 : (1 << (hostBits - 64)) - 1, ~0) }
        return (0, hostBits == 0 ? 0 : (1 << hostBits) - 1)
    }

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text (with `::` and an embedded IPv4 tail). Returns nil if malformed.
    public init?<S: StringProtocol>(_ text: S) {
        guard let address = ValueParser.withBytes(Substring(text), { IPAddress(bytes: $0) }) else { return nil }
        self = address
    }

    /// The same, reading UTF-8 bytes: any byte outside ASCII digits, hex, `.` and `:` refuses the text.
    init?(bytes text: UTF8Bytes) {
        if text.contains(UInt8(ascii: ":")) {
            guard let b = IPAddress.parseIPv6(text) else { return nil }
            self.init(family: .ipv6, bytes: b)
        } else {
            guard let v = IPAddress.parseIPv4(text) else { return nil }
            self.init(family: .ipv4, high: 0, low: UInt64(v))
        }
    }

    /// Four decimal parts of 0 to 255, as one number. Leading zeros are ambiguous (octal in some parsers): refused.
    static func parseIPv4(_ text: UTF8Bytes) -> UInt32? {
        var value: UInt32 = 0
        var parts = 0, part: UInt32 = 0, digits = 0, leadingZero = false
        for b in text {
            if b == UInt8(ascii: ".") {
                guard digits > 0, parts < 3 else { return nil }
                value = value << 8 | part
                parts += 1
                part = 0; digits = 0; leadingZero = false
                continue
            }
            guard b &- 0x30 < 10, digits < 3, !leadingZero else { return nil }
            leadingZero = digits == 0 && b == 0x30
            part = part * 10 + UInt32(b &- 0x30)
            digits += 1
            guard part <= 255 else { return nil }
        }
        guard digits > 0, parts == 3 else { return nil }
        return value << 8 | part
    }

    static func parseIPv6(_ text: UTF8Bytes) -> [UInt8]? {
        let colon = UInt8(ascii: ":")
        var head = text, tail: UTF8Bytes?
        var i = text.startIndex
        while i < text.endIndex {
            let next = text.index(after: i)
            if text[i] == colon, next < text.endIndex, text[next] == colon {
                head = text[..<i]
                let rest = text[text.index(after: next)...]
                if rest.first == colon || containsDoubleColon(rest) { return nil }
                tail = rest
                break
            }
            i = next
        }
        guard let first = groups(head) else { return nil }
        guard let tail else { return first.count == 16 ? first : nil }
        guard let last = groups(tail) else { return nil }
        let fill = 16 - first.count - last.count
        guard fill >= 2 else { return nil }
        return first + [UInt8](repeating: 0, count: fill) + last
    }

    private static func containsDoubleColon(_ text: UTF8Bytes) -> Bool {
        var previous: UInt8 = 0
        for b in text {
            if b == UInt8(ascii: ":") && previous == b { return true }
            previous = b
        }
        return false
    }

    /// Colon-separated groups of 1 to 4 hex digits; the last may be dotted IPv4. Empty text is no group.
    private static func groups(_ text: UTF8Bytes) -> [UInt8]? {
        var out: [UInt8] = []
        guard !text.isEmpty else { return out }
        var start = text.startIndex
        while true {
            let end = text[start...].firstIndex(of: UInt8(ascii: ":")) ?? text.endIndex
            let part = text[start..<end]
            if end == text.endIndex && part.contains(UInt8(ascii: ".")) {
                guard let v4 = parseIPv4(part) else { return nil }
                return out + [UInt8(v4 >> 24), UInt8((v4 >> 16) & 0xff), UInt8((v4 >> 8) & 0xff), UInt8(v4 & 0xff)]
            }
            guard let word = hexWord(part) else { return nil }
            out += [UInt8(word >> 8), UInt8(word & 0xff)]
            guard end < text.endIndex else { return out }
            start = text.index(after: end)
        }
    }

    /// 1 to 4 hex digits.
    private static func hexWord(_ text: UTF8Bytes) -> UInt16? {
        guard !text.isEmpty, text.count <= 4 else { return nil }
        var word: UInt16 = 0
        for b in text {
            let digit: UInt8
            switch b {
            case 0x30...0x39: digit = b - 0x30
            case 0x61...0x66: digit = b - 0x61 + 10
            case 0x41...0x46: digit = b - 0x41 + 10
            default: return nil
            }
            word = word << 4 | UInt16(digit)
        }
        return word
    }

    /// Canonical text: dotted quad, or RFC 5952 IPv6 (lowercase, longest zero run compressed, and an IPv4-mapped
    /// address with its IPv4 part dotted, `::ffff:198.18.0.1`, as RFC 5952 section 5 and `inet_ntop` write it).
    public var description: String {
        if family == .ipv4 { return IPAddress.dotted(UInt32(truncatingIfNeeded: low)) }
        if high == 0 && low >> 32 == 0xffff { return "::ffff:" + IPAddress.dotted(UInt32(truncatingIfNeeded: low)) }
        var words: [UInt16] = []
        for i in 0..<8 { words.append(UInt16(truncatingIfNeeded: (i < 4 ? high : low) >> ((3 - i % 4) * 16))) }
        var bestStart = -1, bestLen = 0, i = 0
        while i < 8 {
            if words[i] == 0 {
                var j = i
                while j < 8 && words[j] == 0 { j += 1 }
                if j - i > bestLen && j - i >= 2 { bestStart = i; bestLen = j - i }
                i = j
            } else {
                i += 1
            }
        }
        func hex(_ ws: ArraySlice<UInt16>) -> String { ws.map { String($0, radix: 16) }.joined(separator: ":") }
        if bestStart < 0 { return hex(words[0..<8]) }
        return hex(words[0..<bestStart]) + "::" + hex(words[(bestStart + bestLen)..<8])
    }

    private static func dotted(_ v: UInt32) -> String {
        "\(v >> 24).\((v >> 16) & 0xff).\((v >> 8) & 0xff).\(v & 0xff)"
    }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        if lhs.family != rhs.family { return lhs.family < rhs.family }
        return lhs.high != rhs.high ? lhs.high < rhs.high : lhs.low < rhs.low
    }

    /// The next address, or nil past the last address of the family.
    public var successor: IPAddress? {
        let all = IPAddress.hostMask(family, 0)
        if high == all.high && low == all.low { return nil }
        return IPAddress(family: family, high: low == ~0 ? high + 1 : high, low: low &+ 1)
    }

    /// True for 127.0.0.0/8 and ::1.
    public var isLoopback: Bool {
        family == .ipv4 ? low >> 24 == 127 : high == 0 && low == 1
    }
}

/// An address prefix such as `10.0.0.0/8` or `2001:db8::/32`.
public struct CIDR: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    public var family: IPFamily { address.family }

    public init(address: IPAddress, prefixLength: Int) {
        self.address = address
        self.prefixLength = prefixLength
    }

    /// Parses `ADDR/LEN` or a bare address (a host prefix). With `allowHostBits` the address is masked to its prefix;
    /// otherwise host bits are an error.
    public static func parse<S: StringProtocol>(_ text: S, allowHostBits: Bool = false) -> Result<CIDR, ConfigError> {
        let parsed = ValueParser.withBytes(Substring(text)) { bytes -> (IPAddress, length: Int?)? in
            let slash = bytes.firstIndex(of: UInt8(ascii: "/"))
            guard let address = IPAddress(bytes: bytes[..<(slash ?? bytes.endIndex)]) else { return nil }
            guard let slash else { return (address, address.family.byteCount * 8) }
            let length = ValueParser.decimal(bytes[(slash + 1)...], max: UInt64(address.family.byteCount * 8))
            return (address, length.map { Int($0) })
        }
        guard let (address, length) = parsed else {
            return .failure(ConfigError("\(quotedValue(text)) is not an IP address or CIDR: expected e.g. 10.0.0.0/8 or "
                + "2001:db8::/32"))
        }
        let maxLength = address.family.byteCount * 8
        guard let length else {
            return .failure(ConfigError("\(quotedValue(text)) has a bad prefix length: expected 0 to \(maxLength)"))
        }
        let masked = CIDR.mask(address, length)
        if masked != address && !allowHostBits {
            return .failure(ConfigError("\(quotedValue(text)) has host bits set: expected \(masked)/\(length) (or a "
                + "/\(maxLength) for the single address)"))
        }
        return .success(CIDR(address: masked, prefixLength: length))
    }

    static func mask(_ a: IPAddress, _ length: Int) -> IPAddress {
        let host = IPAddress.hostMask(a.family, length)
        return IPAddress(family: a.family, high: a.high & ~host.high, low: a.low & ~host.low)
    }

    /// The last address in the prefix.
    public var last: IPAddress {
        let host = IPAddress.hostMask(family, prefixLength)
        return IPAddress(family: family, high: address.high | host.high, low: address.low | host.low)
    }

    public var isHost: Bool { prefixLength == family.byteCount * 8 }

    /// True if the prefix's address is a loopback address (istio's test for "loopback explicitly included").
    public var isLoopback: Bool { address.isLoopback }

    /// `10.0.0.0/8`; a host prefix prints as the bare address.
    public var description: String { isHost ? address.description : "\(address)/\(prefixLength)" }

    public static func < (lhs: CIDR, rhs: CIDR) -> Bool {
        lhs.address != rhs.address ? lhs.address < rhs.address : lhs.prefixLength < rhs.prefixLength
    }
}

/// An inclusive range of addresses, the unit of nft interval sets.
public struct IPRange: Hashable, Sendable, CustomStringConvertible {
    public let first: IPAddress
    public let last: IPAddress

    public init(first: IPAddress, last: IPAddress) {
        self.first = first
        self.last = last
    }

    public init(_ cidr: CIDR) {
        self.init(first: cidr.address, last: cidr.last)
    }

    /// The prefix this range is exactly equal to, if any: `first` and `last` differ only in their low bits, which
    /// are all zeros in `first` and all ones in `last`.
    public var asCIDR: CIDR? {
        let differ = (high: first.high ^ last.high, low: first.low ^ last.low)
        // A run of low ones: adding one clears every set bit.
        let plusOne = (high: differ.low == ~0 ? differ.high &+ 1 : differ.high, low: differ.low &+ 1)
        guard differ.high & plusOne.high == 0, differ.low & plusOne.low == 0,
              first.high & differ.high == 0, first.low & differ.low == 0 else { return nil }
        let hostBits = differ.high.nonzeroBitCount + differ.low.nonzeroBitCount
        return CIDR(address: first, prefixLength: first.family.byteCount * 8 - hostBits)
    }

    /// `10.0.0.0/8` when the range is a prefix, else `a-b` (both accepted by nft in interval sets).
    public var description: String { asCIDR?.description ?? "\(first)-\(last)" }

    /// Sorts, then merges overlapping and adjacent prefixes into the fewest ranges. Deterministic for any input order.
    public static func merge(_ cidrs: [CIDR]) -> [IPRange] {
        let sorted = cidrs.map(IPRange.init).sorted { $0.first != $1.first ? $0.first < $1.first : $0.last < $1.last }
        var out: [IPRange] = []
        for r in sorted {
            if let prev = out.last, prev.last >= r.first || prev.last.successor == r.first {
                out[out.count - 1] = IPRange(first: prev.first, last: max(prev.last, r.last))
            } else {
                out.append(r)
            }
        }
        return out
    }
}
