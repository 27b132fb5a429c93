import Foundation
import Testing
@testable import WeirTuning
import WeirSystem

/// The file-system doors tuning goes through (WeirSystem's `FileSystem`, `FileStatus`, `readSmallFile`), and what
/// `SysctlFiles` and `Tuner` make of their failures. A throwaway directory each; no root needed.
struct TuningFilesTests {
    let dir: String

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("wtt-files-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    func entries() -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: dir))?.sorted() ?? [] }

    @Test func fileStatusTellsKindsAndFollowsLinksOnlyWhenAsked() throws {
        let file = dir + "/f", link = dir + "/l"
        try "abc".write(toFile: file, atomically: false, encoding: .utf8)
        chmod(file, 0o640)
        symlink(file, link)
        let status = try FileStatus(path: file)
        #expect(status.kind == .regular && status.size == 3 && status.permissions == 0o640)
        #expect(status.owner == geteuid())
        #expect(try FileStatus(path: link) == status)
        #expect(try FileStatus(path: link, followLinks: false).kind == .symbolicLink)
        #expect(try FileStatus(path: dir).kind == .directory)
        #expect(throws: SystemError("stat", errno: Errno.ENOENT)) { try FileStatus(path: dir + "/missing") }
        #expect(throws: SystemError("lstat", errno: Errno.ENOTDIR)) { try FileStatus(path: file + "/x", followLinks: false) }
        #expect(FileSystem.readLink(link) == file && FileSystem.readLink(file) == nil)
        #expect(FileSystem.exists(link) && !FileSystem.exists(dir + "/missing"))
    }

    @Test func readSmallFileRefusesWhatCouldHangOrFillMemory() throws {
        let file = dir + "/f", fifo = dir + "/fifo"
        try "12345".write(toFile: file, atomically: false, encoding: .utf8)
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(readSmallFile(file, limit: 5) == .success(Array("12345".utf8)))
        #expect(readSmallFile(file, limit: 4) == .failure(.tooLarge(bytes: 5, limit: 4)))
        #expect(readSmallFile(dir + "/missing", limit: 5) == .failure(.missing))
        #expect(readSmallFile(dir, limit: 5) == .failure(.directory))
        #expect(readSmallFile(fifo, limit: 5) == .failure(.notRegular))
        #expect(readSmallFile(file + "/x", limit: 5) == .failure(.unreadable(errno: Errno.ENOTDIR)))
        #expect(FileProblem.unreadable(errno: Errno.EPERM).description == "cannot be read (EPERM: Operation not permitted)")
    }

    @Test func writeAtomicallyLeavesTheFileOrNothing() throws {
        let target = dir + "/state.json"
        try SysctlFiles.writeAtomically(target, "one")
        try SysctlFiles.writeAtomically(target, "two")
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "two")
        #expect(try FileStatus(path: target).permissions == 0o600)
        #expect(entries() == ["state.json"])
        // rename over a directory that holds something fails: the temporary file goes again.
        try FileManager.default.createDirectory(atPath: dir + "/busy/x", withIntermediateDirectories: true)
        #expect { try SysctlFiles.writeAtomically(dir + "/busy", "three") } throws: { error in
            let e = error as? TuningIOError
            return e?.operation == "rename" && e?.path == dir + "/busy" && e?.leftBehind == nil
        }
        #expect(entries() == ["busy", "state.json"])
        // A directory that does not exist: nothing to create the temporary file in, nothing to remove.
        #expect { try SysctlFiles.writeAtomically(dir + "/none/state.json", "four") } throws: { error in
            let e = error as? TuningIOError
            return e?.operation == "create" && e?.path.hasPrefix(dir + "/none/state.json.tmp.") == true
                && "\(error)".hasSuffix(": No such file or directory")
        }
    }

    @Test func aWriteThatFailsNamesThePathAndWhatIsLeftBehind() {
        var e = TuningIOError(operation: "write", path: "/s/state.json.tmp.1f", errno: Errno.ENOSPC)
        #expect("\(e)" == "write /s/state.json.tmp.1f: No space left on device")
        e.leftBehind = "/s/state.json.tmp.1f is left behind (unlink: EACCES)"
        #expect("\(e)" == "write /s/state.json.tmp.1f: No space left on device; /s/state.json.tmp.1f is left behind "
            + "(unlink: EACCES)")
    }

    @Test func makeDirectoriesMakesTheParentsOpenAndTheLeafPrivate() throws {
        let leaf = dir + "/a/b/state"
        try Tuner.makeDirectories(leaf)
        try Tuner.makeDirectories(leaf)
        #expect(try FileStatus(path: leaf).permissions == 0o700)
        #expect(try FileStatus(path: dir + "/a/b").permissions & 0o755 == 0o755)
        try "x".write(toFile: dir + "/file", atomically: false, encoding: .utf8)
        #expect { try Tuner.makeDirectories(dir + "/file/sub") } throws: { error in
            (error as? TuningIOError).map { $0.operation == "mkdir" && $0.errno == Errno.ENOTDIR } == true
        }
    }

    @Test func checkDirectoryLooksAtTheNearestPartThatExists() throws {
        try "x".write(toFile: dir + "/file", atomically: false, encoding: .utf8)
        try Tuner.checkDirectory(dir, source: "--state-dir", purpose: "for tune-state.json")
        try Tuner.checkDirectory(dir + "/not/yet", source: "--state-dir", purpose: "for tune-state.json")
        try Tuner.checkDirectory("relative/not/yet", source: "--state-dir", purpose: "for tune-state.json")
        #expect { try Tuner.checkDirectory(dir + "/file/sub", source: "--state-dir", purpose: "for x") } throws: {
            "\($0)".contains("'\(dir)/file' is a file: expected a directory for x")
        }
        #expect { try Tuner.checkDirectory(dir + "/file", source: "--state-dir", purpose: "for x") } throws: {
            "\($0)".contains("'\(dir)/file' is a file: expected a directory for x")
        }
    }
}
