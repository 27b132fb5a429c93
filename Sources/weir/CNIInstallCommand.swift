import ArgumentParser
import WeirCore
import WeirSystem

struct CNIInstallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cni-install",
        abstract: "Install weir's CNI plugin on this node; with --watch, keep it installed until SIGTERM.",
        usage: """
            weir cni-install [--bin-dir DIR] [--conf-dir DIR] [--agent-socket PATH] [--fail-open] [--watch \
            [--keep-on-exit]]
            weir cni-install --uninstall [--bin-dir DIR] [--conf-dir DIR]
            """,
        discussion: """
            Copies this weir binary to --bin-dir as 'weir' (mode 0755), then puts weir's entry \
            {"type": "weir", "agentSocket": ...} last in the node's primary network config: the first *.conf or \
            *.conflist of --conf-dir in byte order that a runtime can load (files that do not parse are skipped). \
            A conflist loses any earlier weir entry and gets weir's appended; a single *.conf is wrapped into \
            {cniVersion, name, plugins: [conf, weir]} written as NAME.conflist, and the .conf is removed. Every file \
            is written whole (a temporary file, then rename) with the mode of the file it replaces, and only when \
            its content changes. A primary config whose cniVersion the plugin does not speak \
            (\(CNIVersion.supported.joined(separator: ", "))) is left alone: every pod's ADD would fail. \
            --watch stays running: it watches both directories (inotify) and puts weir back whenever the \
            primary network plugin rewrites its config or a newer file becomes the primary; on SIGTERM or SIGINT it \
            removes weir's entry from every conflist and the binary, unless --keep-on-exit. --uninstall does that \
            removal and exits. Bad input exits 2 with nothing changed; a failed write exits 1.
            """
    )

    @Option(help: ArgumentHelp("Directory the container runtime runs CNI plugins from (default /opt/cni/bin).",
                               valueName: "dir"))
    var binDir: [String] = []
    @Option(help: ArgumentHelp("Directory of the node's CNI network configs (default /etc/cni/net.d).",
                               valueName: "dir"))
    var confDir: [String] = []
    @Option(help: ArgumentHelp("The agent's socket as the plugin reaches it on the node: weir run --pod-mode's "
        + "--run-dir and cni.sock (default \(CNIConfig.defaultAgentSocket)).", valueName: "path"))
    var agentSocket: [String] = []
    @Flag(help: ArgumentHelp("Write \"failOpen\": true into weir's entry: a pod's ADD succeeds when the agent "
        + "cannot be reached (the pod then runs uncaptured). Off by default: no pod starts uncaptured."))
    var failOpen = false
    @Flag(help: "Stay running and keep weir in the primary config (and the binary in place) until SIGTERM or SIGINT.")
    var watch = false
    @Flag(help: ArgumentHelp("""
        With --watch: leave the binary and weir's entry in place on SIGTERM or SIGINT, for a DaemonSet's rolling \
        upgrade or a node's reboot. istio-cni keeps its config the same way while its DaemonSet still targets the \
        node: a pod created while the installer and the agent are away then stays blocked (its ADD fails and the \
        runtime retries) instead of starting uncaptured. Remove weir with --uninstall when it leaves the node.
        """))
    var keepOnExit = false
    @Flag(help: "Remove weir's entry from every conflist of --conf-dir and the binary from --bin-dir, then exit.")
    var uninstall = false
    @Flag(help: ArgumentHelp("""
        Install the plugin with the shared libraries and the loader this weir runs with (into --bin-dir/weir.d, \
        'weir' being a small /bin/sh script that starts them): the node's own libraries may be older (glibc) or \
        missing (libnftnl, libmnl, libnetfilter_conntrack), and a plugin that cannot start fails every pod's ADD. \
        The DaemonSet sets it.
        """))
    var bundleLibraries = false

    func run() throws {
        // Checked here, not in validate(): see Main.
        if uninstall {
            let others = [watch ? "--watch" : nil, keepOnExit ? "--keep-on-exit" : nil,
                          failOpen ? "--fail-open" : nil, agentSocket.isEmpty ? nil : "--agent-socket"]
                .compactMap { $0 }
            if let other = others.first {
                throw ConfigError("--uninstall and \(other) given together: expected --uninstall with only "
                    + "--bin-dir and --conf-dir")
            }
        }
        if keepOnExit && !watch {
            throw ConfigError("--keep-on-exit without --watch: expected --keep-on-exit together with --watch (a "
                + "one-shot install always leaves weir installed)")
        }
        let binDir = try Self.directory(oneValue(self.binDir, "--bin-dir"), "--bin-dir", default: "/opt/cni/bin",
                                        purpose: "the directory the container runtime runs CNI plugins from")
        let confDir = try Self.directory(oneValue(self.confDir, "--conf-dir"), "--conf-dir",
                                         default: "/etc/cni/net.d",
                                         purpose: "the directory of the node's CNI network configs")
        let socket = try oneValue(agentSocket, "--agent-socket") ?? CNIConfig.defaultAgentSocket
        guard socket.hasPrefix("/"), !socket.contains("\0") else {
            throw ConfigError(.flag("--agent-socket"), socket, "is not an absolute path: expected the agent's "
                + "socket as the node sees it, such as \(CNIConfig.defaultAgentSocket)")
        }
        for (flag, dir) in [("--bin-dir", binDir), ("--conf-dir", confDir)] {
            if let e = FileSystem.writeAccessError(dir) {
                throw RuntimeFailure(message: "\(flag) \(quotedValue(dir)) cannot be written (\(errnoName(e)): "
                    + "\(errnoMessage(e))): nothing changed")
            }
        }

        var installer = CNIInstaller(binDir: binDir, confDir: confDir,
                                     entry: CNIEntry(agentSocket: socket, failOpen: failOpen))
        installer.bundle = bundleLibraries
        if uninstall {
            try installer.uninstall()
        } else if watch {
            try installer.watch(keepOnExit: keepOnExit)
        } else {
            try installer.installOnce()
        }
    }

    /// The directory a flag names (or its default), without trailing slashes; bad input when it is not one.
    static func directory(_ value: String?, _ flag: String, default fallback: String, purpose: String) throws
        -> String
    {
        var path = value ?? fallback
        guard !path.isEmpty else { throw ConfigError(.flag(flag), path, "is empty: expected \(purpose)") }
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        let status: FileStatus
        do {
            status = try FileStatus(path: path)
        } catch let e as SystemError {
            let problem = e.errno == Errno.ENOENT || e.errno == Errno.ENOTDIR
                ? "does not exist" : "cannot be read (\(errnoName(e.errno)))"
            throw ConfigError(.flag(flag), path, "\(problem): expected \(purpose), such as \(fallback)")
        }
        guard status.kind == .directory else {
            throw ConfigError(.flag(flag), path, "is not a directory: expected \(purpose), such as \(fallback)")
        }
        return path
    }
}

