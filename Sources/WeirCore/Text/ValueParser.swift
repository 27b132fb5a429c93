/// One parser for each kind of value weir takes (port, id, mark, mode, duration, size, boolean, address, CIDR), used
/// by `weir rules`, `weir proxy` and `weir run` alike so a value means and is refused the same way everywhere.
///
/// Each reads UTF-8 bytes, never Characters (a 100,000-entry list must not pay for grapheme breaking), and builds no
/// text: a refused value is nil, and `ValueKind.parse` words the one-line error only when there is one.
public struct ValueKind<Value>: Sendable {
    /// What the refused value is not and what was expected: `is not a port: expected 1 to 65535`.
    public let problem: String
    let read: @Sendable (UTF8Bytes) -> Value?

    public init(problem: String, read: @escaping @Sendable (UTF8Bytes) -> Value?) {
        self.problem = problem
        self.read = read
    }

    /// The value of `text`, or nil.
    public func value<S: StringProtocol>(_ text: S) -> Value? { ValueParser.withBytes(Substring(text), read) }

    /// The value of `text`; a refused value throws `SOURCE 'TEXT' PROBLEM`.
    public func parse<S: StringProtocol>(_ text: S, from source: ValueSource) throws -> Value {
        guard let v = value(text) else { throw ConfigError(source, text, problem) }
        return v
    }
}

/// UTF-8 bytes of a value, in place in its string: the parsers read these (an unsafe buffer's bytes are read
/// without a call per byte, even in a size-optimised build).
public typealias UTF8Bytes = Slice<UnsafeBufferPointer<UInt8>>

/// The kinds of value, each with its one message.
public enum ValueKinds {
    public static let port = ValueKind<UInt16>(problem: "is not a port: expected 1 to 65535") {
        ValueParser.decimal($0, max: 65535).flatMap { $0 == 0 ? nil : UInt16($0) }
    }

    /// A UID or GID. 4294967295 is (uid_t)-1, which chown and setresuid read as "leave unchanged", so the proxy's
    /// upstream sockets would keep weir's own owner and be captured again.
    public static func id(_ what: String) -> ValueKind<UInt32> {
        number(what, 0...(UInt32.max - 1))
    }

    /// Mark 0 is every unmarked packet: the TPROXY policy rule would catch all traffic.
    public static let mark = number("mark", 1...UInt32.max)

    /// A decimal number within `range`, named `what` in the message.
    public static func number(_ what: String, _ range: ClosedRange<UInt32>) -> ValueKind<UInt32> {
        ValueKind(problem: "is not a \(what): expected \(range.lowerBound) to \(range.upperBound)") {
            ValueParser.decimal($0, max: UInt64(range.upperBound)).flatMap {
                $0 < range.lowerBound ? nil : UInt32($0)
            }
        }
    }

    public static let mode = ValueKind<InterceptionMode>(problem: "is not a mode: expected REDIRECT or TPROXY") {
        ValueParser.asciiCaseInsensitive($0, equals: "REDIRECT") ? .redirect
            : ValueParser.asciiCaseInsensitive($0, equals: "TPROXY") ? .tproxy : nil
    }

    /// `0`, or a number followed by ms, s, m or h (`500ms`, `5s`, `10m`, `1h`), in milliseconds.
    public static let duration = ValueKind<Int64>(
        problem: "is not a duration: expected 0 or a number with ms, s, m or h, like 5s", read: { ValueParser.duration($0) })

    /// A byte count, optionally with KiB or MiB (`65536`, `64KiB`, `1MiB`).
    public static let size = ValueKind<Int>(
        problem: "is not a size: expected bytes, or a number with KiB or MiB", read: { ValueParser.size($0) })

    /// Go's `strconv.ParseBool`, as istio's flags and variables take it.
    public static let goBool = ValueKind<Bool>(
        problem: "is not a boolean: expected true or false (or 1, 0, t, f)", read: { ValueParser.goBool($0) })

    /// istio's durations (`--probe-timeout`): a Go `time.ParseDuration` string above zero, in milliseconds.
    public static let positiveGoDuration = ValueKind<Int>(
        problem: "is not a duration: expected a positive Go duration like 5s or 500ms"
    ) { ValueParser.goDuration($0).flatMap { $0 > 0 ? $0 : nil } }

    public static let address = ValueKind<IPAddress>(
        problem: "is not an IP address: expected e.g. 10.96.0.10 or 2001:db8::53", read: { IPAddress(bytes: $0) })
}

/// The byte-level readers behind `ValueKinds`.
public enum ValueParser {
    /// `body` over the UTF-8 bytes of `text`, numbered from 0: in place for a native string, else from a copy.
    public static func withBytes<R>(_ text: Substring, _ body: (UTF8Bytes) throws -> R) rethrows -> R {
        if let r = try text.utf8.withContiguousStorageIfAvailable({ try body($0[...]) }) { return r }
        return try Array(text.utf8).withUnsafeBufferPointer { try body($0[...]) }
    }

    /// `decimal` of a string.
    public static func decimal<S: StringProtocol>(_ text: S, max: UInt64) -> UInt64? {
        withBytes(Substring(text)) { decimal($0, max: max) }
    }

    /// Decimal digits only (no sign, no spaces), at most `max` (any `max`: the running value is checked for
    /// overflow before it is compared, so 25 nines are refused, not a crash).
    public static func decimal(_ bytes: UTF8Bytes, max: UInt64) -> UInt64? {
        guard !bytes.isEmpty else { return nil }
        var n: UInt64 = 0
        for b in bytes {
            guard b &- 0x30 < 10 else { return nil }
            let (tens, over) = n.multipliedReportingOverflow(by: 10)
            let (sum, carry) = tens.addingReportingOverflow(UInt64(b &- 0x30))
            guard !over, !carry, sum <= max else { return nil }
            n = sum
        }
        return n
    }

