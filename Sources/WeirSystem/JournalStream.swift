/// Whether standard error is connected to journald, as systemd sets it up for `StandardError=journal`: then
/// `$JOURNAL_STREAM` holds the stream's `DEVICE:INODE`, and it matches stderr's own. An inherited variable whose
/// stream is no longer stderr (a child redirected to a file or a terminal) does not match.
public enum JournalStream {
    /// Computed once: stderr does not change while weir runs.
    public static let isStandardError: Bool = {
        guard let value = ProcessEnvironment.get("JOURNAL_STREAM") else { return false }
        return matches(value, descriptor: 2)
    }()

    /// `DEVICE:INODE` (decimal, as systemd writes it) against `fstat(descriptor)`.
    public static func matches(_ value: String, descriptor: Int32) -> Bool {
        let parts = value.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        guard let status = try? FileStatus(descriptor: descriptor) else { return false }
        return status.device == device && status.inode == inode
    }

    /// Writes one line to stderr, with a `<priority>` prefix (syslog's 3 error ... 7 debug) when stderr is the journal,
    /// as it is today otherwise (terminals, files and tests see plain lines).
    public static func writeLine(_ line: String, priority: Int) {
        var text = isStandardError ? "<\(priority)>" + line : line
        if !text.hasSuffix("\n") { text += "\n" }
        ProcessEnvironment.writeStandardError(text)
    }
}
