import Foundation
import Testing

/// A throwaway node for pod mode: a network namespace where the CNI bridge lives, the agent runs and a server
/// answers on the bridge's gateway address. Plugins are run exactly as a container runtime runs them: the CNI
/// environment, the network config on stdin, each plugin's result as the next one's `prevResult` (Debian's reference
/// `bridge` with `host-local`, then `weir`), in the node's namespace.
final class CNINode {
    let node: TestNamespace
    let directory: String
    var pods: [TestNamespace] = []
    static let pluginDirectory = "/usr/lib/cni"
    static let gateway = "198.18.64.1"
    let networkName = "weirtest"

    init() throws {
        node = try TestNamespace(prefix: "wtpn")
        directory = NSTemporaryDirectory() + "wpn-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    var runDirectory: String { directory + "/run" }

    func delete() {
        for pod in pods { pod.delete() }
        node.delete()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The chained network: bridge (host-local IPAM, leases in the test's directory), then weir.
    func plugins(weir extra: [String: Any] = [:]) -> [[String: Any]] {
        [["type": "bridge", "bridge": "wpbr0", "isGateway": true, "ipMasq": false,
          "ipam": ["type": "host-local", "dataDir": directory + "/leases",
                   "ranges": [[["subnet": "198.18.64.0/24", "gateway": CNINode.gateway]]]]],
         ["type": "weir", "agentSocket": runDirectory + "/cni.sock"].merging(extra) { _, b in b }]
    }

    /// Runs one plugin as the runtime does; returns its status and stdout.
    func plugin(_ config: [String: Any], command: String, pod: TestNamespace?, containerID: String,
                args: String, prevResult: Any?) throws -> CommandResult {
        var conf = config
        conf["cniVersion"] = "1.0.0"
        conf["name"] = networkName
        if let prevResult { conf["prevResult"] = prevResult }
        let input = String(decoding: try JSONSerialization.data(withJSONObject: conf), as: UTF8.self)
        let type = config["type"] as! String
        let program = type == "weir" ? weirBinary : CNINode.pluginDirectory + "/" + type
        let environment = ["CNI_COMMAND": command, "CNI_CONTAINERID": containerID,
                           "CNI_NETNS": pod.map { "/run/netns/\($0.name)" } ?? "", "CNI_IFNAME": "eth0",
                           "CNI_ARGS": args, "CNI_PATH": CNINode.pluginDirectory]
        return try node.run([program], input: input, environment: environment)
    }

    /// ADD through the whole chain; throws with the failing plugin's output. Returns the final result.
    @discardableResult
    func add(_ pod: TestNamespace, containerID: String, name: String, weir extra: [String: Any] = [:]) throws
        -> [String: Any]
    {
        var previous: Any?
        for config in plugins(weir: extra) {
            let r = try plugin(config, command: "ADD", pod: pod, containerID: containerID, args: args(name),
                               prevResult: previous)
            guard r.status == 0 else { throw HarnessError("ADD \(config["type"]!) exited \(r.status): \(r.stdout)") }
            previous = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
        }
        return previous as! [String: Any]
    }

    /// DEL through the chain in reverse; returns each plugin's result.
    func del(_ pod: TestNamespace?, containerID: String, name: String, prevResult: Any?) throws -> [CommandResult] {
        try plugins().reversed().map {
            try plugin($0, command: "DEL", pod: pod, containerID: containerID, args: args(name), prevResult: prevResult)
        }
    }

    func args(_ name: String) -> String {
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=test;K8S_POD_NAME=\(name);K8S_POD_INFRA_CONTAINER_ID=x;K8S_POD_UID=uid-\(name)"
    }

    func newPod() throws -> TestNamespace {
        let pod = try TestNamespace(prefix: "wtpp")
        pods.append(pod)
        return pod
    }

    func startAgent(_ extra: [String] = []) throws -> BackgroundProcess {
        let agent = try BackgroundProcess(node, [weirBinary, "run", "--pod-mode", "--run-dir", runDirectory,
                                                 "-i", "*", "-b", "*", "--drain-timeout", "1s",
                                                 "--reconcile-interval", "1s"] + extra)
        try agent.waitFor("event=ready", timeout: 15)
        return agent
    }

    /// The address host-local gave the pod's eth0.
    func address(of pod: TestNamespace) throws -> String {
        let out = try pod.exec(["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        guard let field = out.split(separator: " ").first(where: { $0.hasPrefix("198.18.64.") }) else {
            throw HarnessError("no address on eth0: \(out)")
        }
        return String(field.split(separator: "/")[0])
    }

    /// The server outside the pods, in the node namespace on port 80 (its answers start "node:80 "), ready.
    func startServer() throws -> BackgroundProcess {
        let server = try BackgroundProcess(node, ["/usr/bin/python3", CaptureTopology.probeScript, "serve", "node",
                                                  "80"])
        try server.waitFor("ready")
        return server
    }

    /// An application (UID 1000) in `pod` connects to `host:port`: the line the server sent, or "ERR:...".
    func connect(from pod: TestNamespace, _ host: String, _ port: Int) throws -> String {
        try pod.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "/usr/bin/python3",
                     CaptureTopology.probeScript, "connect", host, "\(port)"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct PodModeTests {
    @Test func cniChainAttachesPodsServesBothDirectionsAndSurvivesKill9() throws {
        let n = try CNINode()
        defer { n.delete() }
        let server = try n.startServer()
        defer { server.stop() }
        var agent = try n.startAgent()
        defer { agent.stop() }
        // The socket is root's alone.
        let mode = try FileManager.default.attributesOfItem(atPath: n.runDirectory + "/cni.sock")[.posixPermissions]
        #expect(mode as? Int == 0o600)

        let a = try n.newPod(), b = try n.newPod()
        let resultA = try n.add(a, containerID: "ca", name: "a")
        try n.add(b, containerID: "cb", name: "b")
        // weir passes the bridge's result through unchanged.
        #expect((resultA["ips"] as? [[String: Any]])?.first?["address"] as? String != nil, "\(resultA)")
        let addressA = try n.address(of: a)

        // Outbound: captured in the pod, forwarded from the pod's own namespace (the server sees the pod's address).
        let out = try n.connect(from: a, CNINode.gateway, 80)
        #expect(out.hasPrefix("node:80 ") && out.hasSuffix("peer=\(addressA)"), "\(out)")
        #expect(try n.connect(from: b, CNINode.gateway, 80).hasPrefix("node:80 "))
        // Inbound: the application in the pod sees the hand-off address 127.0.0.6.
        let app = try BackgroundProcess(a, ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
                                            "/usr/bin/python3", CaptureTopology.probeScript, "serve", "app", "8080"])
        defer { app.stop() }
        try app.waitFor("ready")
        let inbound = try n.node.run(["/usr/bin/python3", CaptureTopology.probeScript, "connect", addressA, "8080"])
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(inbound.hasPrefix("app:8080 ") && inbound.hasSuffix("peer=127.0.0.6"), "\(inbound)")

        let (status, pods) = try adminGet(n.node, "/pods")
        #expect(status == 200)
        #expect(pods.contains("\"name\": \"a\"") && pods.contains("\"name\": \"b\""), "\(pods)")
        #expect(!pods.contains("\"pending\"") && !pods.contains("\"failed\""), "\(pods)")
        #expect(try adminGet(n.node, "/readyz") == (200, "ready\n"))
        let metrics = try adminGet(n.node, "/metrics").1
        #expect(metrics.contains("weir_pod_connections_accepted_total{direction=\"outbound\",pod=\"test/a\"} 1\n"),
                "\(metrics)")
        #expect(metrics.contains("weir_pod_connections_accepted_total{direction=\"inbound\",pod=\"test/a\"} 1\n"))
        #expect(metrics.contains("weir_pods{state=\"up\"} 2\n"))
        let status2 = try n.node.weir(["status"]).stdout
        #expect(status2.contains("test/a") && status2.contains("pods: 2 (2 up)"), "\(status2)")

        // Each pod's application connects to a port the node drops: the agent's upstream, made in the pod's
        // namespace, stays in SYN_SENT with weir's conntrack mark (UpstreamConntrack).
        try n.node.exec(["nft", "-f", "-"], input: """
            table inet wtdrop {
              chain input {
                type filter hook input priority 0; policy accept;
                tcp dport 8082 drop
              }
            }

            """)
        let connecting = ["conntrack", "-L", "-p", "tcp", "--dport", "8082", "--state", "SYN_SENT",
                          "--mark", "2003134834"]
        var holders: [BackgroundProcess] = []
        defer { holders.forEach { $0.stop() } }
        for pod in [a, b] {
            holders.append(try BackgroundProcess(pod, ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
                                                       "/usr/bin/python3", "-u", "-c", """
                import socket, time
                s = socket.create_connection(("\(CNINode.gateway)", 8082), timeout=5)
                print("CONNECTED", flush=True)
                time.sleep(60)
                """]))
            try holders.last!.waitFor("CONNECTED")
            #expect(try eventually { try pod.run(connecting).stdout.contains("dport=8082") })
        }
        // And a live socket of the proxy's UID in pod a, connecting there too (not captured: that UID is the proxy's):
        // the same mark and state, but its socket exists, so a sweep must spare it.
        let live = try BackgroundProcess(a, ["setpriv", "--reuid=1337", "--regid=1337", "--clear-groups",
                                             "/usr/bin/python3", "-c", """
            import socket
            try: socket.create_connection(("\(CNINode.gateway)", 8082), timeout=60)
            except Exception: pass
            """])
        defer { live.stop() }
        let entriesIn = { (pod: TestNamespace) in
            try pod.run(connecting).stdout.split(separator: "\n").filter { $0.contains("dport=8082") }.count
        }
        #expect(try eventually { try entriesIn(a) == 2 })

        // kill -9: the pods' tables persist, so an application's connection is refused, never sent around the
        // proxy; a new agent re-attaches both pods from the registry. Once they are served, it deletes the upstream
        // entries the killed agent left connecting there, in the background, and spares the live socket's.
        agent.signal(SIGKILL)
        _ = agent.wait()
        #expect(try n.connect(from: a, CNINode.gateway, 80).hasPrefix("ERR"))
        agent = try n.startAgent()
        try agent.waitFor("event=pods_restored attached=2 dropped=0")
        try agent.waitFor("event=pods_swept pods=2 deleted=2 ")
        #expect(agent.output.contains("event=conntrack_stale_deleted count=1 pod=test/a gone=0 spared=1 "),
                "\(agent.output)")
        #expect(agent.output.contains("event=conntrack_stale_deleted count=1 pod=test/b gone=0 spared=0 "))
        #expect(try entriesIn(a) == 1)
        #expect(try entriesIn(b) == 0)
        #expect(metricValue(try adminGet(n.node, "/metrics").1, "weir_conntrack_stale_deleted_total") == 2)
        #expect(try n.connect(from: a, CNINode.gateway, 80).hasPrefix("node:80 "))
        #expect(try n.connect(from: b, CNINode.gateway, 80).hasPrefix("node:80 "))

        // DEL takes everything of weir out of the pod, and is idempotent.
        for _ in 0..<2 {
            let results = try n.del(a, containerID: "ca", name: "a", prevResult: resultA)
            #expect(results.allSatisfy { $0.status == 0 }, "\(results)")
        }
        #expect(!(try a.exec(["nft", "list", "tables"])).contains("weir"))
        #expect(!(try a.exec(["ss", "-ltn"])).contains(":15001"))
        #expect(!(try a.exec(["ip", "addr", "show", "dev", "lo"])).contains("::6/128"))
        #expect(!(try adminGet(n.node, "/pods").1).contains("\"name\": \"a\""))
        // DEL of a pod whose namespace is already gone succeeds too.
        b.delete()
        let gone = try n.del(nil, containerID: "cb", name: "b", prevResult: nil)
        #expect(gone.first?.status == 0, "\(gone)")
        #expect(try adminGet(n.node, "/pods").1 == "[]\n")

        agent.signal(SIGTERM)
        #expect(agent.wait() == 0)
    }

    @Test func pluginFailsClosedWithoutAnAgentAndAnswersVersionAndStatus() throws {
        let n = try CNINode()
        defer { n.delete() }
        let pod = try n.newPod()
        // No agent: ADD fails with a CNI error object on stdout, and the pod is not started uncaptured.
        var previous: Any?
        let bridge = try n.plugin(n.plugins()[0], command: "ADD", pod: pod, containerID: "c1", args: n.args("p"),
                                  prevResult: nil)
        #expect(bridge.status == 0, "\(bridge.stderr)")
        previous = try JSONSerialization.jsonObject(with: Data(bridge.stdout.utf8))
        let add = try n.plugin(n.plugins()[1], command: "ADD", pod: pod, containerID: "c1", args: n.args("p"),
                               prevResult: previous)
        #expect(add.status != 0)
        let error = try JSONSerialization.jsonObject(with: Data(add.stdout.utf8)) as? [String: Any]
        #expect(error?["code"] as? Int != nil && (error?["msg"] as? String)?.contains("not reachable") == true,
                "\(add.stdout)")
        // With failOpen the pod starts, uncaptured, and the plugin says so on stderr.
        let open = try n.plugin(n.plugins(weir: ["failOpen": true])[1], command: "ADD", pod: pod, containerID: "c1",
                                args: n.args("p"), prevResult: previous)
        #expect(open.status == 0, "\(open.stdout)")
        // VERSION and STATUS answer.
        let version = try n.plugin(n.plugins()[1], command: "VERSION", pod: nil, containerID: "", args: "",
                                   prevResult: nil)
        #expect(version.status == 0 && version.stdout.contains("1.0.0") && version.stdout.contains("0.4.0"))
        let down = try n.plugin(n.plugins()[1], command: "STATUS", pod: nil, containerID: "", args: "",
                                prevResult: nil)
        #expect(down.status != 0 && down.stdout.contains("50"), "\(down.stdout)")
        let agent = try n.startAgent()
        defer { agent.stop() }
        let up = try n.plugin(n.plugins()[1], command: "STATUS", pod: nil, containerID: "", args: "",
                              prevResult: nil)
        #expect(up.status == 0, "\(up.stdout)")
    }

    @Test func perPodCeilingWaitsAndTheBudgetRefusesWithAClearError() throws {
        let n = try CNINode()
        defer { n.delete() }
        let server = try n.startServer()
        defer { server.stop() }
        // 64 descriptors: the agent's own and a few pods' worth (2 workers x 4 listeners + 4 per pod).
        let agent = try BackgroundProcess(n.node, [weirBinary, "run", "--pod-mode", "--run-dir", n.runDirectory,
                                                   "-i", "*", "-b", "*", "--workers", "2", "--max-connections", "8",
                                                   "--max-connections-per-pod", "1"],
                                          shellPrefix: "ulimit -n 100;")
        defer { agent.stop() }
        try agent.waitFor("event=ready", timeout: 15)
        var refused: String?
        for i in 0..<8 {
            let pod = try n.newPod()
            do {
                try n.add(pod, containerID: "c\(i)", name: "p\(i)")
            } catch {
                refused = "\(error)"
                break
            }
        }
        #expect(refused?.contains("descriptor budget spent") == true, "\(refused ?? "nothing refused")")
        #expect(agent.process.isRunning)
        #expect(agent.output.contains("event=pod_refused"))
        // At the ceiling of 1, a second connection of the same pod waits in the pod's own accept queue (the workers
        // stop accepting for it) until the first closes; another pod is not affected.
        let holdServer = try BackgroundProcess(n.node, ["/usr/bin/python3", "-c", """
            import socket, threading
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", 8080)); s.listen(16); print("ready", flush=True)
            def hold(c):
                c.recv(1); c.close()  # held until the client goes
            while True:
                c, _ = s.accept(); threading.Thread(target=hold, args=(c,), daemon=True).start()
            """])
        defer { holdServer.stop() }
        try holdServer.waitFor("ready")
        let hold = try BackgroundProcess(n.pods[0], ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
                                                     "/usr/bin/python3", "-c", """
            import socket, time
            s = socket.create_connection(("\(CNINode.gateway)", 8080)); print("held", flush=True); time.sleep(30)
            """])
        defer { hold.stop() }
        try hold.waitFor("held")
        usleep(200_000)
        let waiting = try BackgroundProcess(n.pods[0], ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
                                                        "/usr/bin/python3", "-c", """
            import socket, time
            s = socket.create_connection(("\(CNINode.gateway)", 80), timeout=10); t = time.time()
            print("connected", flush=True); line = s.recv(200)
            print("served after %.1f s: %s" % (time.time() - t, line.decode().strip()), flush=True)
            """])
        defer { waiting.stop() }
        try waiting.waitFor("connected")
        #expect(try n.connect(from: n.pods[1], CNINode.gateway, 80).hasPrefix("node:80 "))
        usleep(700_000)
        #expect(!waiting.output.contains("served"), "\(waiting.output)")
        hold.stop()
        try waiting.waitFor("served after", timeout: 5)
        #expect(waiting.output.contains("node:80 "), "\(waiting.output)")
        let metrics = try adminGet(n.node, "/metrics").1
        #expect(!metrics.contains("weir_pod_ceiling_pauses_total{pod=\"test/p0\"} 0\n"), "\(metrics)")
    }

    @Test func perPodRateCeilingMakesAStormWaitAndLeavesOtherPodsAlone() throws {
        let n = try CNINode()
        defer { n.delete() }
        let server = try n.startServer()
        defer { server.stop() }
        // One new connection per second per pod, a burst of one.
        let agent = try n.startAgent(["--max-connection-rate-per-pod", "1"])
        defer { agent.stop() }
        let a = try n.newPod(), b = try n.newPod()
        try n.add(a, containerID: "ca", name: "pa")
        try n.add(b, containerID: "cb", name: "pb")
        let config = try adminGet(n.node, "/config").1
        #expect(config.contains("\"max_connection_rate_per_pod\": 1") || config.contains("\"max_connection_rate_per_pod\":1"),
                "\(config)")
        // Pod A: one connection served, then three more at once: past the rate, they wait in A's own accept queue
        // (connected, no answer yet) and are served one a second. Each prints when it was served.
        let storm = try BackgroundProcess(a, ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
                                              "/usr/bin/python3", "-c", """
            import socket, time
            first = socket.create_connection(("\(CNINode.gateway)", 80), timeout=10)
            print("first", first.recv(200).decode().strip(), flush=True); t = time.time()
            more = [socket.create_connection(("\(CNINode.gateway)", 80), timeout=10) for _ in range(3)]
            print("connected", flush=True)
            for i, s in enumerate(more):
                line = s.recv(200).decode().strip()
                print("served %d after %.2f s: %s" % (i, time.time() - t, line), flush=True)
            """])
        defer { storm.stop() }
        try storm.waitFor("connected", timeout: 10)
        #expect(storm.output.contains("first node:80 "), "\(storm.output)")
        // Pod B is not held by A's rate: served while A's connections wait.
        #expect(try n.connect(from: b, CNINode.gateway, 80).hasPrefix("node:80 "))
        try storm.waitFor("served 2 after", timeout: 10)
        let served = storm.output.split(separator: "\n").filter { $0.hasPrefix("served") }
        #expect(served.count == 3 && served.allSatisfy { $0.contains("node:80 ") }, "\(storm.output)")
        // The third waited for its turn: at one a second, about three seconds after the first (never under two).
        if let last = served.last, let secs = Double(last.split(separator: " ")[3]) {
            #expect(secs >= 2.0, "\(storm.output)")
        } else {
            Issue.record("no time in \(storm.output)")
        }
        let metrics = try adminGet(n.node, "/metrics").1
        #expect(metrics.contains("weir_pod_rate_pauses_total{pod=\"test/pa\"}"), "\(metrics)")
        #expect(!metrics.contains("weir_pod_rate_pauses_total{pod=\"test/pa\"} 0\n"), "\(metrics)")
        #expect(metrics.contains("weir_pod_rate_pauses_total{pod=\"test/pb\"} 0\n"), "\(metrics)")
    }
}

