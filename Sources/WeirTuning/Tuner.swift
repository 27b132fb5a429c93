import WeirCore
import WeirSystem

/// Where profiles are looked up when no directory is given: the installed copy first, then the source tree.
/// Never a directory relative to the working directory: root running `weir tune` in a directory another user can
/// write must not load a profile planted there.
public let defaultProfileDirectories = ["/etc/weir/profiles"]

/// Result of writing one key.
public struct KeyResult: Equatable, Sendable {
    public let key: String
    public let previous: String
    public let desired: String
    /// What the kernel reports after the write.
    public let readBack: String?
    /// Nil on success, otherwise what went wrong.
    public let failure: String?
}

/// Loads profiles, plans against the node, applies with read-back verification and reverts from the state file.
public struct Tuner {
    public let files: SysctlFiles
    public let stateDirectory: String
    public let environment: TuneEnvironment

    public static let stateFileName = "tune-state.json"

    public init(files: SysctlFiles, stateDirectory: String, environment: TuneEnvironment) {
        self.files = files
        self.stateDirectory = stateDirectory
        self.environment = environment
    }

    public var statePath: String {
        (stateDirectory.hasSuffix("/") ? stateDirectory : stateDirectory + "/") + Tuner.stateFileName
    }

    /// Largest profile weir reads; the shipped ones are a few KiB.
    public static let profileSizeLimit = 1 << 20

    /// Finds and parses `NAME.profile` in the first directory that has it. `source` names where the name came from
    /// (`--profile`, or `FILE:LINE WEIR_PROFILE`). Throws `ConfigError` for a bad name, a profile that exists but
    /// cannot be used (a directory, unreadable, over `profileSizeLimit`), an unknown profile (listing the ones that
    /// exist) or a bad line.
    public static func loadProfile(named name: String, directories: [String],
                                   source: String = "--profile") throws -> Profile {
        try Profile.validateName(name, source: source)
        for dir in directories {
            let path = dir + "/" + name + ".profile"
            switch readSmallFile(path, limit: profileSizeLimit) {
            case .success(let bytes):
                return try Profile(name: name, text: String(decoding: bytes, as: UTF8.self), file: path)
            case .failure(.missing):
                continue
            case .failure(let problem):
                throw ConfigError("\(source) \(quotedValue(name)): \(quotedValue(path)) \(problem): expected a "
                    + "readable regular file of at most \(profileSizeLimit) bytes")
            }
        }
        let known = availableProfiles(directories: directories)
        let shown = known.count > 20 ? known.prefix(20).joined(separator: ", ") + ", … (\(known.count) in all)"
            : known.joined(separator: ", ")
        let expected = known.isEmpty ? "a NAME.profile file in \(directories.joined(separator: " or "))"
            : "one of " + shown
        throw ConfigError("\(source) \(quotedValue(name)) is not a profile: expected \(expected)")
    }

    /// Names of the profiles in the first directory that has any: regular `NAME.profile` files with a valid NAME,
    /// sorted.
    public static func availableProfiles(directories: [String]) -> [String] {
        for dir in directories {
            guard let names = directoryEntries(dir) else { continue }
            let profiles = names.filter { $0.hasSuffix(".profile") }.map { String($0.dropLast(".profile".count)) }
                .filter { name in
                    (try? Profile.validateName(name)) != nil
                        && (try? FileStatus(path: dir + "/" + name + ".profile"))?.kind == .regular
                }
            if !profiles.isEmpty { return profiles.sorted() }
        }
        return []
    }