/// The installer's work on the two directories; every change is logged as one event line on stderr.
struct CNIInstaller {
    let binDir: String
    let confDir: String
    let entry: CNIEntry

    /// The binary as the runtime runs it: the entry's `type`.
    var binaryPath: String { binDir + "/" + CNIEntry.type }
    /// The file the binary last put in place, to tell it from one someone else put there.
    private var installedBinary: (device: UInt64, inode: UInt64)?
    /// The last plan that was logged in --watch, so an unchanged refusal is not logged on every look.
    private var lastPlan: Conflist.Plan?
    /// --bundle-libraries: the binary, its libraries and its loader in weir.d, started by a script.
    var bundle = false
    var bundleDir: String { binDir + "/weir.d" }

    init(binDir: String, confDir: String, entry: CNIEntry) {
        self.binDir = binDir
        self.confDir = confDir
        self.entry = entry
    }

    static let selfExecutable = "/proc/self/exe"
    /// How long --watch waits for a directory to go quiet before it looks (a plugin that writes its config in
    /// several steps, or several files at once), and at most after the first event.
    static let settleMs: Int64 = 100, settleLimitMs: Int64 = 1000
    /// How often --watch looks without an event (lost events, a directory re-created).
    static let recheckMs: Int64 = 30_000

    func log(_ event: String, _ fields: KeyValuePairs<String, CustomStringConvertible> = [:]) {
        JournalStream.writeLine(EventLine.format("weir cni-install", event, fields),
                                priority: EventLine.level(of: event).rawValue)
    }

    // MARK: one-shot

    /// Installs and exits: the primary config must be there and of a version the plugin speaks (checked before the
    /// binary is copied, so a refusal changes nothing).
    mutating func installOnce() throws {
        switch Conflist.install(entry, files: readConfigs().files) {
        case .noPrimary:
            throw RuntimeFailure(message: "no CNI network config in \(quotedValue(confDir)): expected the node's "
                + "network plugin's *.conf or *.conflist (use --watch to wait for it); nothing changed")
        case .unsupportedVersion(let file, let version):
            throw RuntimeFailure(message: unsupported(file, version) + "; nothing changed")
        case .unchanged, .edit:
            break
        }
        try installBinary(reason: "install")
        _ = try installConfig()
    }

