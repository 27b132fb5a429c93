/// Parser for /proc/net/netstat and /proc/net/snmp: pairs of `Prefix: names...` / `Prefix: values...` lines.
public enum NetstatCounters {
    /// Counters by prefix (`TcpExt`) and name (`ListenOverflows`).
    public static func parse(_ text: String) -> [String: [String: UInt64]] {
        var result: [String: [String: UInt64]] = [:]
        let lines = text.split(separator: "\n").map(String.init)
        var i = 0
        while i + 1 < lines.count {
            let header = lines[i].split(separator: " "), values = lines[i + 1].split(separator: " ")
            guard let prefix = header.first, prefix.hasSuffix(":"), values.first == prefix,
                  header.count == values.count else {
                i += 1
                continue
            }
            var counters: [String: UInt64] = [:]
            for (name, value) in zip(header.dropFirst(), values.dropFirst()) {
                if let v = UInt64(value) { counters[String(name)] = v }
            }
            result[String(prefix.dropLast())] = counters
            i += 2
        }
        return result
    }
}
