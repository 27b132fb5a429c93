import WeirCore
#if canImport(Glibc)
import Glibc
#endif

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
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw TuningIOError(operation: "read", path: full, errno: Glibc.errno)
            }
            if n == 0 { break }
            bytes.append(contentsOf: buffer[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
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
        let bytes = Array((text + "\n").utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw TuningIOError(operation: "write", path: full, errno: Glibc.errno)
            }
            written += n
        }
    }

    /// Writes a whole file atomically: a temporary file in the same directory, fsync, then rename over `path`.
    /// `path` is a real filesystem path (not below `root`).
    public static func writeAtomically(_ path: String, _ text: String) throws {
        let temp = path + ".tmp.\(getpid())"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw TuningIOError(operation: "create", path: temp, errno: Glibc.errno) }
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                let e = Glibc.errno
                close(fd); unlink(temp)
                throw TuningIOError(operation: "write", path: temp, errno: e)
            }
            written += n
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
