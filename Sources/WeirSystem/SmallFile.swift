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
        case .unreadable(let e): return "cannot be read (\(errnoName(e)): \(String(cString: strerror(e))))"
        case .tooLarge(let bytes, _): return "is \(bytes) bytes"
        }
    }
}

/// Reads a small regular file whole: no more than `limit` bytes are ever held, and a FIFO or device is refused
/// before it is read, so a wrong path can neither hang weir nor fill its memory.
public func readSmallFile(_ path: String, limit: Int) -> Result<[UInt8], FileProblem> {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
    guard fd >= 0 else {
        let e = errno
        return .failure(e == ENOENT ? .missing : .unreadable(errno: e))
    }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { return .failure(.unreadable(errno: errno)) }
    switch st.st_mode & S_IFMT {
    case S_IFREG: break
    case S_IFDIR: return .failure(.directory)
    default: return .failure(.notRegular)
    }
    if Int(st.st_size) > limit { return .failure(.tooLarge(bytes: Int(st.st_size), limit: limit)) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return .failure(.unreadable(errno: errno))
        }
        if n == 0 { return .success(bytes) }
        bytes.append(contentsOf: buffer[0..<n])
        // The file grew after fstat.
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
