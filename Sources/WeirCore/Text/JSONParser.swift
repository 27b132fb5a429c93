/// Reads JSON text (RFC 8259) into a `JSONValue`, without Foundation: objects keep their members in file order,
/// integers that fit an Int64 are `.int`, every other number is kept as its text (`.number`), and nesting is bounded
/// so that no input can exhaust the stack. Used for the files weir writes itself and reads back (`tune-state.json`)
/// and for the JSON of others it edits or passes along (CNI network configs and results).
public struct JSONParseError: Error, Equatable, CustomStringConvertible {
    /// Byte offset of the problem.
    public let offset: Int
    public let reason: String
    public var description: String { "\(reason) at byte \(offset)" }
}

extension JSONValue {
    /// Deepest nesting of arrays and objects accepted.
    public static let maxDepth = 64

    public static func parse(_ bytes: [UInt8]) throws(JSONParseError) -> JSONValue {
        var p = JSONReader(bytes: bytes)
        p.skipSpace()
        let value = try p.value(depth: 0)
        p.skipSpace()
        if p.at < bytes.count { throw p.error("text after the value") }
        return value
    }

    /// The member `name` of an object, nil for anything else or when it is missing (the first, if repeated).
    public subscript(member name: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.0 == name }?.1
    }

    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    public var intValue: Int64? { if case .int(let n) = self { n } else { nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
}

private struct JSONReader {
    let bytes: [UInt8]
    var at = 0

    func error(_ reason: String) -> JSONParseError { JSONParseError(offset: at, reason: reason) }

    mutating func skipSpace() {
        while at < bytes.count, bytes[at] == 0x20 || bytes[at] == 0x09 || bytes[at] == 0x0A || bytes[at] == 0x0D {
            at += 1
        }
    }

    mutating func expect(_ word: String, _ value: JSONValue) throws(JSONParseError) -> JSONValue {
        for b in word.utf8 {
            guard at < bytes.count, bytes[at] == b else { throw error("expected '\(word)'") }
            at += 1
        }
        return value
    }

    mutating func value(depth: Int) throws(JSONParseError) -> JSONValue {
        guard at < bytes.count else { throw error("unexpected end of text") }
        switch bytes[at] {
        case UInt8(ascii: "{"):
            guard depth < JSONValue.maxDepth else { throw error("nested deeper than \(JSONValue.maxDepth)") }
            at += 1
            var members: [(String, JSONValue)] = []
            skipSpace()
            if at < bytes.count, bytes[at] == UInt8(ascii: "}") { at += 1; return .object(members) }
            while true {
                skipSpace()
                guard at < bytes.count, bytes[at] == UInt8(ascii: "\"") else { throw error("expected a member name") }
                let name = try string()
                skipSpace()
                guard at < bytes.count, bytes[at] == UInt8(ascii: ":") else { throw error("expected ':'") }
                at += 1
                skipSpace()
                members.append((name, try value(depth: depth + 1)))
                skipSpace()
                guard at < bytes.count else { throw error("unexpected end of text") }
                if bytes[at] == UInt8(ascii: ",") { at += 1; continue }
                if bytes[at] == UInt8(ascii: "}") { at += 1; return .object(members) }
                throw error("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            guard depth < JSONValue.maxDepth else { throw error("nested deeper than \(JSONValue.maxDepth)") }
            at += 1
            var items: [JSONValue] = []
            skipSpace()
            if at < bytes.count, bytes[at] == UInt8(ascii: "]") { at += 1; return .array(items) }
            while true {
                skipSpace()
                items.append(try value(depth: depth + 1))
                skipSpace()
                guard at < bytes.count else { throw error("unexpected end of text") }
                if bytes[at] == UInt8(ascii: ",") { at += 1; continue }
                if bytes[at] == UInt8(ascii: "]") { at += 1; return .array(items) }
                throw error("expected ',' or ']'")
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"): return try expect("true", .bool(true))
        case UInt8(ascii: "f"): return try expect("false", .bool(false))
        case UInt8(ascii: "n"): return try expect("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return try number()
        default:
            throw error("expected a value")
        }
    }

    /// A number (RFC 8259's grammar: `-`, digits without a leading zero, then an optional fraction and exponent):
    /// `.int` when it is an integer that fits an Int64, else `.number` with its text.
    mutating func number() throws(JSONParseError) -> JSONValue {
        let start = at
        if bytes[at] == UInt8(ascii: "-") { at += 1 }
        guard isDigit(at) else { throw error("expected a digit") }
        if bytes[at] == UInt8(ascii: "0"), isDigit(at + 1) { throw error("leading zero") }
        while isDigit(at) { at += 1 }
        var integral = true
        if at < bytes.count, bytes[at] == UInt8(ascii: ".") {
            integral = false
            at += 1
            guard isDigit(at) else { throw error("expected a digit after '.'") }
            while isDigit(at) { at += 1 }
        }
        if at < bytes.count, bytes[at] | 0x20 == UInt8(ascii: "e") {
            integral = false
            at += 1
            if at < bytes.count, bytes[at] == UInt8(ascii: "+") || bytes[at] == UInt8(ascii: "-") { at += 1 }
            guard isDigit(at) else { throw error("expected a digit in the exponent") }
            while isDigit(at) { at += 1 }
        }
        // The bytes are ASCII digits, signs, '.' and 'e'.
        let text = String(decoding: bytes[start..<at], as: UTF8.self)
        if integral, text != "-0", let n = Int64(text) { return .int(n) }
        return .number(text)
    }

    func isDigit(_ i: Int) -> Bool { i < bytes.count && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i]) }

    mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard at + 4 <= bytes.count else { throw error("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[at]
            let d: UInt8
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = b - UInt8(ascii: "A") + 10
            default: throw error("bad \\u escape")
            }
            v = v << 4 | UInt32(d)
            at += 1
        }
        return v
    }

    /// A string literal starting at the opening quote. Its bytes must be UTF-8.
    mutating func string() throws(JSONParseError) -> String {
        at += 1
        var out: [UInt8] = []
        while true {
            guard at < bytes.count else { throw error("unterminated string") }
            let b = bytes[at]
            if b == UInt8(ascii: "\"") { at += 1; break }
            if b < 0x20 { throw error("control character in a string") }
            if b != UInt8(ascii: "\\") { out.append(b); at += 1; continue }
            at += 1
            guard at < bytes.count else { throw error("unterminated string") }
            let e = bytes[at]
            at += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard at + 2 <= bytes.count, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u")
                    else { throw error("lone surrogate in \\u escape") }
                    at += 2
                    let low = try hex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw error("lone surrogate in \\u escape") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw error("lone surrogate in \\u escape")
                }
                out.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
            default:
                at -= 1
                throw error("bad escape")
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw error("string is not UTF-8") }
        return s
    }
}
