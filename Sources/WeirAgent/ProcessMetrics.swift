import WeirCore
import WeirSystem

/// `process_*` metrics of this process, read from /proc/self (no Foundation); nil if /proc is not mounted.
func processStats() -> ProcessStats? {
    func text(_ path: String) -> String? {
        guard case .success(let bytes) = readSmallFile(path, limit: 1 << 20) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
    guard let stat = text("/proc/self/stat"), let procStat = text("/proc/stat") else { return nil }
    // Counted while listed, the listing's own descriptor is one of the entries: leave it out.
    let open = max(0, (directoryEntries("/proc/self/fd")?.count ?? 1) - 1)
    return ProcessStats.parse(stat: stat, procStat: procStat, ticksPerSecond: SystemInfo.clockTicksPerSecond,
                              pageSize: SystemInfo.pageSize, openFDs: open, maxFDs: SystemInfo.openFilesLimit ?? 0)
}