    /// Refuses, before anything changes, a directory setting that cannot be one (`--state-dir`, `--profiles-dir`):
    /// the path, or the nearest part of it that exists, is not a directory. A directory that does not exist yet is
    /// fine here (the state directory is created on the first apply; a profile is then simply not found); one weir
    /// may not write to is a runtime failure of that apply. `source` is the flag or `FILE:LINE KEY`; `purpose` says
    /// what the directory is for (`for tune-state.json`).
    public static func checkDirectory(_ path: String, source: String, purpose: String) throws {
        guard !path.isEmpty else {
            throw ConfigError("\(source) '' is empty: expected a directory \(purpose)")
        }
        var part = path
        while true {
            let status: FileStatus
            do {
                status = try FileStatus(path: part)
            } catch let e as SystemError where e.errno == Errno.ENOENT || e.errno == Errno.ENOTDIR {
                // Not there (yet): the nearest part that is there decides.
                guard let parent = parentDirectory(part) else { return }
                part = parent
                continue
            } catch {
                return  // cannot be looked at (no search permission): the apply that uses it says why
            }
            if status.kind == .directory { return }
            let what = status.kind == .regular ? "a file" : "not a directory"
            if part == path {
                throw ConfigError("\(source) \(quotedValue(path)) is \(what): expected a directory \(purpose)")
            }
            throw ConfigError("\(source) \(quotedValue(path)): \(quotedValue(part)) is \(what): expected a "
                + "directory \(purpose)")
        }
    }

