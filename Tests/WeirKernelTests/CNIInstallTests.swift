import Foundation
import Testing
import WeirCore

/// `weir cni-install` as the DaemonSet runs it, the real binary against a temporary node: `bin/` stands for
/// /opt/cni/bin and `net.d/` for /etc/cni/net.d. No kernel feature and no root needed.
@Suite(.serialized)
struct CNIInstallTests {
    /// A node's two directories, removed at the end.
    final class Node {
        let root: String
        var bin: String { root + "/bin" }
        var conf: String { root + "/net.d" }

        init() throws {
            root = NSTemporaryDirectory() + "wtcni-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            for dir in [bin, conf] { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        }

        deinit { try? FileManager.default.removeItem(atPath: root) }

        func write(_ name: String, _ text: String, mode: Int = 0o644) throws {
            let path = conf + "/" + name
            try text.write(toFile: path, atomically: false, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        }

        func read(_ name: String) throws -> JSONValue {
            try JSONValue.parse(Array(try Data(contentsOf: URL(fileURLWithPath: conf + "/" + name))))
        }

        func files() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: conf).sorted() }

        /// The `type` of each plugin of a conflist, in order.
        func types(_ name: String) throws -> [String] {
            try read(name)[member: "plugins"]?.arrayValue?.map { $0[member: "type"]?.stringValue ?? "?" } ?? []
        }

        /// Permission bits, inode and modification time: what an unchanged file keeps.
        func identity(_ path: String) throws -> [String] {
            let a = try FileManager.default.attributesOfItem(atPath: path)
            return ["\(a[.posixPermissions] ?? "")", "\(a[.systemFileNumber] ?? "")", "\(a[.modificationDate] ?? "")"]
        }

        func install(_ extra: [String] = []) throws -> CommandResult {
            try runCommand([weirBinary, "cni-install", "--bin-dir", bin, "--conf-dir", conf] + extra)
        }
    }

