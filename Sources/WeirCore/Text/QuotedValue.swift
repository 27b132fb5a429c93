/// How error messages show a value the operator gave (a flag's value, an environment variable, a line of a profile
/// or of the configuration file): `weir: SOURCE 'VALUE' is not ...: expected ...`.
///
/// The value is put in single quotes and escaped so that the message stays one line that a terminal shows as it is
/// and that C string functions do not cut: `\` and `'` are written `\\` and `\'`; NUL, newline, carriage return and
/// tab `\0`, `\n`, `\r`, `\t`; other control characters below 0x100 (C0, DEL, C1) `\xNN`; and any other scalar that a
/// terminal would not show as a character (format characters such as bidi overrides, line and paragraph separators,
/// private-use, unassigned and U+FFFD, which stands for bytes that are not UTF-8) `\u{XXXX}`.
///
/// It is bounded: at most `limit` scalars of the value are quoted; a longer value is cut and followed by its length,
/// `'aaaa'…(52428800 bytes)`, so a 50 MiB line never becomes a 50 MB message.
public func quotedValue<S: StringProtocol>(_ value: S, limit: Int = quotedValueLimit) -> String {
    var out = "'"
    var count = 0
    for scalar in value.unicodeScalars {
        if count == limit {
            return out + "'…(\(value.utf8.count) bytes)"
        }
        out += MessageEscape.escaped(scalar) ?? String(scalar)
        count += 1
    }
    return out + "'"
}

/// Scalars of a value `quotedValue` quotes before it cuts the rest.
public let quotedValueLimit = 64

/// The last guard before a message reaches standard error or a log: every scalar `quotedValue` would escape is
/// escaped (no quotes added, `\` and `'` kept as they are), and the text is cut at `limit` scalars. A message built
/// with `quotedValue` passes unchanged.
public func oneLineMessage(_ text: String, limit: Int = 4096) -> String {
    var out = ""
    var count = 0
    for scalar in text.unicodeScalars {
        if count == limit { return out + "…(\(text.utf8.count) bytes)" }
        if scalar == "\\" || scalar == "'" {
            out.unicodeScalars.append(scalar)
        } else {
            out += MessageEscape.escaped(scalar) ?? String(scalar)
        }
        count += 1
    }
    return out
}

enum MessageEscape {
    /// The escape of one scalar inside a quoted value, or nil when it stands for itself.
    static func escaped(_ scalar: Unicode.Scalar) -> String? {
        switch scalar {
        case "\\": return "\\\\"
        case "'": return "\\'"
        case "\0": return "\\0"
        case "\n": return "\\n"
        case "\r": return "\\r"
        case "\t": return "\\t"
        default: break
        }
        let v = scalar.value
        if v < 0x20 || (v >= 0x7f && v < 0xa0) { return "\\x" + EventLine.hex2(UInt8(v)) }
        if v < 0x80 { return nil }
        switch scalar.properties.generalCategory {
        case .format, .lineSeparator, .paragraphSeparator, .privateUse, .unassigned, .surrogate, .control:
            return "\\u{" + String(v, radix: 16) + "}"
        default:
            return v == 0xfffd ? "\\u{fffd}" : nil
        }
    }
}
