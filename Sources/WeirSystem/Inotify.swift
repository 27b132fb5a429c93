import Glibc

/// Changes to directories, from inotify(7): a non-blocking descriptor for a `Poller`, read as events that name the
/// entry that changed. `weir cni-install --watch` puts weir back into the node's CNI config with it.
public final class Inotify {
    /// What happened to an entry (inotify's mask, in the terms the installer checks).
    public struct Change: OptionSet, Sendable, CustomStringConvertible {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        public static let created = Change(rawValue: UInt32(IN_CREATE))
        /// Written and closed: a file rewritten in place is complete.
        public static let written = Change(rawValue: UInt32(IN_CLOSE_WRITE))
        /// Renamed into the directory (a temporary file put in place).
        public static let movedIn = Change(rawValue: UInt32(IN_MOVED_TO))
        public static let movedOut = Change(rawValue: UInt32(IN_MOVED_FROM))
        public static let deleted = Change(rawValue: UInt32(IN_DELETE))
        /// The watched directory itself was removed or renamed; its watch is gone (the kernel adds IN_IGNORED).
        public static let directoryGone = Change(rawValue: UInt32(IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
        /// Events were lost (the queue was full): look at everything again.
        public static let overflow = Change(rawValue: UInt32(IN_Q_OVERFLOW))

        public var description: String {
            let names: [(Change, String)] = [(.created, "created"), (.written, "written"), (.movedIn, "moved_in"),
                                             (.movedOut, "moved_out"), (.deleted, "deleted"),
                                             (.directoryGone, "directory_gone"), (.overflow, "overflow")]
            return names.filter { !intersection($0.0).isEmpty }.map(\.1).joined(separator: ",")
        }
    }

    public struct Event: Equatable, Sendable {
        /// The watch the event belongs to (`watchDirectory`'s result); -1 for an overflow.
        public let watch: Int32
        public let change: Change
        /// The entry's name inside the directory; "" for an event about the directory itself.
        public let name: String
    }

    public let descriptor: Descriptor
    private var buffer = [UInt8](repeating: 0, count: 16384)

    public init() throws {
        descriptor = try Descriptor.opened("inotify_init1") { inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK)) }
    }

    /// Watches the entries of the directory `path`: created, written, moved in or out, deleted; and the directory
    /// itself going away. Returns the watch (the same one if `path` is watched already).
    @discardableResult
    public func watchDirectory(_ path: String) throws -> Int32 {
        let mask = UInt32(IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF
            | IN_MOVE_SELF | IN_ONLYDIR)
        return try blockingCall("inotify_add_watch \(path)") { inotify_add_watch(descriptor.rawValue, path, mask) }
    }

    /// The events queued now; empty when there are none.
    public func read() throws -> [Event] {
        var events: [Event] = []
        while true {
            let result = try syscall("read inotify") {
                buffer.withUnsafeMutableBytes { Glibc.read(descriptor.rawValue, $0.baseAddress, $0.count) }
            }
            guard case .done(let count) = result, count > 0 else { return events }
            buffer.withUnsafeBytes { raw in
                let header = MemoryLayout<inotify_event>.size
                var at = 0
                while at + header <= count {
                    let wd = raw.loadUnaligned(fromByteOffset: at, as: Int32.self)
                    let mask = raw.loadUnaligned(fromByteOffset: at + 4, as: UInt32.self)
                    let length = Int(raw.loadUnaligned(fromByteOffset: at + 12, as: UInt32.self))
                    let nameBytes = raw[(at + header)..<min(count, at + header + length)].prefix { $0 != 0 }
                    events.append(Event(watch: wd, change: Change(rawValue: mask),
                                        name: String(decoding: nameBytes, as: UTF8.self)))
                    at += header + length
                }
            }
        }
    }
}
