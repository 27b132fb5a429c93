/// One Prometheus sample.
public struct MetricSample: Equatable, Sendable {
    public let name: String
    public let labels: [String: String]
    public let value: Double

    public init(name: String, labels: [String: String] = [:], value: Double) {
        self.name = name
        self.labels = labels
        self.value = value
    }

    /// `{a="1",b="2"}` with sorted label names, or empty.
    public var labelText: String {
        guard !labels.isEmpty else { return "" }
        return "{" + labels.keys.sorted().map { "\($0)=\"\(Self.escapeLabel(labels[$0]!))\"" }
            .joined(separator: ",") + "}"
    }

    /// A label value as the exposition format wants it: `\`, `"` and newline escaped.
    public static func escapeLabel(_ value: String) -> String {
        var out = ""
        for c in value {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }
}
