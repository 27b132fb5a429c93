/// An IPv4 or IPv6 address family.
public enum IPFamily: String, Hashable, Sendable, Comparable {
    case ipv4, ipv6

    /// Address length in bytes.
    public var byteCount: Int { self == .ipv4 ? 4 : 16 }

    /// nft's keyword for the network header of this family (`ip`, `ip6`).
    public var nftKeyword: String { self == .ipv4 ? "ip" : "ip6" }

    public static func < (lhs: IPFamily, rhs: IPFamily) -> Bool { lhs == .ipv4 && rhs == .ipv6 }
}

/// An IP address as network-order bytes. Pure Swift: parsing and formatting do not call into libc.
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let family: IPFamily
    public let bytes: [UInt8]

    public init(family: IPFamily, bytes: [UInt8]) {
        precondition(bytes.count == family.byteCount, "address length does not match family")
        self.family = family
        self.bytes = bytes
    }

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text (with `::` and an embedded IPv4 tail). Returns nil if malformed.
    public init?(_ text: String) {
        if text.contains(":") {
            guard let b = IPAddress.parseIPv6(Substring(text)) else { return nil }
            self.init(family: .ipv6, bytes: b)
        } else {
            guard let b = IPAddress.parseIPv4(Substring(text)) else { return nil }
            self.init(family: .ipv4, bytes: b)
        }
    }

    static func parseIPv4(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let v = Int(p), v <= 255 else { return nil }
            // Leading zeros are ambiguous (octal in some parsers): refuse them.
            if p.count > 1 && p.first == "0" { return nil }
            out.append(UInt8(v))
        }
        return out
    }

    static func parseIPv6(_ text: Substring) -> [UInt8]? {
        var halves: [String] = []
        let chars = Array(text)
        if let i = chars.indices.dropLast().first(where: { chars[$0] == ":" && chars[$0 + 1] == ":" }) {
            halves = [String(chars[..<i]), String(chars[(i + 2)...])]
            if halves[1].hasPrefix(":") || halves[1].contains("::") { return nil }
        } else {
            halves = [String(text)]
        }
        guard halves.count <= 2 else { return nil }
        func groups(_ s: String) -> [UInt8]? {
            if s.isEmpty { return [] }
            var out: [UInt8] = []
            let parts = s.split(separator: ":", omittingEmptySubsequences: false)
            for (i, p) in parts.enumerated() {
                if i == parts.count - 1 && p.contains(".") {
                    guard let v4 = parseIPv4(p) else { return nil }
                    out += v4
                    continue
                }
                guard !p.isEmpty, p.count <= 4, let v = UInt16(p, radix: 16) else { return nil }
                out += [UInt8(v >> 8), UInt8(v & 0xff)]
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        if halves.count == 1 {
            return head.count == 16 ? head : nil
        }
        guard let tail = groups(halves[1]) else { return nil }
        let fill = 16 - head.count - tail.count
        guard fill >= 2 else { return nil }
        return head + [UInt8](repeating: 0, count: fill) + tail
    }

    /// Canonical text: dotted quad, or RFC 5952 IPv6 (lowercase, longest zero run compressed, and an IPv4-mapped
    /// address with its IPv4 part dotted, `::ffff:198.18.0.1`, as RFC 5952 section 5 and `inet_ntop` write it).
    public var description: String {
        if family == .ipv4 { return bytes.map(String.init).joined(separator: ".") }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
            return "::ffff:" + bytes[12...].map(String.init).joined(separator: ".")
        }
        var words: [UInt16] = []
        for i in stride(from: 0, to: 16, by: 2) { words.append(UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1])) }
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

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        if lhs.family != rhs.family { return lhs.family < rhs.family }
        return lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    /// The next address, or nil past the last address of the family.
    public var successor: IPAddress? {
        var b = bytes
        var i = b.count - 1
        while i >= 0 {
            if b[i] == 0xff { b[i] = 0; i -= 1 } else { b[i] += 1; return IPAddress(family: family, bytes: b) }
        }
        return nil
    }

    /// True for 127.0.0.0/8 and ::1.
    public var isLoopback: Bool {
        family == .ipv4 ? bytes[0] == 127 : bytes == [UInt8](repeating: 0, count: 15) + [1]
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
    public static func parse(_ text: String, allowHostBits: Bool = false) -> Result<CIDR, ConfigError> {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress(String(parts[0])) else {
            return .failure(ConfigError("\(quotedValue(text)) is not an IP address or CIDR: expected e.g. 10.0.0.0/8 or 2001:db8::/32"))
        }
        let maxLength = address.family.byteCount * 8
        var length = maxLength
        if parts.count == 2 {
            guard let l = Int(parts[1]), parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), l >= 0, l <= maxLength else {
                return .failure(ConfigError("\(quotedValue(text)) has a bad prefix length: expected 0 to \(maxLength)"))
            }
            length = l
        }
        let masked = CIDR.mask(address, length)
        if masked != address && !allowHostBits {
            return .failure(ConfigError(
                "\(quotedValue(text)) has host bits set: expected \(masked)/\(length) (or a /\(maxLength) for the single address)"))
        }
        return .success(CIDR(address: masked, prefixLength: length))
    }

    static func mask(_ a: IPAddress, _ length: Int) -> IPAddress {
        var b = a.bytes
        for i in 0..<b.count {
            let bitsHere = max(0, min(8, length - i * 8))
            b[i] &= bitsHere == 0 ? 0 : UInt8(truncatingIfNeeded: 0xff << (8 - bitsHere))
        }
        return IPAddress(family: a.family, bytes: b)
    }

    /// The last address in the prefix.
    public var last: IPAddress {
        var b = address.bytes
        for i in 0..<b.count {
            let bitsHere = max(0, min(8, prefixLength - i * 8))
            b[i] |= bitsHere >= 8 ? 0 : UInt8(0xff >> bitsHere)
        }
        return IPAddress(family: family, bytes: b)
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

    /// The prefix this range is exactly equal to, if any.
    public var asCIDR: CIDR? {
        let bits = first.family.byteCount * 8
        for length in 0...bits {
            let c = CIDR(address: CIDR.mask(first, length), prefixLength: length)
            if c.address == first && c.last == last { return c }
        }
        return nil
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
