import Glibc

// The file-system calls tuning needs (sysctl files, the state file and its directory, profiles), and that reading
// small input files and checking stderr share. Every failure is a `SystemError` naming the call and carrying errno.

/// What stat(2) says about a file, in the terms weir checks.
public struct FileStatus: Equatable {
    public enum Kind: Equatable { case regular, directory, symbolicLink, other }

    public let kind: Kind
    /// The permission bits, set-id and sticky bits (`mode & 0o7777`).
    public let permissions: UInt32
    public let owner: UInt32
    public let size: Int
    public let device: UInt64
    public let inode: UInt64

    /// stat(2) of `path`; lstat(2) when `followLinks` is false (a symbolic link is then reported as one).
    public init(path: String, followLinks: Bool = true) throws {
        var st = stat()
        let call = followLinks ? "stat" : "lstat"
        try blockingCall(call) { followLinks ? stat(path, &st) : lstat(path, &st) }
        self.init(st)
    }

    /// fstat(2) of an open descriptor.
    public init(descriptor: Int32) throws {
        var st = stat()
        try blockingCall("fstat") { fstat(descriptor, &st) }
        self.init(st)
    }

    private init(_ st: stat) {
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .regular
        case S_IFDIR: kind = .directory
        case S_IFLNK: kind = .symbolicLink
        default: kind = .other
        }
        permissions = UInt32(st.st_mode & 0o7777)
        owner = st.st_uid
        size = Int(st.st_size)
        device = UInt64(st.st_dev)
        inode = UInt64(st.st_ino)
    }
}

/// Paths: open, check, create, rename and remove.
public enum FileSystem {
    /// How `open` opens a file. Every mode adds O_CLOEXEC.
    public enum OpenMode {
        case read
        /// Write from the start, truncating (a sysctl file: the kernel parses one write).
        case truncate
        /// A new file that must not exist yet, never through a symbolic link (`O_EXCL | O_NOFOLLOW`).
        case createNew(permissions: UInt32)
    }

    /// Opens `path`; the error names `open`, or `create` for `createNew`.
    public static func open(_ path: String, _ mode: OpenMode) throws -> Descriptor {
        switch mode {
        case .read:
            return try Descriptor.opened("open") { Glibc.open(path, O_RDONLY | O_CLOEXEC) }
        case .truncate:
            return try Descriptor.opened("open") { Glibc.open(path, O_WRONLY | O_TRUNC | O_CLOEXEC) }
        case .createNew(let permissions):
            return try Descriptor.opened("create") {
                Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode_t(permissions))
            }
        }
    }

    /// Whether `path` exists (a dangling symbolic link does not).
    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Nil when this process may open `path` for writing, else the errno access(2) reports.
    public static func writeAccessError(_ path: String) -> Int32? { access(path, W_OK) == 0 ? nil : errno }

    /// The target of the symbolic link at `path` (at most 255 bytes), nil if it is none or cannot be read.
    public static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// mkdir(2) with `permissions` (before the umask).
    public static func makeDirectory(_ path: String, permissions: UInt32) throws {
        try blockingCall("mkdir") { mkdir(path, mode_t(permissions)) }
    }

    /// rename(2): replaces `target` atomically.
    public static func rename(_ path: String, to target: String) throws {
        try blockingCall("rename") { Glibc.rename(path, target) }
    }

    /// unlink(2).
    public static func remove(_ path: String) throws {
        try blockingCall("unlink") { unlink(path) }
    }
}

extension Descriptor {
    /// fsync(2): what was written is on the disk when this returns.
    public func sync() throws {
        try blockingCall("fsync") { fsync(rawValue) }
    }
}

extension FileSystem {
    /// Takes an exclusive advisory lock on `path` (created 0600 if missing) for as long as the returned descriptor
    /// lives; nil when another process holds it. The kernel drops the lock with the process, so a `kill -9` leaves
    /// nothing stale. The lock is on the file `path` names when it is taken (checked after the flock), so a holder
    /// may remove the file before it lets go (`unlockRemoving`) without two processes ever holding it.
    public static func lockExclusively(_ path: String) throws -> Descriptor? {
        while true {
            let file = try Descriptor.opened("open \(path)") {
                Glibc.open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode_t(0o600))
            }
            while flock(file.rawValue, LOCK_EX | LOCK_NB) != 0 {
                if errno == EINTR { continue }
                if errno == EWOULDBLOCK { return nil }
                throw SystemError("flock \(path)", errno: errno)
            }
            // Locked; but if the holder removed the file meanwhile, this lock is on a file nobody will look at.
            guard let held = try? FileStatus(descriptor: file.rawValue),
                  let named = try? FileStatus(path: path, followLinks: false),
                  held.device == named.device, held.inode == named.inode else { continue }
            return file
        }
    }

    /// Removes the lock file, then lets go of the lock (see `lockExclusively`).
    public static func unlockRemoving(_ path: String, _ lock: Descriptor) {
        _ = unlink(path)
        lock.close()
    }
}

extension FileSystem {
    /// Truncates the open file and writes `bytes` from its start.
    public static func replaceContents(of file: Descriptor, with bytes: [UInt8]) throws {
        guard ftruncate(file.rawValue, 0) == 0 else { throw SystemError("ftruncate", errno: errno) }
        guard lseek(file.rawValue, 0, SEEK_SET) == 0 else { throw SystemError("lseek", errno: errno) }
        try writeAll(file.rawValue, bytes)
    }
}

extension FileSystem {
    /// rmdir(2): removes an empty directory.
    public static func removeDirectory(_ path: String) throws {
        try blockingCall("rmdir") { rmdir(path) }
    }
}

extension FileSystem {
    /// symlink(2): `path` names `target`.
    public static func symbolicLink(_ path: String, to target: String) throws {
        try blockingCall("symlink") { symlink(target, path) }
    }
}