    /// The directory `path` is in, nil when there is none left to look at: a relative name without a slash (the
    /// working directory, which exists) or the root itself.
    private static func parentDirectory(_ path: String) -> String? {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return nil }
        let parent = slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
        return parent == path ? nil : parent
    }

    /// Compares the profile with the node. Throws `ConfigError` when a required module is missing.
    public func plan(_ profile: Profile) throws -> TunePlan {
        try TunePlan.make(profile: profile, environment: environment, read: { files.read($0.path) })
    }

    /// Largest state file weir reads; one saved value per profile key, a few KiB.
    public static let stateSizeLimit = 1 << 20

    /// The saved state, or nil when there is none. Throws `TuningFailure` for a file that cannot be read or is not
    /// what weir writes: nothing changes then.
    public func loadState() throws -> TuneState? {
        // The file says which sysctl paths to write back on revert: refuse one that another user could have placed or
        // changed (a symbolic link, not owned by the user weir runs as, or writable by group or others).
        if let status = try? FileStatus(path: statePath, followLinks: false) {
            let me = ProcessEnvironment.effectiveUID
            let problem = status.kind == .symbolicLink ? "is a symbolic link"
                : status.owner != me ? "is owned by uid \(status.owner), not \(me)"
                : status.permissions & 0o022 != 0
                    ? "is writable by group or others (mode \(String(status.permissions, radix: 8)))"
                : nil
            if let problem {
                throw TuningFailure("state file \(statePath) \(problem); nothing changed (expected a regular file "
                    + "owned by uid \(me) and writable only by it, as weir tune writes it)")
            }
        }
        let bytes: [UInt8]
        switch readSmallFile(statePath, limit: Tuner.stateSizeLimit) {
        case .success(let b): bytes = b
        case .failure(.missing): return nil
        case .failure(let problem):
            throw TuningFailure("state file \(statePath) \(problem); nothing changed (expected the regular file of at "
                + "most \(Tuner.stateSizeLimit) bytes weir tune writes)")
        }
        guard let state = TuneState(json: bytes) else {
            throw TuningFailure("state file \(statePath) is not the JSON weir tune writes; nothing changed "
                + "(restore it, or remove it to forget the saved values)")
        }
        return state
    }

    func saveState(_ state: TuneState) throws {
        do {
            try Tuner.makeDirectories(stateDirectory)
            try SysctlFiles.writeAtomically(statePath, state.json)
        } catch {
            throw TuningFailure("saving state before any change: \(error)")
        }
    }

    /// `mkdir -p`, failing with the directory and errno (not a Foundation error dump).
    /// Creates the state directory 0700 (what it holds says how the node was tuned before), its parents 0755.
    static func makeDirectories(_ path: String, permissions: UInt32 = 0o700) throws {
        if (try? FileStatus(path: path))?.kind == .directory { return }
        if let slash = path.dropLast().lastIndex(of: "/"), slash != path.startIndex {
            try makeDirectories(String(path[..<slash]), permissions: 0o755)
        }
        do {
            try FileSystem.makeDirectory(path, permissions: permissions)
        } catch let e as SystemError {
            // EEXIST: made meanwhile by someone else, which is what was wanted.
            if e.errno != Errno.EEXIST { throw TuningIOError(operation: "mkdir", path: path, errno: e.errno) }
        }
    }

    /// Applies the plan's `set` items. The previous values are saved to the state file before the first write;
    /// every write is verified by reading it back. Returns one result per written key.
    public func apply(_ plan: TunePlan) throws -> [KeyResult] {
        let changes = plan.changes
        guard !changes.isEmpty else { return [] }
        // Refuse before the state file and the first write when some key cannot be written at all (not root).
        let denied = changes.compactMap { item in
            files.writeAccessError(item.key.path).map { "\(item.key.name) (\(errnoMessage($0)))" }
        }
        if !denied.isEmpty {
            throw TuningFailure("cannot write \(denied.joined(separator: ", ")); nothing changed "
                + "(weir tune needs root)")
        }
        let state = (try loadState() ?? TuneState.empty).merging(plan)
        try saveState(state)
        return changes.map { item in
            write(key: item.key.name, path: item.key.path, previous: item.current?.description ?? "-",
                  desired: item.desired!)
        }
    }

    /// Puts back the saved values, verifying each, then removes the state file. Returns nil when there is no state.
    public func revert() throws -> [KeyResult]? {
        guard let state = try loadState() else { return nil }
        // Only ever write the files weir knows, whatever the state file says.
        for saved in state.saved where KeyRegistry.key(named: saved.key)?.path != saved.path {
            throw TuningFailure("state file \(statePath) names \(saved.key) at \(saved.path), which is not a key weir "
                + "knows; nothing changed")
        }
        var results: [KeyResult] = []
        for saved in state.saved {
            guard let value = SysctlValue(parsing: saved.previous) else {
                results.append(KeyResult(key: saved.key, previous: "-", desired: saved.previous, readBack: nil,
                                         failure: "saved value is not a number"))
                continue
            }
            let current = files.read(saved.path).flatMap { SysctlValue(parsing: $0) }
            if current == value {
                results.append(KeyResult(key: saved.key, previous: value.description, desired: value.description,
                                         readBack: value.description, failure: nil))
                continue
            }
            results.append(write(key: saved.key, path: saved.path, previous: current?.description ?? "-",
                                 desired: value))
        }
        if results.allSatisfy({ $0.failure == nil }) { try forgetState() }
        return results
    }

    /// Removes the state file once every saved value is back. One left behind would make a later revert write the
    /// old values again over whatever was tuned since: that is a failure to report, not to ignore.
    private func forgetState() throws {
        do {
            try FileSystem.remove(statePath)
        } catch let e as SystemError {
            // ENOENT: someone removed it meanwhile, which is what was wanted.
            guard e.errno == Errno.ENOENT else {
                throw TuningFailure("the saved values are back, but state file \(statePath) could not be removed "
                    + "(\(e)); remove it by hand before the next weir tune --revert")
            }
        }
    }

    private func write(key: String, path: String, previous: String, desired: SysctlValue) -> KeyResult {
        do {
            try files.write(path, desired.description)
        } catch {
            return KeyResult(key: key, previous: previous, desired: desired.description, readBack: nil,
                             failure: "\(error)")
        }
        let back = files.read(path).flatMap { SysctlValue(parsing: $0) }
        let failure = back == desired ? nil : "read back \(back?.description ?? "nothing") after writing \(desired)"
        return KeyResult(key: key, previous: previous, desired: desired.description,
                         readBack: back?.description, failure: failure)
    }

    /// The per-key report after apply or revert.
    public static func report(_ results: [KeyResult]) -> String {
        var rows = [["KEY", "BEFORE", "NOW", "RESULT"]]
        for r in results.sorted(by: { $0.key < $1.key }) {
            rows.append([r.key, r.previous, r.readBack ?? "-", r.failure.map { "failed: \($0)" } ?? "ok"])
        }
        return TextTable.render(rows)
    }
}

/// A runtime failure in tuning (not bad input): I/O on the state file or a kernel refusal.
public struct TuningFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