@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct PodModeLifecycleTests {
    @Test func recreatedSandboxReplacesDriftIsRepairedPerPodAndReloadKeepsPodsServed() throws {
        let n = try CNINode()
        defer { n.delete() }
        let server = try n.startServer()
        defer { server.stop() }
        let config = n.directory + "/weir.conf"
        try "WEIR_IDLE_TIMEOUT=1h\n".write(toFile: config, atomically: true, encoding: .utf8)
        let agent = try n.startAgent(["--config", config])
        defer { agent.stop() }
        let first = try n.newPod()
        let result = try n.add(first, containerID: "c1", name: "a")
        // Attached twice (the weir plugin called again, as a runtime retrying ADD would): nothing changes.
        let again = try n.plugin(n.plugins()[1], command: "ADD", pod: first, containerID: "c1", args: n.args("a"),
                                 prevResult: result)
        #expect(again.status == 0, "\(again.stdout)")
        #expect(agent.output.components(separatedBy: "event=pod_attached").count == 2)

        // The sandbox is recreated: same pod (same UID), a new namespace. The old one is let go.
        let second = try n.newPod()
        try n.add(second, containerID: "c2", name: "a")
        try agent.waitFor("event=pod_replaced pod=test/a")
        let pods = try adminGet(n.node, "/pods").1
        #expect(pods.contains("/run/netns/\(second.name)") && !pods.contains("/run/netns/\(first.name)"), "\(pods)")
        #expect(!(try first.exec(["ss", "-ltn"])).contains(":15001"))
        #expect(try n.connect(from: second, CNINode.gateway, 80).hasPrefix("node:80 "))
        // A DEL of the old sandbox (its container id) leaves the new one alone.
        _ = try n.del(first, containerID: "c1", name: "a", prevResult: nil)
        #expect(try adminGet(n.node, "/pods").1.contains("\"state\": \"up\""))

        // Drift inside the pod (the ::6 hand-off address removed) is repaired by the next reconcile and counted
        // with the pod's label.
        try second.exec(["ip", "addr", "del", "::6/128", "dev", "lo"])
        var repaired = false
        for _ in 0..<40 where !repaired {
            usleep(100_000)
            repaired = try adminGet(n.node, "/metrics").1.contains("weir_pod_repairs_total{pod=\"test/a\"} 1\n")
        }
        #expect(repaired)
        #expect(try second.exec(["ip", "addr", "show", "dev", "lo"]).contains("::6/128"))

        // A reload that replaces the data plane (new proxy settings) moves the pods' listeners to it: the same
        // sockets (by inode), none closed.
        let podSockets = { () throws -> [String] in
            try second.exec(["ss", "-Hltne", "( sport = :15001 or sport = :15006 )"]).split(separator: " ")
                .filter { $0.hasPrefix("ino:") }.map(String.init).sorted()
        }
        let before = try podSockets()
        #expect(!before.isEmpty)
        try "WEIR_IDLE_TIMEOUT=30m\n".write(toFile: config, atomically: true, encoding: .utf8)
        agent.signal(SIGHUP)
        try agent.waitFor("proxy=replaced")
        #expect(try podSockets() == before)
        // Every pod's sockets (and the node's, if any) were taken: none left over to close.
        let lendLine = agent.output.split(separator: "\n").first { $0.contains("event=reload_listeners") } ?? ""
        #expect(lendLine.hasSuffix(" closed=0") && !lendLine.contains(" kept=0 "), "\(agent.output)")
        #expect(try n.connect(from: second, CNINode.gateway, 80).hasPrefix("node:80 "))
        #expect(try adminGet(n.node, "/readyz") == (200, "ready\n"))

        // Uninstall: the agent stops (the pod's table persists: fail closed), then weir clean --pods takes weir out
        // of every pod of the registry, and the registry with it.
        agent.signal(SIGTERM)
        #expect(agent.wait(timeout: 10) == 0)
        #expect(try second.exec(["nft", "list", "tables"]).contains("table inet weir"))
        let clean = try n.node.weir(["clean", "--pods", "--run-dir", n.runDirectory])
        #expect(clean.status == 0 && clean.stdout.contains("pod test/a: removed table inet weir"), "\(clean.stdout)")
        #expect(!(try second.exec(["nft", "list", "tables"])).contains("weir"))
        #expect(!FileManager.default.fileExists(atPath: n.runDirectory + "/pods.json"))
    }
}
