/// A Prometheus histogram at one moment: fixed upper bounds, the observations that fell at or below each bound and
/// above the previous one (not cumulative; rendering adds them up), their sum and count.
public struct HistogramSnapshot: Equatable, Sendable {
    public let name: String
    public let labels: [String: String]
    /// Upper bounds in seconds, ascending; `+Inf` is implied.
    public let bounds: [Double]
    /// One count per bound, plus one for observations above the last bound.
    public var counts: [Int64]
    public var sum: Double

    public init(name: String, labels: [String: String] = [:], bounds: [Double], counts: [Int64]? = nil,
                sum: Double = 0) {
        self.name = name
        self.labels = labels
        self.bounds = bounds
        self.counts = counts ?? [Int64](repeating: 0, count: bounds.count + 1)
        self.sum = sum
    }

    public var count: Int64 { counts.reduce(0, +) }

    /// The slot an observation of `value` falls into. Per connection, on the data path (WeirCore is built for size).
    @_optimize(speed)
    public static func slot(of value: Double, bounds: [Double]) -> Int {
        var lo = 0, hi = bounds.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if value <= bounds[mid] { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// `_bucket` samples with cumulative counts and `le` labels, then `_sum` and `_count`.
    public var samples: [MetricSample] {
        var out: [MetricSample] = []
        var running: Int64 = 0
        for (i, bound) in bounds.enumerated() {
            running += counts[i]
            var l = labels
            l["le"] = MetricsText.format(bound)
            out.append(MetricSample(name: name + "_bucket", labels: l, value: Double(running)))
        }
        var l = labels
        l["le"] = "+Inf"
        out.append(MetricSample(name: name + "_bucket", labels: l, value: Double(running + counts[bounds.count])))
        out.append(MetricSample(name: name + "_sum", labels: labels, value: sum))
        out.append(MetricSample(name: name + "_count", labels: labels, value: Double(count)))
        return out
    }
}

/// Bucket bounds weir uses, in seconds.
public enum HistogramBounds {
    /// Upstream connect: from a loopback connect (tens of microseconds) to the longest --connect-timeout.
    public static let connect: [Double] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                           0.25, 0.5, 1, 2.5, 5, 10]
    /// Connection lifetime: from one request to connections held for a day.
    public static let duration: [Double] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600,
                                            14400, 86400]
}
