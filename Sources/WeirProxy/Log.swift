import Glibc

/// One line per event on standard error: `weir proxy: event=name key=value ...`.
func log(_ event: String, _ fields: KeyValuePairs<String, CustomStringConvertible> = [:]) {
    var line = "weir proxy: event=\(event)"
    for (key, value) in fields {
        let text = value.description
        line += " \(key)=" + (text.contains(" ") ? "\"\(text)\"" : text)
    }
    line += "\n"
    fputs(line, stderr)
}
