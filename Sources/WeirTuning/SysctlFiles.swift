import Glibc
import WeirCore
import WeirSystem

/// A failed read or write of a kernel file: the operation, the path and errno.
public struct TuningIOError: Error, Equatable, CustomStringConvertible {
    public let operation: String
    public let path: String
    public let errno: Int32

    public var description: String {
        "\(operation) \(path): \(String(cString: strerror(errno)))"
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
        let fd = open(full, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TuningIOError(operation: "open", path: full, errno: Glibc.errno) }
        defer { close(fd) }
        do {
            return String(decoding: try readAll(fd), as: UTF8.self)
        } catch let e as SystemError {
            throw TuningIOError(operation: e.call, path: full, errno: e.errno)
        }
    }

    /// True when the path exists.
    public func exists(_ path: String) -> Bool {
        access(location(path), F_OK) == 0
    }

    /// Nil when this process may open the file for writing, else the errno that access(2) reports.
    public func writeAccessError(_ path: String) -> Int32? {
        access(location(path), W_OK) == 0 ? nil : Glibc.errno
    }

    /// Writes `text` plus a newline in one write(2), as sysctl(8) does; the kernel parses it on write.
    public func write(_ path: String, _ text: String) throws {
        let full = location(path)
        let fd = open(full, O_WRONLY | O_TRUNC | O_CLOEXEC)
        guard fd >= 0 else { throw TuningIOError(operation: "open", path: full, errno: Glibc.errno) }
        defer { close(fd) }
        do {
            try writeAll(fd, Array((text + "\n").utf8))
        } catch let e as SystemError {
            throw TuningIOError(operation: e.call, path: full, errno: e.errno)
        }
    }

    /// Writes a whole file atomically: a new temporary file in the same directory, under a name nobody can guess
    /// (`O_EXCL | O_NOFOLLOW`: never an existing file or a link someone planted), fsync, then rename over `path`.
    /// `path` is a real filesystem path (not below `root`).
    public static func writeAtomically(_ path: String, _ text: String) throws {
        let temp = path + ".tmp." + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw TuningIOError(operation: "create", path: temp, errno: Glibc.errno) }
        do {
            try writeAll(fd, Array(text.utf8))
        } catch let e as SystemError {
            close(fd); unlink(temp)
            throw TuningIOError(operation: e.call, path: temp, errno: e.errno)
        }
        if fsync(fd) != 0 {
            let e = Glibc.errno
            close(fd); unlink(temp)
            throw TuningIOError(operation: "fsync", path: temp, errno: e)
        }
        close(fd)
        if rename(temp, path) != 0 {
            let e = Glibc.errno
            unlink(temp)
            throw TuningIOError(operation: "rename", path: path, errno: e)
        }
    }
}
