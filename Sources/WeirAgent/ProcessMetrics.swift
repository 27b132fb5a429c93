import Glibc
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
    var limit = rlimit()
    let maxFDs = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 ? Int(clamping: limit.rlim_cur) : 0
    return ProcessStats.parse(stat: stat, procStat: procStat, ticksPerSecond: sysconf(Int32(_SC_CLK_TCK)),
                              pageSize: sysconf(Int32(_SC_PAGESIZE)), openFDs: open, maxFDs: maxFDs)
}