    // MARK: uninstall

    /// Takes weir out of every conflist, then removes the binary (in that order: the runtime never runs a chain
    /// that names a missing plugin).
    func uninstall() throws {
        for edit in Conflist.uninstall(files: readConfigs().files) {
            let mode = (try? FileStatus(path: path(edit.source)).permissions) ?? 0o644
            try write(edit, mode: mode)
            log("config_uninstalled", ["file": path(edit.write)])
        }
        do {
            try FileSystem.remove(binaryPath)
            log("binary_removed", ["path": binaryPath])
        } catch let e as SystemError where e.errno == Errno.ENOENT {}
        // A bundle (--bundle-libraries) goes with it, whichever way it was installed.
        if let names = directoryEntries(bundleDir) {
            for name in names { try? FileSystem.remove(bundleDir + "/" + name) }
            try? FileSystem.removeDirectory(bundleDir)
            log("bundle_removed", ["path": bundleDir])
        }
    }

    // MARK: --watch

    mutating func watch(keepOnExit: Bool) throws {
        Signals.block()
        let signals = try SignalQueue()
        let inotify = try Inotify()
        var confWatch = try inotify.watchDirectory(confDir)
        var binWatch = try inotify.watchDirectory(binDir)
        let poller = try Poller(capacity: 4)
        let signalToken: UInt64 = 1, inotifyToken: UInt64 = 2
        for (d, token) in [(signals.descriptor, signalToken), (inotify.descriptor, inotifyToken)] {
            let e = poller.add(d.rawValue, .readable, token: token)
            if e != 0 { throw SystemError("epoll_ctl", errno: e) }
        }
        try installBinary(reason: "install")
        try look()
        log("watching", ["conf_dir": confDir, "bin_dir": binDir, "keep_on_exit": keepOnExit])

        var firstEvent: Int64?, lastEvent: Int64 = 0, checkBinary = false
        var nextRecheck = Clock.nowMs() + Self.recheckMs
        while true {
            let now = Clock.nowMs()
            let deadline = firstEvent.map { min(lastEvent + Self.settleMs, $0 + Self.settleLimitMs) } ?? nextRecheck
            let n = try poller.wait(timeoutMs: Poller.timeout(until: deadline, now: now, maxMs: Self.recheckMs))
            for i in 0..<n where poller[i].token == signalToken {
                while let signal = signals.next() {
                    if signal == Signals.SIGHUP {
                        firstEvent = firstEvent ?? Clock.nowMs()
                        checkBinary = true
                        continue
                    }
                    log("stopping", ["signal": signal == Signals.SIGTERM ? "SIGTERM" : "SIGINT",
                                     "keep_on_exit": keepOnExit])
                    if !keepOnExit { try uninstall() }
                    return
                }
            }
            for i in 0..<n where poller[i].token == inotifyToken {
                for event in try inotify.read() {
                    if event.change.contains(.overflow) {
                        checkBinary = true
                    } else if event.change.contains(.directoryGone) && event.name.isEmpty {
                        log("warning", ["reason": "watched directory removed",
                                        "dir": event.watch == confWatch ? confDir : binDir])
                        continue
                    } else if event.watch == binWatch {
                        guard event.name == CNIEntry.type else { continue }
                        // Written in place by someone else: the inode is still the one weir put there.
                        if event.change.contains(.written) { installedBinary = nil }
                        checkBinary = true
                    } else if event.watch == confWatch {
                        guard CNIConfFile.kind(of: event.name) != nil else { continue }
                    }
                    let t = Clock.nowMs()
                    firstEvent = firstEvent ?? t
                    lastEvent = t
                }
            }
            let t = Clock.nowMs()
            if let first = firstEvent, t >= min(lastEvent + Self.settleMs, first + Self.settleLimitMs) {
                firstEvent = nil
                if checkBinary { try keepBinary() }
                checkBinary = false
                try look()
            } else if firstEvent == nil, t >= nextRecheck {
                nextRecheck = t + Self.recheckMs
                // A directory removed and made again gets a new watch.
                if let w = try? inotify.watchDirectory(confDir) { confWatch = w }
                if let w = try? inotify.watchDirectory(binDir) { binWatch = w }
                try keepBinary()
                try look()
            }
        }
    }

