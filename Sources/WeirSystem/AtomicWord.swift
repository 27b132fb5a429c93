import CWeirLinux

/// One 64-bit word shared between threads. weir has one style of atomics: C11 operations (acquire loads, release
/// stores, relaxed adds) on plain words (`weir_atomic_*`), which the proxy's per-worker counter blocks use on raw
/// memory and this type wraps for a single value. (`Mutex` from Synchronization guards state that is not one word.)
public final class AtomicWord: @unchecked Sendable {
    private let word: UnsafeMutablePointer<Int64>

    public init(_ value: Int64 = 0) {
        word = .allocate(capacity: 1)
        word.initialize(to: value)
    }

    deinit { word.deallocate() }

    public func load() -> Int64 { weir_atomic_load(word) }
    public func store(_ value: Int64) { weir_atomic_store(word, value) }
    /// Adds and returns the new value.
    @discardableResult public func add(_ value: Int64) -> Int64 { weir_atomic_add(word, value) }

    public var bool: Bool { load() != 0 }
    public func store(_ value: Bool) { store(value ? 1 : 0) }
}

/// Atomics on plain 64-bit words in memory the caller allocated (the proxy's per-worker counter blocks and
/// heartbeats): weir's one style, as `AtomicWord` (relaxed adds, acquire loads, release stores).
public enum AtomicWords {
    /// Adds and returns the new value.
    @inlinable @inline(__always) @discardableResult
    public static func add(_ word: UnsafeMutablePointer<Int64>, _ value: Int64) -> Int64 { weir_atomic_add(word, value) }
    @inlinable @inline(__always)
    public static func load(_ word: UnsafeMutablePointer<Int64>) -> Int64 { weir_atomic_load(word) }
    @inlinable @inline(__always)
    public static func store(_ word: UnsafeMutablePointer<Int64>, _ value: Int64) { weir_atomic_store(word, value) }
    /// Sets the word to max(word, floor) + value in one step; returns the new value.
    @inlinable @inline(__always) @discardableResult
    public static func maxAdd(_ word: UnsafeMutablePointer<Int64>, floor: Int64, _ value: Int64) -> Int64 {
        weir_atomic_max_add(word, floor, value)
    }
}
