/// Prometheus text exposition (format 0.0.4) of metric samples: one `# HELP` and `# TYPE` per family, samples sorted
/// by name and labels, so the same values always render to the same bytes.
public enum MetricsText {
    /// Families whose name ends in `_total` are counters; the rest are gauges. Histograms render as one family each
    /// (`_bucket` in ascending `le`, `_sum`, `_count`), placed among the others by name.
    public static func render(_ samples: [MetricSample], histograms: [HistogramSnapshot] = [],
                              help: [String: String] = [:]) -> String {
        var families: [(String, String)] = []
        let sorted = samples.sorted { ($0.name, $0.labelText) < ($1.name, $1.labelText) }
        var family = ""
        var text = ""
        for s in sorted {
            if s.name != family {
                if !family.isEmpty { families.append((family, text)) }
                family = s.name
                text = "# HELP \(s.name) \(escapeHelp(help[s.name] ?? s.name.replacingUnderscores))\n"
                text += "# TYPE \(s.name) \(s.name.hasSuffix("_total") ? "counter" : "gauge")\n"
            }
            text += "\(s.name)\(s.labelText) \(format(s.value))\n"
        }
        if !family.isEmpty { families.append((family, text)) }
        let byName = Dictionary(grouping: histograms, by: \.name)
        for name in byName.keys {
            var text = "# HELP \(name) \(escapeHelp(help[name] ?? name.replacingUnderscores))\n"
            text += "# TYPE \(name) histogram\n"
            for h in byName[name]!.sorted(by: { MetricSample(name: "", labels: $0.labels, value: 0).labelText
                                               < MetricSample(name: "", labels: $1.labels, value: 0).labelText }) {
                for s in h.samples { text += "\(s.name)\(s.labelText) \(format(s.value))\n" }
            }
            families.append((name, text))
        }
        return families.sorted { $0.0 < $1.0 }.map(\.1).joined()
    }

    public static func format(_ v: Double) -> String {
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