    static let flannel = #"""
        {"name": "cbr0", "cniVersion": "1.0.0", "plugins": [
          {"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true}},
          {"type": "portmap", "capabilities": {"portMappings": true}}]}
        """#
    static let bridge = #"""
        {"cniVersion": "1.0.0", "name": "podnet", "type": "bridge", "bridge": "cni0", "isGateway": true,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "198.18.0.0/24"}]], "dataDir": "/run/x"}}
        """#

    @Test func bundledThePluginRunsWithTheImagesLibrariesOnlyAndUninstallRemovesThem() throws {
        let node = try Node()
        try node.write("10-bridge.conflist", Self.flannel)
        let r = try node.install(["--bundle-libraries"])
        #expect(r.status == 0, "\(r.stderr)")
        // Every library (and the loader) the plugin starts with comes from the bundle, not from the node.
        let run = try runCommand(["env", "-i", "LD_DEBUG=libs", "CNI_COMMAND=VERSION", node.bin + "/weir"],
                                 input: #"{"cniVersion":"1.0.0"}"#)
        #expect(run.status == 0 && run.stdout.contains("supportedVersions"), "\(run.stdout)")
        let after = run.stderr.components(separatedBy: "initialize program: /bin/sh").last ?? ""
        let loaded = after.split(separator: "\n").filter { $0.contains("calling init: ") }
            .map { String($0.split(separator: " ").last ?? "") }
        #expect(!loaded.isEmpty && loaded.allSatisfy { $0.hasPrefix(node.bin + "/weir.d/") }, "\(loaded)")
        // A second install changes nothing; uninstall takes the bundle too.
        #expect(try node.install(["--bundle-libraries"]).stderr.contains("event=binary_unchanged"))
        #expect(try node.install(["--uninstall"]).status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: node.bin).isEmpty)
    }

    @Test func aConfIsWrappedIntoAConflistWithWeirLastAndTheBinaryCopied() throws {
        let node = try Node()
        try node.write("10-bridge.conf", Self.bridge, mode: 0o640)
        try node.write("99-loopback.conf", #"{"cniVersion": "1.0.0", "name": "lo", "type": "loopback"}"#)
        let r = try node.install()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try node.files() == ["10-bridge.conflist", "99-loopback.conf"])
        let list = try node.read("10-bridge.conflist")
        #expect(list[member: "cniVersion"] == .string("1.0.0") && list[member: "name"] == .string("podnet"))
        #expect(list[member: "plugins"]?.arrayValue == [
            try JSONValue.parse(Array(Self.bridge.utf8)),
            .object([("type", .string("weir")), ("agentSocket", .string("/run/weir/cni.sock"))]),
        ])
        // The mode of the file it replaced; the binary is this weir, executable.
        #expect(try node.identity(node.conf + "/10-bridge.conflist")[0] == "416")  // 0o640
        #expect(FileManager.default.contentsEqual(atPath: node.bin + "/weir", andPath: weirBinary))
        #expect(try node.identity(node.bin + "/weir")[0] == "493")  // 0o755
        #expect(r.stderr.contains("event=config_installed file=\(node.conf)/10-bridge.conflist action=wrapped "
            + "removed=\(node.conf)/10-bridge.conf"))
        // The runtime finds weir where the entry says, and it answers as a CNI plugin.
        let version = try runCommand(["env", "CNI_COMMAND=VERSION", node.bin + "/weir"], input: #"{"cniVersion":"1.0.0"}"#)
        #expect(version.status == 0 && version.stdout.contains("\"supportedVersions\""))
    }

    @Test func aConflistGetsWeirAppendedAndARerunChangesNothing() throws {
        let node = try Node()
        try node.write("10-flannel.conflist", Self.flannel)
        let first = try node.install(["--agent-socket", "/var/run/weir/cni.sock", "--fail-open"])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try node.types("10-flannel.conflist") == ["flannel", "portmap", "weir"])
        #expect(try node.read("10-flannel.conflist")[member: "plugins"]?.arrayValue?.last == .object([
            ("type", .string("weir")), ("agentSocket", .string("/var/run/weir/cni.sock")), ("failOpen", .bool(true)),
        ]))
        let before = try [node.identity(node.conf + "/10-flannel.conflist"), node.identity(node.bin + "/weir")]
        usleep(20_000)
        let again = try node.install(["--agent-socket", "/var/run/weir/cni.sock", "--fail-open"])
        #expect(again.status == 0)
        #expect(try [node.identity(node.conf + "/10-flannel.conflist"), node.identity(node.bin + "/weir")] == before)
        #expect(again.stderr.contains("event=binary_unchanged") && again.stderr.contains("event=config_unchanged"))
        #expect(try node.files() == ["10-flannel.conflist"])
        // New settings replace weir's entry, still once and last.
        #expect(try node.install().status == 0)
        #expect(try node.types("10-flannel.conflist") == ["flannel", "portmap", "weir"])
        #expect(try node.read("10-flannel.conflist")[member: "plugins"]?.arrayValue?.last?[member: "failOpen"] == nil)
    }

    @Test func uninstallRestoresTheOriginalPlugins() throws {
        let node = try Node()
        try node.write("10-flannel.conflist", Self.flannel)
        try node.write("20-bridge.conf", Self.bridge)
        #expect(try node.install().status == 0)
        let r = try node.install(["--uninstall"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try node.read("10-flannel.conflist") == JSONValue.parse(Array(Self.flannel.utf8)))
        #expect(try node.files() == ["10-flannel.conflist", "20-bridge.conf"])
        #expect(!FileManager.default.fileExists(atPath: node.bin + "/weir"))
        // Again: nothing left to remove, still success.
        #expect(try node.install(["--uninstall"]).status == 0)
    }

    @Test func withoutAPrimaryConfigOrWithAnUnsupportedVersionNothingChanges() throws {
        let node = try Node()
        try node.write("00-broken.conflist", "{\"name\": ")
        let none = try node.install()
        #expect(none.status == 1 && none.stderr.contains("no CNI network config in '\(node.conf)'"))
        try node.write("10-calico.conflist", Self.flannel.replacing("1.0.0", with: "0.2.0"))
        let old = try node.install()
        #expect(old.status == 1)
        #expect(old.stderr.contains("has cniVersion '0.2.0', which weir's plugin does not speak"))
        #expect(try node.types("10-calico.conflist") == ["flannel", "portmap"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: node.bin).isEmpty)
    }

    @Test(arguments: [
        (["--bin-dir", "$R/none"], "--bin-dir '$R/none' does not exist: expected the directory the container "
            + "runtime runs CNI plugins from, such as /opt/cni/bin"),
        (["--conf-dir", "$R/net.d/10-flannel.conflist"], "--conf-dir '$R/net.d/10-flannel.conflist' is not a "
            + "directory: expected the directory of the node's CNI network configs, such as /etc/cni/net.d"),
        (["--agent-socket", "cni.sock"], "--agent-socket 'cni.sock' is not an absolute path: expected"),
        (["--keep-on-exit"], "--keep-on-exit without --watch: expected --keep-on-exit together with --watch"),
        (["--uninstall", "--watch"], "--uninstall and --watch given together: expected --uninstall with only"),
        (["--uninstall", "--fail-open"], "--uninstall and --fail-open given together"),
        (["--conf-dir", "/tmp", "--conf-dir", "/var"], "--conf-dir given twice with different values '/tmp' and "
            + "'/var': expected one value"),
        (["--watchh"], "option '--watchh' is not known: expected an option of weir cni-install"),
    ])
    func badInputChangesNothing(_ extra: [String], _ expected: String) throws {
        let node = try Node()
        try node.write("10-flannel.conflist", Self.flannel)
        // The node's directories unless the row names its own.
        let args = (extra.contains("--bin-dir") ? [] : ["--bin-dir", node.bin])
            + (extra.contains("--conf-dir") ? [] : ["--conf-dir", node.conf])
            + extra.map { $0.replacing("$R", with: node.root) }
        let r = try runCommand([weirBinary, "cni-install"] + args)
        #expect(r.status == 2)
        #expect(r.stdout.isEmpty)
        #expect(r.stderr.hasPrefix("weir: " + expected.replacing("$R", with: node.root)), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
        #expect(try node.types("10-flannel.conflist") == ["flannel", "portmap"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: node.bin).isEmpty)
    }

    /// The primary network plugin rewrites its config (in place, by rename, as a new .conf that sorts first): --watch
    /// puts weir back each time; the binary deleted is put back; SIGTERM removes weir and restores the plugins.
    @Test func watchPutsWeirBackAndSigtermRemovesIt() throws {
        let node = try Node()
        try node.write("10-flannel.conflist", Self.flannel)
        let watcher = try startWatcher(node, [])
        defer { watcher.stop() }
        try watcher.waitFor("event=watching")
        #expect(try node.types("10-flannel.conflist") == ["flannel", "portmap", "weir"])

        // Rewritten in place, without weir.
        try node.write("10-flannel.conflist", Self.flannel.replacing("hairpinMode\": true", with: "hairpinMode\": false"))
        try waitUntil { try node.types("10-flannel.conflist") == ["flannel", "portmap", "weir"] }
        #expect(try node.read("10-flannel.conflist")[member: "plugins"]?.arrayValue?.first?[member: "delegate"]?[
            member: "hairpinMode"] == .bool(false))
        // Replaced by rename, as most plugins write.
        try Self.flannel.write(toFile: node.conf + "/.flannel.tmp", atomically: false, encoding: .utf8)
        #expect(rename(node.conf + "/.flannel.tmp", node.conf + "/10-flannel.conflist") == 0)
        try waitUntil { try node.types("10-flannel.conflist") == ["flannel", "portmap", "weir"] }
        // A new config that sorts first becomes the primary.
        try node.write("05-bridge.conf", Self.bridge)
        try waitUntil { try node.files() == ["05-bridge.conflist", "10-flannel.conflist"] }
        #expect(try node.types("05-bridge.conflist") == ["bridge", "weir"])
        // The binary removed, or overwritten, is put back.
        try FileManager.default.removeItem(atPath: node.bin + "/weir")
        try waitUntil { FileManager.default.contentsEqual(atPath: node.bin + "/weir", andPath: weirBinary) }
        try "#!/bin/sh\n".write(toFile: node.bin + "/weir", atomically: false, encoding: .utf8)
        try waitUntil { FileManager.default.contentsEqual(atPath: node.bin + "/weir", andPath: weirBinary) }

        // Its own writes do not wake it into more writes: quiet for a while, files untouched.
        let settled = try [node.identity(node.conf + "/10-flannel.conflist"),
                           node.identity(node.conf + "/05-bridge.conflist"), node.identity(node.bin + "/weir")]
        let lines = watcher.output.split(separator: "\n").count
        usleep(600_000)
        #expect(watcher.output.split(separator: "\n").count == lines, "\(watcher.output)")
        #expect(try [node.identity(node.conf + "/10-flannel.conflist"),
                     node.identity(node.conf + "/05-bridge.conflist"), node.identity(node.bin + "/weir")] == settled)

        watcher.signal(SIGTERM)
        #expect(watcher.wait() == 0, "\(watcher.output)")
        #expect(try node.read("10-flannel.conflist") == JSONValue.parse(Array(Self.flannel.utf8)))
        #expect(try node.types("05-bridge.conflist") == ["bridge"])
        #expect(!FileManager.default.fileExists(atPath: node.bin + "/weir"))
        #expect(watcher.output.contains("event=stopping signal=SIGTERM keep_on_exit=false"))
    }

    @Test func watchWaitsForThePrimaryConfig() throws {
        let node = try Node()
        let watcher = try startWatcher(node, [])
        defer { watcher.stop() }
        try watcher.waitFor("event=watching")
        #expect(watcher.output.contains("event=waiting"))
        #expect(FileManager.default.fileExists(atPath: node.bin + "/weir"))
        try node.write("10-flannel.conflist", Self.flannel)
        try waitUntil { try node.types("10-flannel.conflist") == ["flannel", "portmap", "weir"] }
        watcher.signal(SIGINT)
        #expect(watcher.wait() == 0)
        #expect(try node.types("10-flannel.conflist") == ["flannel", "portmap"])
    }

    /// An upgrade or a reboot: the entry and the binary stay, so new pods stay blocked until weir is back.
    @Test func keepOnExitLeavesWeirInstalled() throws {
        let node = try Node()
        try node.write("10-flannel.conflist", Self.flannel)
        let watcher = try startWatcher(node, ["--keep-on-exit"])
        defer { watcher.stop() }
        try watcher.waitFor("event=watching")
        watcher.signal(SIGTERM)
        #expect(watcher.wait() == 0)
        #expect(watcher.output.contains("event=stopping signal=SIGTERM keep_on_exit=true"))
        #expect(try node.types("10-flannel.conflist") == ["flannel", "portmap", "weir"])
        #expect(FileManager.default.contentsEqual(atPath: node.bin + "/weir", andPath: weirBinary))
    }

    /// Polls `condition` for up to 5 s (the watcher settles for 100 ms after an event before it looks).
    func waitUntil(_ condition: () throws -> Bool) throws {
        let end = Date().addingTimeInterval(5)
        while Date() < end {
            if (try? condition()) == true { return }
            usleep(20_000)
        }
        #expect(try condition())
    }
}

/// `weir cni-install --watch` on `node`'s directories, running in the background (in the test's own namespace: it
/// only touches files).
func startWatcher(_ node: CNIInstallTests.Node, _ extra: [String]) throws -> BackgroundProcess {
    try BackgroundProcess(nil, [weirBinary, "cni-install", "--watch", "--bin-dir", node.bin, "--conf-dir", node.conf]
                               + extra)
}
