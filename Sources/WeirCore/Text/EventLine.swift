/// weir's log line: `<source>: event=<name> key=value ...`, one event per line, so journald and grep see one record
/// per line. A value with a space, `"`, `\`, `=` or a control character is quoted, with `"` and `\` escaped and
/// control characters written as `\n`, `\r`, `\t` or `\xNN`: no value can split a record or forge a field.
public enum EventLine {
    public static func format(_ source: String, _ event: String,
                              _ fields: KeyValuePairs<String, CustomStringConvertible>) -> String {
        var line = "\(source): event=\(event)"
        for (key, value) in fields {
            line += " \(key)=" + quote(value.description)
        }
        return line
    }

    /// The value as it appears after `key=`: bare when it is plain, quoted and escaped otherwise.
    public static func quote(_ text: String) -> String {
        let plain = !text.isEmpty && !text.unicodeScalars.contains {
            $0.value <= 0x20 || $0 == "\"" || $0 == "\\" || $0 == "=" || $0.value == 0x7f
        }
        if plain { return text }
        return escapedInQuotes(text, control: controlEscape)
    }

    /// `\xNN` for a control character (below 0x20, or DEL) that has no C-style escape; nil for any other scalar.
    static func controlEscape(_ value: UInt32) -> String? {
        value < 0x20 || value == 0x7f ? "\\x" + hex2(UInt8(value)) : nil
    }

    /// `text` in double quotes with `"`, `\`, newline, carriage return and tab escaped the C way, and any other
    /// scalar that `control` names written as `control` says: the one escaper of log values and JSON strings.
    public static func escapedInQuotes(_ text: String, control: (UInt32) -> String?) -> String {
        var out = "\""
        for u in text.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if let escaped = control(u.value) { out += escaped } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    static func hex2(_ b: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(b >> 4)], digits[Int(b & 15)]])
    }
}
