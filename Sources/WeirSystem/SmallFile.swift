import Glibc

/// Why an input file (a profile, `--config`) could not be read, in words a message can use after the path.
public enum FileProblem: Error, Equatable, CustomStringConvertible {
    case missing
    case directory
    /// A FIFO, socket or device: reading it could block or never end.
    case notRegular
    case unreadable(errno: Int32)
    case tooLarge(bytes: Int, limit: Int)

    public var description: String {
        switch self {
        case .missing: return "does not exist"
        case .directory: return "is a directory"
        case .notRegular: return "is not a regular file"
        case .unreadable(let e): return "cannot be read (\(errnoName(e)): \(errnoMessage(e)))"
        case .tooLarge(let bytes, _): return "is \(bytes) bytes"
        }
    }
}

/// Reads a small regular file whole: no more than `limit` bytes are ever held, and a FIFO or device is refused
/// before it is read, so a wrong path can neither hang weir nor fill its memory.
public func readSmallFile(_ path: String, limit: Int) -> Result<[UInt8], FileProblem> {
    do {
        // Non-blocking: a FIFO opens at once (and is refused below) instead of waiting for a writer.
        let file = try Descriptor.opened("open") { open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY) }
        let status = try FileStatus(descriptor: file.rawValue)
        switch status.kind {
        case .regular: break
        case .directory: return .failure(.directory)
        default: return .failure(.notRegular)
        }
        if status.size > limit { return .failure(.tooLarge(bytes: status.size, limit: limit)) }
        return try readToEnd(file, limit: limit)
    } catch {
        // Every error above is a SystemError.
        let e = error as? SystemError
        return .failure(e?.call == "open" && e?.errno == ENOENT ? .missing : .unreadable(errno: e?.errno ?? EIO))
    }
}

/// The rest of a regular file, failing once it holds more than `limit` bytes (the file grew after fstat).
private func readToEnd(_ file: Descriptor, limit: Int) throws -> Result<[UInt8], FileProblem> {
    var bytes: [UInt8] = []
    // No larger than the file may be (plus the byte that shows it grew): a 64 KiB buffer for a 20-byte sysctl would
    // stay in the heap of a proxy that allocates nothing else that large.
    var buffer = [UInt8](repeating: 0, count: min(65536, limit + 1))
    while true {
        // A regular file never says EAGAIN: should one, it is a failure like any other.
        let n = try blockingCall("read") { buffer.withUnsafeMutableBytes { read(file.rawValue, $0.baseAddress, $0.count) } }
        if n == 0 { return .success(bytes) }
        bytes.append(contentsOf: buffer[0..<n])
        if bytes.count > limit { return .failure(.tooLarge(bytes: bytes.count, limit: limit)) }
    }
}

/// Names in a directory (without `.` and `..`), in the order the file system gives them; nil if it cannot be
/// opened (missing, not a directory, no permission).
public func directoryEntries(_ path: String) -> [String]? {
    guard let dir = opendir(path) else { return nil }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}
