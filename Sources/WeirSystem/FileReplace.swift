import Glibc

// Replacing a file whole, so that a reader (a container runtime loading its CNI config, exec of a plugin) sees the
// old file or the new one, never a part: the new contents go to a temporary file in the same directory, are synced,
// get their mode, and are renamed over the target.
extension FileSystem {
    /// Writes `bytes` to `path` through a temporary file and rename(2), with `permissions` (not subject to the
    /// umask). The temporary file is `.NAME.weir-tmp` in the same directory, a name no runtime loads; it is removed
    /// when anything fails.
    public static func replace(_ path: String, with bytes: [UInt8], permissions: UInt32) throws {
        try replace(path, permissions: permissions) { file in try writeAll(file.rawValue, bytes) }
    }

    /// Copies the file at `source` (read to its end: `/proc/self/exe` reports no size worth trusting elsewhere) to
    /// `path` the same way; returns the bytes copied.
    @discardableResult
    public static func replace(_ path: String, copying source: String, permissions: UInt32) throws -> Int {
        let input = try open(source, .read)
        var copied = 0
        try replace(path, permissions: permissions) { file in
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = try blockingCall("read \(source)") {
                    buffer.withUnsafeMutableBytes { Glibc.read(input.rawValue, $0.baseAddress, $0.count) }
                }
                if n == 0 { return }
                try writeAll(file.rawValue, Array(buffer[0..<n]))
                copied += n
            }
        }
        return copied
    }

    /// The temporary file `replace` writes for `path`.
    public static func temporaryPath(for path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return ".\(path).weir-tmp" }
        return String(path[...slash]) + "." + path[path.index(after: slash)...] + ".weir-tmp"
    }

    private static func replace(_ path: String, permissions: UInt32, _ fill: (Descriptor) throws -> Void) throws {
        let temporary = temporaryPath(for: path)
        // One left by a writer that was killed half-way.
        _ = unlink(temporary)
        do {
            let file = try open(temporary, .createNew(permissions: 0o600))
            try fill(file)
            try blockingCall("fchmod \(temporary)") { fchmod(file.rawValue, mode_t(permissions)) }
            try file.sync()
            // Closed before the rename: closed after it, inotify would report a write of `path` itself (IN_CLOSE_WRITE
            // names the file as it is called when it is closed), which a watcher of `path` takes for someone else's.
            if let e = file.close() { throw e }
            try rename(temporary, to: path)
        } catch {
            _ = unlink(temporary)
            throw error
        }
    }
}

extension FileSystem {
    /// Whether the files at `a` and `b` hold the same bytes (false when either cannot be read), compared a block at
    /// a time: `weir cni-install` leaves a binary that is already in place alone.
    public static func sameContents(_ a: String, _ b: String) -> Bool {
        guard let first = try? open(a, .read), let second = try? open(b, .read) else { return false }
        var x = [UInt8](repeating: 0, count: 1 << 16), y = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            guard let n = try? readFull(first, &x), let m = try? readFull(second, &y), n == m else { return false }
            if n == 0 { return true }
            if x[0..<n] != y[0..<m] { return false }
        }
    }

    /// Fills `buffer` from `file` unless the file ends first; the count read.
    private static func readFull(_ file: Descriptor, _ buffer: inout [UInt8]) throws -> Int {
        var filled = 0
        while filled < buffer.count {
            let n = try blockingCall("read") {
                buffer.withUnsafeMutableBytes { Glibc.read(file.rawValue, $0.baseAddress! + filled, $0.count - filled) }
            }
            if n == 0 { break }
            filled += n
        }
        return filled
    }
}
