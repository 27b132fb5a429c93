/// Prometheus text exposition (format 0.0.4) of metric samples: one `# HELP` and `# TYPE` per family, samples sorted
/// by name and labels, so the same values always render to the same bytes.
public enum MetricsText {
    /// Families whose name ends in `_total` are counters; the rest are gauges.
    public static func render(_ samples: [MetricSample], help: [String: String] = [:]) -> String {
        let sorted = samples.sorted { ($0.name, $0.labelText) < ($1.name, $1.labelText) }
        var out = ""
        var family = ""
        for s in sorted {
            if s.name != family {
                family = s.name
                out += "# HELP \(s.name) \(escapeHelp(help[s.name] ?? s.name.replacingUnderscores))\n"
                out += "# TYPE \(s.name) \(s.name.hasSuffix("_total") ? "counter" : "gauge")\n"
            }
            out += "\(s.name)\(s.labelText) \(format(s.value))\n"
        }
        return out
    }

    static func format(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }

    static func escapeHelp(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }
}

extension String {
    fileprivate var replacingUnderscores: String { String(map { $0 == "_" ? " " : $0 }) }
}
