import Foundation
import WeirCore
import WeirTuning

/// A throwaway directory holding a fake /proc/sys, /sys/module and cgroup tree, plus a state directory.
final class FakeNode {
    let root: String
    let stateDir: String

    init(files: [String: String] = FakeNode.defaultFiles) throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("wtt-fake-\(UUID().uuidString)").path
        root = base + "/root"
        stateDir = base + "/state"
        for (path, contents) in files { try write(path, contents) }
    }

    static let defaultFiles: [String: String] = [
        "/proc/sys/net/core/somaxconn": "4096\n",
        "/proc/sys/net/core/netdev_max_backlog": "1000\n",
        "/proc/sys/net/ipv4/tcp_max_syn_backlog": "2048\n",
        "/proc/sys/net/ipv4/ip_local_port_range": "32768\t60999\n",
        "/proc/sys/net/ipv4/tcp_tw_reuse": "2\n",
        "/proc/sys/net/ipv4/tcp_fin_timeout": "60\n",
        "/proc/sys/net/netfilter/nf_conntrack_max": "65536\n",
        "/proc/sys/net/netfilter/nf_conntrack_count": "12\n",
        "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established": "432000\n",
        "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_close_wait": "60\n",
        "/sys/module/nf_conntrack/parameters/hashsize": "16384\n",
        "/sys/devices/system/cpu/online": "0-15\n",
        "/proc/self/cgroup": "0::/weir.service\n",
        "/proc/self/mountinfo": "25 21 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
        "/sys/fs/cgroup/weir.service/cpu.max": "300000 100000\n",
    ]

    var files: SysctlFiles { SysctlFiles(root: root) }

    func write(_ path: String, _ contents: String) throws {
        let url = URL(fileURLWithPath: root + path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try contents.write(to: url, atomically: false, encoding: .utf8)
    }

    func remove(_ path: String) throws {
        try FileManager.default.removeItem(atPath: root + path)
    }

    func read(_ path: String) -> String? {
        try? String(contentsOfFile: root + path, encoding: .utf8)
    }

    func tuner() -> Tuner {
        Tuner(files: files, stateDirectory: stateDir, environment: NodeProbe(files: files).environment())
    }

    var stateExists: Bool { FileManager.default.fileExists(atPath: stateDir + "/tune-state.json") }

    /// Every file below the fake root with its contents, to prove that nothing changed.
    func snapshot() -> [String: String] {
        var result: [String: String] = [:]
        let enumerator = FileManager.default.enumerator(atPath: root)
        while let relative = enumerator?.nextObject() as? String {
            if let text = try? String(contentsOfFile: root + "/" + relative, encoding: .utf8) {
                result[relative] = text
            }
        }
        return result
    }

    deinit {
        try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: root).deletingLastPathComponent().path)
    }
}

/// The repository's profiles/ directory.
let repositoryProfiles: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("profiles").path

