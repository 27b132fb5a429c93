/// Fail open after repeated failed starts, as systemd's `StartLimitBurst=` with `OnFailure=weir clean` does for the
/// unit: a DaemonSet's pod restarts forever, and every start that dies leaves the persistent capture table sending
/// the node's traffic to a proxy that is not there.
///
/// `weir run --fail-open-after N` keeps the wall-clock second of each start that has not reached ready in a file of
/// the state directory (one number a line). A start that finds `limit` such starts within `window` removes the capture
/// instead of starting, and records nothing, so once the oldest of them leaves the window the next start tries
/// again. Reaching ready empties the file: a success resets the count.
public struct FailOpenPolicy: Hashable, Sendable {
    /// The history file's name in the state directory.
    public static let fileName = "failed-starts"

    public let limit: Int
    public let windowSeconds: Int64

    public init(limit: Int, windowSeconds: Int64) {
        self.limit = limit
        self.windowSeconds = windowSeconds
    }

    public enum Decision: Equatable, Sendable {
        /// Start, after writing this history (the recent starts and this one).
        case start(history: [Int64])
        /// Remove the capture and do not start: `failures` starts in the window never reached ready.
        case failOpen(failures: Int)
    }

    /// What a start at `now` (seconds since the epoch) does, given the history file's text. Lines that are not a
    /// number, and times in the future (a clock set back), are dropped rather than trusted.
    public func decide(history text: String, now: Int64) -> Decision {
        let recent = Self.parse(text).filter { $0 <= now && now - $0 < windowSeconds }
        if recent.count >= limit { return .failOpen(failures: recent.count) }
        return .start(history: recent + [now])
    }

    /// Start times in the history text.
    public static func parse(_ text: String) -> [Int64] {
        text.split(whereSeparator: { $0 == "\n" }).compactMap { Int64($0) }.sorted()
    }

    /// The history file's text.
    public static func render(_ starts: [Int64]) -> String {
        starts.map { "\($0)\n" }.joined()
    }
}
