import CWeirLinux
import Glibc

/// Descriptors a process hands to the process that replaces it: how each is recognised on the other side (its
/// inode and access mode, which survive passing), the state written to a memfd, systemd's file-descriptor store
/// (`FDSTORE=1`, sd_notify(3)) and what systemd passes back at the next start (`LISTEN_FDS`, sd_listen_fds(3)).
public enum Inheritance {
    /// (inode, access mode) of `fd`; nil when it cannot be read.
    public static func key(of fd: Int32) -> (inode: UInt64, accessMode: UInt8)? {
        var inode: UInt64 = 0
        var mode: Int32 = 0
        guard weir_descriptor_key(fd, &inode, &mode) == 0 else { return nil }
        return (inode, UInt8(truncatingIfNeeded: mode))
    }

    /// A memfd holding `bytes`, positioned at its start.
    public static func memoryFile(named name: String, holding bytes: [UInt8]) throws -> Descriptor {
        let file = try Descriptor.opened("memfd_create") { weir_memfd(name) }
        try writeAll(file.rawValue, bytes)
        guard lseek(file.rawValue, 0, SEEK_SET) == 0 else { throw SystemError("lseek", errno: errno) }
        return file
    }

    /// The whole content of a (memory) file from its start, at most `limit` bytes.
    public static func contents(of file: Descriptor, limit: Int) throws -> [UInt8] {
        guard lseek(file.rawValue, 0, SEEK_SET) == 0 else { throw SystemError("lseek", errno: errno) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(file.rawValue, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("read", errno: errno)
            }
            if n == 0 { return out }
            out += chunk[0..<n]
            guard out.count <= limit else { throw SystemError("read (over \(limit) bytes)", errno: EFBIG) }
        }
    }

    /// Sends `state` to systemd's notify socket with `descriptors` attached, 253 at most per datagram (SCM_RIGHTS'
    /// limit): each batch repeats `state` (`FDSTORE=1\nFDNAME=...`). True when every batch went out; false when
    /// there is no `$NOTIFY_SOCKET`.
    public static func notify(_ state: String, descriptors: [Int32]) -> Bool {
        guard let socket = ProcessEnvironment.get("NOTIFY_SOCKET") else { return false }
        var path = Array(socket.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }
        let message = Array(state.utf8)
        var start = 0
        repeat {
            let batch = Array(descriptors[start..<min(descriptors.count, start + 253)])
            let sent = path.withUnsafeBufferPointer { p in
                p.withMemoryRebound(to: CChar.self) { name in
                    message.withUnsafeBytes { m in
                        batch.withUnsafeBufferPointer {
                            weir_send_fds_to(name.baseAddress, name.count, m.baseAddress, m.count, $0.baseAddress,
                                             Int32($0.count))
                        }
                    }
                }
            }
            if sent != message.count { return false }
            start += batch.count
        } while start < descriptors.count
        return true
    }

    /// What systemd passed at this start (`LISTEN_PID` naming this process, `LISTEN_FDS`, `LISTEN_FDNAMES`): each
    /// descriptor (from 3) with its name, made close-on-exec. The variables are removed, so nothing started later
    /// takes them for its own. Empty when there are none.
    public static func takeListenDescriptors() -> [(name: String, descriptor: Descriptor)] {
        defer {
            for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] { unsetenv(v) }
        }
        guard let pid = ProcessEnvironment.get("LISTEN_PID").flatMap({ Int32($0) }), pid == getpid(),
              let count = ProcessEnvironment.get("LISTEN_FDS").flatMap({ Int32($0) }), count > 0 else { return [] }
        let names = (ProcessEnvironment.get("LISTEN_FDNAMES") ?? "").split(separator: ":", omittingEmptySubsequences: false)
        return (0..<count).map { i in
            let fd = 3 + i
            _ = weir_set_cloexec(fd, 1)
            let name = Int(i) < names.count ? String(names[Int(i)]) : "unknown"
            return (name, Descriptor(owning: fd))
        }
    }
}
