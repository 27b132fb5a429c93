/// A JSON value with members in the order given, rendered without Foundation (the agent links none): `GET /config`.
public indirect enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    /// Any other number (a fraction, an exponent, an integer beyond Int64), kept as the text it was read from so
    /// that a document weir only passes along (a CNI `prevResult`, a network config) keeps it unchanged.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool { a.rendered == b.rendered }

    /// Two-space indented text ending in a newline.
    public var rendered: String { render(indent: "") + "\n" }

    private func render(indent: String) -> String {
        let inner = indent + "  "
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let n): return String(n)
        case .number(let text): return text
        case .string(let s): return Self.quote(s)
        case .array(let items):
            if items.isEmpty { return "[]" }
            return "[\n" + items.map { inner + $0.render(indent: inner) }.joined(separator: ",\n") + "\n\(indent)]"
        case .object(let members):
            if members.isEmpty { return "{}" }
            return "{\n" + members.map { inner + Self.quote($0.0) + ": " + $0.1.render(indent: inner) }
                .joined(separator: ",\n") + "\n\(indent)}"
        }
    }

    /// `s` as a JSON string literal.
    public static func quote(_ s: String) -> String {
        EventLine.escapedInQuotes(s) { $0 < 0x20 ? "\\u00" + EventLine.hex2(UInt8($0)) : nil }
    }
}
