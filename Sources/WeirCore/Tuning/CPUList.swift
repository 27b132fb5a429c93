/// A Linux CPU list as the kernel writes it (`0-3,5,7-8`), e.g. in `cpuset.cpus.effective` or
/// `/sys/devices/system/cpu/online`.
public struct CPUList: Equatable, Sendable {
    /// The CPU numbers, sorted, without duplicates.
    public let cpus: [Int]

    public var count: Int { cpus.count }

    /// Parses a CPU list. Returns nil for text that is not a CPU list. An empty list (an empty cpuset) parses to
    /// zero CPUs.
    public init?(parsing text: String) {
        let trimmed = text.tuningTrimmed
        var set = Set<Int>()
        if !trimmed.isEmpty {
            for part in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
                let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
                guard bounds.count == 1 || bounds.count == 2 else { return nil }
                guard let low = Int(bounds[0]), low >= 0 else { return nil }
                let high = bounds.count == 2 ? Int(bounds[1]) : low
                guard let high, high >= low, high - low < 1 << 16 else { return nil }
                for cpu in low...high { set.insert(cpu) }
            }
        }
        cpus = set.sorted()
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs and newlines.
    var tuningTrimmed: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}
