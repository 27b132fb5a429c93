import WeirCore
import WeirSystem

/// A failed read or write of a kernel file: the operation, the path and errno.
public struct TuningIOError: Error, Equatable, CustomStringConvertible {
    public let operation: String
    public let path: String
    public let errno: Int32
    /// What a failed write left on disk that it could not remove, for the message.
    public var leftBehind: String?

    public init(operation: String, path: String, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    public var description: String {
        "\(operation) \(path): \(errnoMessage(errno))" + (leftBehind.map { "; \($0)" } ?? "")
    }
}

/// Reads and writes files of /proc/sys, /sys and /proc below an injectable root. The default root `/` is the real
/// kernel; tests pass a directory holding a fake `proc/sys` and `sys/module` tree.
public struct SysctlFiles: Sendable {
    public let root: String

    public init(root: String = "/") {
        self.root = root.hasSuffix("/") ? String(root.dropLast()) : root
    }

    /// The file on disk for an absolute kernel path.
    public func location(_ path: String) -> String { root + path }

    /// Contents of a file, nil when it does not exist or cannot be read.
    public func read(_ path: String) -> String? {
        try? readThrowing(path)
    }

    public func readThrowing(_ path: String) throws -> String {
        let full = location(path)
        return try Self.naming(full) {
            let file = try FileSystem.open(full, .read)
            return String(decoding: try withExtendedLifetime(file) { try readAll(file.rawValue) }, as: UTF8.self)
        }
    }

    /// True when the path exists.
    public func exists(_ path: String) -> Bool {
        FileSystem.exists(location(path))
    }

    /// Nil when this process may open the file for writing, else the errno that access(2) reports.
    public func writeAccessError(_ path: String) -> Int32? {
        FileSystem.writeAccessError(location(path))
    }

    /// Writes `text` plus a newline in one write(2), as sysctl(8) does; the kernel parses it on write.
    public func write(_ path: String, _ text: String) throws {
        let full = location(path)
        try Self.naming(full) {
            let file = try FileSystem.open(full, .truncate)
            try withExtendedLifetime(file) { try writeAll(file.rawValue, Array((text + "\n").utf8)) }
        }
    }

    /// Writes a whole file atomically: a new temporary file in the same directory, under a name nobody can guess
    /// (`O_EXCL | O_NOFOLLOW`: never an existing file or a link someone planted), fsync, then rename over `path`.
    /// `path` is a real filesystem path (not below `root`).
    public static func writeAtomically(_ path: String, _ text: String) throws {
        let temp = path + ".tmp." + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let file = try naming(temp) { try FileSystem.open(temp, .createNew(permissions: 0o600)) }
        do {
            try naming(temp) {
                try writeAll(file.rawValue, Array(text.utf8))
                try file.sync()
            }
            file.close()
            try naming(path) { try FileSystem.rename(temp, to: path) }
        } catch let e as TuningIOError {
            // The temporary file is ours (O_EXCL made it): take it away again, and say so if that fails too.
            file.close()
            var failure = e
            do {
                try FileSystem.remove(temp)
            } catch {
                failure.leftBehind = "\(temp) is left behind (\(error))"
            }
            throw failure
        }
    }

    /// Runs `body`, turning its `SystemError` into a `TuningIOError` that names `path`.
    private static func naming<T>(_ path: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let e as SystemError {
            throw TuningIOError(operation: e.call, path: path, errno: e.errno)
        }
    }
}
