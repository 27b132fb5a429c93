import Foundation
import Testing

/// The containers of deploy/kubernetes/*.yaml as the kubelet would run them: each DaemonSet's init containers and
/// containers (name and args, in order) and each ConfigMap's data, read with PyYAML.
private struct Manifests {
    /// Per DaemonSet: (name, args, capabilities added, privileged) of each init container and container.
    let daemonSets: [String: (initContainers: [Container], containers: [Container])]
    typealias Container = (name: String, args: [String], caps: [String], privileged: Bool)
    let configMaps: [String: [String: String]]

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../deploy/kubernetes").standardized.path

    init(_ files: [String]) throws {
        let script = """
            import json, sys, yaml
            out = {"ds": {}, "cm": {}}
            for f in sys.argv[1:]:
                for d in yaml.safe_load_all(open(f)):
                    if d["kind"] == "DaemonSet":
                        spec = d["spec"]["template"]["spec"]
                        sc = lambda c: c.get("securityContext", {})
                        pick = lambda cs: [[c["name"], [str(a) for a in c.get("args", [])],
                                            sc(c).get("capabilities", {}).get("add", []),
                                            sc(c).get("privileged", False)] for c in cs]
                        out["ds"][d["metadata"]["name"]] = [pick(spec.get("initContainers", [])), pick(spec["containers"])]
                    elif d["kind"] == "ConfigMap":
                        out["cm"][d["metadata"]["name"]] = d["data"]
            print(json.dumps(out))
            """
        let r = try runCommand(["/usr/bin/python3", "-c", script] + files.map { Self.directory + "/" + $0 })
        guard r.status == 0, let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
              let ds = json["ds"] as? [String: [[[Any]]]], let cm = json["cm"] as? [String: [String: String]]
        else { throw HarnessError("reading the manifests: \(r.stderr)") }
        func containers(_ list: [[Any]]) -> [Container] {
            list.map { ($0[0] as? String ?? "", $0[1] as? [String] ?? [], $0[2] as? [String] ?? [],
                        $0[3] as? Bool ?? false) }
        }
        daemonSets = ds.mapValues { (containers($0[0]), containers($0[1])) }
        configMaps = cm
    }
}