    /// One look at the config directory in --watch: install or repair, logging only what changed.
    private mutating func look() throws {
        let plan = try installConfig(quiet: true)
        defer { lastPlan = plan }
        if plan == lastPlan { return }
        switch plan {
        case .noPrimary:
            log("waiting", ["reason": "no *.conf or *.conflist in the config directory yet", "conf_dir": confDir])
        case .unsupportedVersion(let file, let version):
            log("warning", ["reason": unsupported(file, version)])
        case .unchanged(let file):
            if lastPlan == nil { log("config_unchanged", ["file": path(file)]) }
        case .edit:
            break
        }
    }

    // MARK: the binary

    /// Copies this binary to --bin-dir, unless the same bytes are there already with mode 0755 (a re-run changes
    /// nothing; an upgrade brings a new binary).
    private mutating func installBinary(reason: String) throws {
        if bundle { return try installBundle(reason: reason) }
        if reason == "install", let status = try? FileStatus(path: binaryPath), status.kind == .regular,
           status.permissions == 0o755, FileSystem.sameContents(Self.selfExecutable, binaryPath) {
            installedBinary = (status.device, status.inode)
            log("binary_unchanged", ["path": binaryPath])
            return
        }
        let bytes: Int
        do {
            bytes = try FileSystem.replace(binaryPath, copying: Self.selfExecutable, permissions: 0o755)
        } catch {
            throw RuntimeFailure(message: "installing \(binaryPath): \(error)")
        }
        let status = try? FileStatus(path: binaryPath)
        installedBinary = status.map { ($0.device, $0.inode) }
        log("binary_installed", ["path": binaryPath, "bytes": bytes, "reason": reason])
    }

