/// weir's log line: `<source>: event=<name> key=value ...`, one event per line, values with spaces quoted, so
/// journald and grep see one record per line.
public enum EventLine {
    public static func format(_ source: String, _ event: String,
                              _ fields: KeyValuePairs<String, CustomStringConvertible>) -> String {
        var line = "\(source): event=\(event)"
        for (key, value) in fields {
            let text = value.description
            line += " \(key)=" + (text.contains(" ") ? "\"\(text)\"" : text)
        }
        return line
    }
}
