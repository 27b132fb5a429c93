import Glibc
import CWeirLinux

/// Resident memory, which every node pays for.
public enum Memory {
    /// Call once the process has started serving: drops its references to the clean read-only file pages that start
    /// touched (code and read-only data of the binary and its libraries, brought in 64 KiB at a time by the kernel's
    /// fault-around) with `MADV_DONTNEED`, and pages out the file-backed writable mappings that hold no private copy
    /// (`MADV_PAGEOUT`). The pages stay in the page cache; what the process then runs faults back in, fault-around
    /// included (it is left on: the kernel has no per-mapping switch for it). Mappings holding private copies
    /// (relocated RELRO, written data) are never touched. This lowers VmRSS, not RssAnon: the memory figures that
    /// judge weir are taken after a load phase. Returns the KiB released, or nil if /proc/self/smaps could not be read.
    @discardableResult
    public static func releaseStartupPages() -> Int? {
        let released = weir_release_clean_file_pages()
        return released < 0 ? nil : released
    }
}

extension Memory {
    /// After a burst of connections (`MemoryHousekeeping`): the heap's free pages go back to the kernel
    /// (`malloc_trim(0)`, every arena), and the code pages the burst ran are dropped as at start
    /// (`releaseStartupPages`); what runs next faults back in.
    public static func giveBack() {
        _ = weir_malloc_trim()
        releaseStartupPages()
    }
}

/// malloc: nil when memory ran out, where `UnsafeMutableRawPointer.allocate` would stop the process (the proxy's copy
/// buffers: a connection that cannot get one is reset, the others go on). Free with `freeAllocation`.
@inlinable @inline(__always)
public func tryAllocate(byteCount: Int) -> UnsafeMutableRawPointer? { malloc(byteCount) }

@inlinable @inline(__always)
public func freeAllocation(_ pointer: UnsafeMutableRawPointer) { free(pointer) }