    /// The files this process runs from, besides its executable: the shared libraries and the loader, from
    /// /proc/self/maps (exactly what the loader picked, wherever it found them).
    static func mappedLibraries() -> [String] {
        guard case .success(let bytes) = readSmallFile("/proc/self/maps", limit: 4 << 20) else { return [] }
        let exe = FileSystem.readLink(selfExecutable) ?? ""
        var out: [String] = []
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            guard let slash = line.firstIndex(of: "/") else { continue }
            let path = String(line[slash...])
            let name = path.split(separator: "/").last.map(String.init) ?? ""
            guard path != exe, name.contains(".so"), !out.contains(path) else { continue }
            out.append(path)
        }
        return out
    }

    /// Shorter names a library may be asked for by: `libmnl.so.0.2.0` -> `libmnl.so.0.2`, `libmnl.so.0` (a soname is
    /// the name up to the major version).
    static func sonameAliases(_ name: String) -> [String] {
        guard let so = name.firstRange(of: ".so.") else { return [] }
        let versions = name[so.upperBound...].split(separator: ".")
        return (1..<max(1, versions.count)).reversed().map {
            String(name[..<so.upperBound]) + versions.prefix($0).joined(separator: ".")
        }
    }

    /// The script `weir` becomes with --bundle-libraries: the bundled loader runs the bundled binary with the
    /// bundled libraries, whatever the node has.
    static func bundleScript(loader: String) -> String {
        """
        #!/bin/sh
        # weir's CNI plugin, installed by weir cni-install --bundle-libraries: the weir binary of the image, with the
        # shared libraries and the loader it runs with (weir.d), so the node's own (older, or missing) never matter.
        d="${0%/*}/weir.d"
        exec "$d/\(loader)" --library-path "$d" "$d/weir" "$@"

        """
    }

    /// --bundle-libraries: weir.d/ gets the binary, its libraries and its loader; `weir` the script. Unchanged
    /// files are not written again.
    private mutating func installBundle(reason: String) throws {
        let libraries = Self.mappedLibraries()
        guard let loader = libraries.first(where: { ($0.split(separator: "/").last ?? "").hasPrefix("ld-") }) else {
            throw RuntimeFailure(message: "--bundle-libraries: no loader (ld-*.so) among this process's mappings")
        }
        let loaderName = String(loader.split(separator: "/").last!)
        let script = Array(Self.bundleScript(loader: loaderName).utf8)
        var written = 0
        do {
            if !FileSystem.exists(bundleDir) { try FileSystem.makeDirectory(bundleDir, permissions: 0o755) }
            for (source, name, mode) in libraries.map({ ($0, String($0.split(separator: "/").last!),
                                                        $0 == loader ? UInt32(0o755) : 0o644) })
                + [(Self.selfExecutable, "weir", 0o755)] {
                let target = bundleDir + "/" + name
                if !FileSystem.sameContents(source, target) {
                    written += try FileSystem.replace(target, copying: source, permissions: mode)
                }
                // The maps name the real file (libmnl.so.0.2.0); the binary asks for its soname (libmnl.so.0).
                for alias in Self.sonameAliases(name) where FileSystem.readLink(bundleDir + "/" + alias) != name {
                    try? FileSystem.remove(bundleDir + "/" + alias)
                    try FileSystem.symbolicLink(bundleDir + "/" + alias, to: name)
                }
            }
            let current = try? FileSystem.open(binaryPath, .read)
            let same = current.map { (try? readAll($0.rawValue, limit: 4096)) == script } ?? false
            if !same { try FileSystem.replace(binaryPath, with: script, permissions: 0o755) }
            if written == 0 && same {
                log("binary_unchanged", ["path": binaryPath, "bundle": bundleDir])
            } else {
                log("binary_installed", ["path": binaryPath, "bundle": bundleDir, "libraries": libraries.count,
                                         "bytes": written, "reason": reason])
            }
        } catch let e as SystemError {
            throw RuntimeFailure(message: "installing \(binaryPath) with --bundle-libraries: \(e)")
        }
        let status = try? FileStatus(path: binaryPath)
        installedBinary = status.map { ($0.device, $0.inode) }
    }

    /// Puts the binary back when it is gone or is no longer the file weir put there.
    private mutating func keepBinary() throws {
        guard let status = try? FileStatus(path: binaryPath) else {
            return try installBinary(reason: "missing")
        }
        if let ours = installedBinary, ours.device == status.device, ours.inode == status.inode { return }
        try installBinary(reason: "replaced")
    }

    // MARK: the config

    /// The loadable configs of --conf-dir, with the bytes each was read from.
    func readConfigs() -> (files: [CNIConfFile], bytes: [String: [UInt8]]) {
        var files: [CNIConfFile] = [], bytes: [String: [UInt8]] = [:]
        for name in directoryEntries(confDir) ?? [] where CNIConfFile.kind(of: name) != nil {
            guard case .success(let content) = readSmallFile(path(name), limit: CNIConfig.maxBytes),
                  let file = CNIConfFile(name: name, bytes: content) else { continue }
            files.append(file)
            bytes[name] = content
        }
        return (files, bytes)
    }

    /// Puts weir last in the primary config when it is not; returns what it found. The primary network plugin may be
    /// writing its file at this very moment: the edit is written only over the bytes it was made from, else the
    /// directory is read again.
    @discardableResult
    func installConfig(quiet: Bool = false) throws -> Conflist.Plan {
        for _ in 0..<3 {
            let (files, bytes) = readConfigs()
            let plan = Conflist.install(entry, files: files)
            guard case .edit(let edit) = plan else {
                if !quiet, case .unchanged(let file) = plan { log("config_unchanged", ["file": path(file)]) }
                return plan
            }
            let source = path(edit.source)
            let mode = (try? FileStatus(path: source).permissions) ?? 0o644
            guard case .success(let now) = readSmallFile(source, limit: CNIConfig.maxBytes), now == bytes[edit.source]
            else { continue }
            try write(edit, mode: mode)
            if let removed = edit.remove {
                log("config_installed", ["file": path(edit.write), "action": "wrapped", "removed": path(removed)])
            } else {
                log("config_installed", ["file": path(edit.write), "action": "appended"])
            }
            return plan
        }
        throw RuntimeFailure(message: "the primary network config in \(quotedValue(confDir)) kept changing while "
            + "weir was being added: try again")
    }

    private func write(_ edit: ConflistEdit, mode: UInt32) throws {
        do {
            try FileSystem.replace(path(edit.write), with: Array(edit.text.utf8), permissions: mode)
            if let removed = edit.remove {
                do { try FileSystem.remove(path(removed)) } catch let e as SystemError where e.errno == Errno.ENOENT {}
            }
        } catch {
            throw RuntimeFailure(message: "writing \(path(edit.write)): \(error)")
        }
    }

    private func unsupported(_ file: String, _ version: String) -> String {
        "the primary network config \(path(file)) has cniVersion \(quotedValue(version)), which weir's plugin does "
            + "not speak (expected \(CNIVersion.supported.joined(separator: " or "))): weir is not added, or every "
            + "pod's ADD would fail"
    }

    private func path(_ name: String) -> String { confDir == "/" ? "/" + name : confDir + "/" + name }
}
