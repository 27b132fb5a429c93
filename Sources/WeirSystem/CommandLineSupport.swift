import Glibc

/// What the command line needs from the C library beyond `Process.swift`: the whole environment (istio's flags
/// have variables), the user and group databases (`-u`, `--outbound-owner-groups` take names), and raw writes to
/// standard output, standard error and `--log_target` files.
extension ProcessEnvironment {
    /// Every variable of the process environment.
    public static var all: [String: String] {
        var out: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let eq = text.utf8.firstIndex(of: UInt8(ascii: "=")) {
                // The first setting of a name wins, as getenv finds it.
                let name = String(text[..<eq])
                if out[name] == nil { out[name] = String(text[text.utf8.index(after: eq)...]) }
            }
            entry += 1
        }
        return out
    }

    /// The UID of user `name`, or nil when the user database does not know it.
    public static func userID(named name: String) -> UInt32? { getpwnam(name).map { $0.pointee.pw_uid } }

    /// The GID of group `name`, or nil when the group database does not know it.
    public static func groupID(named name: String) -> UInt32? { getgrnam(name).map { $0.pointee.gr_gid } }

    /// Writes `text` to standard output and flushes it, so lines interleave with other writers in order.
    public static func writeStandardOutput(_ text: String) {
        fputs(text, stdout)
        fflush(stdout)
    }

    /// Writes `bytes` to standard error as they are: a NUL does not cut them short, as it would `fputs`.
    public static func writeStandardError(bytes: [UInt8]) {
        _ = bytes.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, stderr) }
    }

    /// Appends `text` to the file at `path`, creating it; false when the file cannot be opened.
    public static func append(_ text: String, toFile path: String) -> Bool {
        guard let file = fopen(path, "a") else { return false }
        fputs(text, file)
        fclose(file)
        return true
    }
}