    /// True when `bytes` spell `upper` (uppercase ASCII) in any case.
    static func asciiCaseInsensitive(_ bytes: UTF8Bytes, equals upper: StaticString) -> Bool {
        guard bytes.count == upper.utf8CodeUnitCount else { return false }
        var i = 0
        for b in bytes {
            let folded = b &- 0x61 < 26 ? b - 0x20 : b
            guard folded == upper.utf8Start[i] else { return false }
            i += 1
        }
        return true
    }

    /// The digits before the first non-digit, and the rest.
    static func splitNumber(_ bytes: UTF8Bytes) -> (digits: UTF8Bytes, unit: UTF8Bytes) {
        let cut = bytes.firstIndex { $0 &- 0x30 >= 10 } ?? bytes.endIndex
        return (bytes[..<cut], bytes[cut...])
    }

    static func duration(_ bytes: UTF8Bytes) -> Int64? {
        let (digits, unit) = splitNumber(bytes)
        let scale: Int64
        switch Array(unit) {
        case [] where digits.elementsEqual("0".utf8): return 0
        case Array("ms".utf8): scale = 1
        case Array("s".utf8): scale = 1_000
        case Array("m".utf8): scale = 60_000
        case Array("h".utf8): scale = 3_600_000
        default: return nil
        }
        return decimal(digits, max: UInt64(Int64.max / scale / 1000)).map { Int64($0) * scale }
    }

    static func size(_ bytes: UTF8Bytes) -> Int? {
        let (digits, unit) = splitNumber(bytes)
        let scale: Int
        switch Array(unit) {
        case []: scale = 1
        case Array("KiB".utf8): scale = 1024
        case Array("MiB".utf8): scale = 1 << 20
        default: return nil
        }
        return decimal(digits, max: UInt64(Int.max / scale)).map { Int($0) * scale }
    }

    /// Go's duration units, in milliseconds.
    static let goUnits: [(unit: [UInt8], ms: Double)] = [
        (Array("ns".utf8), 1e-6), (Array("us".utf8), 1e-3), (Array("µs".utf8), 1e-3), (Array("ms".utf8), 1),
        (Array("s".utf8), 1000), (Array("m".utf8), 60_000), (Array("h".utf8), 3_600_000),
    ]

    /// A Go `time.ParseDuration` string in whole milliseconds: `5s`, `500ms`, `1m30s`, `1.5s`, `0`. No sign.
    static func goDuration(_ bytes: UTF8Bytes) -> Int? {
        if bytes.elementsEqual("0".utf8) { return 0 }
        func isNumber(_ b: UInt8) -> Bool { b &- 0x30 < 10 || b == UInt8(ascii: ".") }
        var rest = bytes[...]
        var total = 0.0
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let number = rest.prefix(while: isNumber)
            guard !number.isEmpty, let value = Double(String(decoding: number, as: UTF8.self)) else { return nil }
            rest = rest[number.endIndex...]
            let unit = rest.prefix { !isNumber($0) }
            guard let scale = goUnits.first(where: { $0.unit.elementsEqual(unit) })?.ms else { return nil }
            rest = rest[unit.endIndex...]
            total += value * scale
            guard total < 1e12 else { return nil }
        }
        return Int(total.rounded())
    }

    /// 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False.
    static func goBool(_ bytes: UTF8Bytes) -> Bool? {
        switch String(decoding: bytes, as: UTF8.self) {
        case "1", "t", "T", "TRUE", "true", "True": return true
        case "0", "f", "F", "FALSE", "false", "False": return false
        default: return nil
        }
    }

    /// True for the bytes `trimmed` takes off: ASCII space, tab, newline, vertical tab, form feed and carriage return.
    @inline(__always)
    static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (b &- 0x09) < 5 }

    /// `bytes` without leading and trailing ASCII whitespace.
    public static func trimmed(_ bytes: UTF8Bytes) -> UTF8Bytes {
        guard let first = bytes.firstIndex(where: { !isSpace($0) }) else { return bytes[bytes.endIndex...] }
        let last = bytes.lastIndex(where: { !isSpace($0) })!
        return bytes[first...last]
    }
}

/// Go's `strconv.ParseBool`: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False.
public func parseGoBool(_ text: String) -> Bool? { ValueKinds.goBool.value(text) }

/// A Go `time.ParseDuration` string in whole milliseconds: `5s`, `500ms`, `1m30s`, `1.5s`, `0`. Nil if malformed.
public func parseGoDuration(_ text: String) -> Int? { ValueParser.withBytes(Substring(text), ValueParser.goDuration) }

extension Substring {
    /// The part of this text at `bytes`, a slice of the bytes `ValueParser.withBytes` gave for it.
    func slice(_ bytes: UTF8Bytes) -> Substring {
        let u = utf8
        return Substring(u[u.index(u.startIndex, offsetBy: bytes.startIndex)..<u.index(u.startIndex,
                                                                                       offsetBy: bytes.endIndex)])
    }

    /// The text without leading and trailing ASCII whitespace, as `ValueParser.trimmed` reads it.
    var trimmingSpaces: Substring { ValueParser.withBytes(self) { slice(ValueParser.trimmed($0)) } }
}

extension String {
    var trimmingSpaces: String { String(Substring(self).trimmingSpaces) }
}