/// Install and uninstall as the manifests say, against the real binary in a namespace standing in for a node: the
/// DaemonSet's init container tunes, its container runs with the ConfigMap's file and answers the probes where the
/// manifest points them, its cni-install container puts the CNI plugin into the node's conflist; deleting it leaves
/// the capture and the plugin (fail closed); the clean-up DaemonSet's containers take the plugin out, revert the
/// tuning and remove everything, and its last container waits until SIGTERM.
@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct KubernetesManifestTests {
    @Test func installThenUninstallLeavesTheNodeClean() throws {
        let m = try Manifests(["daemonset.yaml", "cleanup.yaml"])
        let weir = try #require(m.daemonSets["weir"])
        let cleanup = try #require(m.daemonSets["weir-cleanup"])
        let conf = try #require(m.configMaps["weir-config"]?["weir.conf"])
        #expect(weir.initContainers.map(\.name) == ["tune"] && weir.containers.map(\.name) == ["weir", "cni-install"])
        #expect(cleanup.initContainers.map(\.name) == ["cni-uninstall", "revert-tuning", "clean"])
        #expect(cleanup.containers.map(\.name) == ["clean-and-wait"])
        // Only tuning is privileged; the long-running containers are not, and the installer has no capability.
        #expect(weir.initContainers[0].privileged && !weir.containers[0].privileged && !weir.containers[1].privileged)
        #expect(weir.containers[0].caps.sorted() == ["NET_ADMIN", "SETGID", "SETUID", "SYS_ADMIN"])
        #expect(weir.containers[1].caps.isEmpty && cleanup.initContainers[0].caps.isEmpty)

        /// A container's command line: weir with only the capabilities the manifest gives it (root keeps no other
        /// capability across exec once the bounding set is cut), or all of them when it is privileged.
        func command(_ c: Manifests.Container, _ local: (String) -> String) -> [String] {
            let caps = c.privileged ? [] : ["setpriv", "--bounding-set=-all"
                + c.caps.map { ",+" + $0.lowercased() }.joined(), "--"]
            return caps + [weirBinary] + c.args.map(local)
        }

        try withInboundNamespaces { node, other in
            // The node's paths, in a throwaway directory.
            let root = NSTemporaryDirectory() + "wtk-node-\(UInt32.random(in: 0...UInt32.max))"
            try FileManager.default.createDirectory(atPath: root + "/state", withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            defer { try? FileManager.default.removeItem(atPath: root) }
            let profiles = URL(fileURLWithPath: Manifests.directory + "/../../profiles").standardized.path
            func local(_ text: String) -> String {
                text.replacingOccurrences(of: "/var/lib/weir", with: root + "/state")
                    .replacingOccurrences(of: "/etc/weir/profiles", with: profiles)
                    .replacingOccurrences(of: "/etc/weir/weir.conf", with: root + "/weir.conf")
                    .replacingOccurrences(of: "/run/weir", with: root + "/run")
                    .replacingOccurrences(of: "/host/opt/cni/bin", with: root + "/cni-bin")
                    .replacingOccurrences(of: "/host/etc/cni/net.d", with: root + "/cni-conf")
            }
            try local(conf).write(toFile: root + "/weir.conf", atomically: true, encoding: .utf8)
            // The node's network plugin's config, and the directories the DaemonSet's hostPath volumes create.
            for dir in ["run", "cni-bin", "cni-conf"] {
                try FileManager.default.createDirectory(atPath: root + "/" + dir, withIntermediateDirectories: true)
            }
            let primary = #"{"cniVersion": "1.0.0", "name": "k8s", "plugins": [{"type": "ptp"}, {"type": "portmap"}]}"#
            try primary.write(toFile: root + "/cni-conf/10-k8s.conflist", atomically: true, encoding: .utf8)
            func pluginTypes() throws -> [String] {
                let text = try String(contentsOfFile: root + "/cni-conf/10-k8s.conflist", encoding: .utf8)
                let list = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
                return (list?["plugins"] as? [[String: Any]] ?? []).map { $0["type"] as? String ?? "?" }
            }
            let backlog = try node.exec(["sysctl", "-n", "net.ipv4.tcp_max_syn_backlog"])

            // Install: the init container tunes (the namespace's own keys), the agent starts and is probed.
            let tune = try node.run(command(weir.initContainers[0], local))
            #expect(tune.status == 0, "\(tune.stdout)\(tune.stderr)")
            #expect(try node.exec(["sysctl", "-n", "net.ipv4.tcp_max_syn_backlog"]) != backlog)
            let agent = try BackgroundProcess(node, command(weir.containers[0], local))
            defer { agent.stop() }
            let installer = try BackgroundProcess(node, command(weir.containers[1], local))
            defer { installer.stop() }
            try agent.waitFor("event=ready", timeout: 20)
            try installer.waitFor("event=watching")
            #expect(try pluginTypes() == ["ptp", "portmap", "weir"])
            // The plugin the installer put in place reaches the agent over the socket in the shared run directory.
            let status = try node.run([root + "/cni-bin/weir"], input: #"{"cniVersion": "1.0.0", "name": "k8s", "#
                + #""type": "weir", "agentSocket": "\#(root)/run/cni.sock"}"#, environment: ["CNI_COMMAND": "STATUS"])
            #expect(status.status == 0, "\(status.stdout)\(status.stderr)")
            #expect(try adminGet(node, "/readyz").0 == 200)
            #expect(try adminGet(node, "/healthz").0 == 200)
            // The admin port is loopback only; metrics are on the node's address.
            #expect(try adminGet(other, "/healthz").0 == 0)
            #expect(try runCommand(["ip", "netns", "exec", other.name, "/usr/bin/python3", "-c",
                                    "import urllib.request; print(urllib.request.urlopen('http://198.18.1.1:15090/metrics').status)"])
                .stdout == "200\n")

            // kubectl delete daemonset weir: SIGTERM, drain, exit 0; the capture stays (fail closed), and so does the
            // plugin (new pods stay blocked rather than start uncaptured).
            agent.signal(SIGTERM)
            installer.signal(SIGTERM)
            #expect(agent.wait(timeout: 30) == 0)
            #expect(installer.wait(timeout: 10) == 0)
            #expect(try node.exec(["nft", "list", "tables"]).contains("table inet weir"))
            #expect(try pluginTypes() == ["ptp", "portmap", "weir"])
            #expect(FileManager.default.fileExists(atPath: root + "/cni-bin/weir"))

            // The clean-up DaemonSet: revert the tuning, clean, then clean again and wait.
            for c in cleanup.initContainers {
                let r = try node.run(command(c, local))
                #expect(r.status == 0, "\(c.name): \(r.stdout)\(r.stderr)")
            }
            #expect(try node.exec(["sysctl", "-n", "net.ipv4.tcp_max_syn_backlog"]) == backlog)
            #expect(try pluginTypes() == ["ptp", "portmap"])
            #expect(!FileManager.default.fileExists(atPath: root + "/cni-bin/weir"))
            #expect(!(try node.exec(["nft", "list", "tables"]).contains("weir")))
            #expect(!(try node.exec(["ip", "rule", "list"]).contains("proto 0x")))
            let waiting = try BackgroundProcess(node, command(cleanup.containers[0], local))
            defer { waiting.stop() }
            try waiting.waitFor("waiting for SIGTERM")
            usleep(300_000)
            #expect(waiting.process.isRunning)
            waiting.signal(SIGTERM)
            #expect(waiting.wait(timeout: 5) == 0)
        }
    }
}
