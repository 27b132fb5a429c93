import CWeirLinux

/// Resident memory, which every node pays for.
public enum Memory {
    /// Call once the process has started serving: drops its references to the clean read-only file pages that start
    /// touched (code and read-only data of the binary and its libraries, brought in 64 KiB at a time by the kernel's
    /// fault-around) and turns fault-around off for them. The pages stay in the page cache; what the process then
    /// uses comes back a page at a time. Mappings holding private copies (relocated RELRO, data) are never touched.
    /// Returns the KiB released, or nil if /proc/self/smaps could not be read.
    @discardableResult
    public static func releaseStartupPages() -> Int? {
        let released = weir_release_clean_file_pages()
        return released < 0 ? nil : released
    }
}
