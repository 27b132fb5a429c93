/// When a proxy gives memory back after a burst of connections: once the connections open have fallen to half their
/// high-water mark since the last time, and by at least `minimumDrop`. What it gives back (`Memory.giveBack`): the
/// heap's free pages (malloc_trim: a burst's freed connection state stays resident otherwise, in the middle of the
/// heap and in each worker's arena) and the code pages the burst ran, as after the start. Looked at once a second by
/// the loop of `weir run` and of `weir proxy`; a proxy that never holds `minimumDrop` connections never does it.
public struct MemoryHousekeeping: Equatable {
    public static let minimumDrop = 256
    /// The most connections open since memory was last given back.
    public private(set) var highWater = 0

    public init() {}

    /// True when memory should be given back now, with `open` connections open; the mark then starts again from
    /// `open`.
    public mutating func due(open: Int) -> Bool {
        highWater = max(highWater, open)
        guard highWater - open >= Self.minimumDrop, open <= highWater / 2 else { return false }
        highWater = open
        return true
    }
}
