import Foundation
import Testing

/// Zero loss across a replacement: `weir run --takeover` takes the running agent's listeners and live connections,
/// under load, with nothing reset, refused or corrupted; an unprivileged user can neither squat the locks nor catch
/// a capture port meanwhile.
@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct HandoverTests {
    /// An agent in `pod` (the application's namespace) and an echo server next door.
    final class Setup {
        let pod: TestNamespace
        let peer: TestNamespace
        let runDirectory: String
        var processes: [BackgroundProcess] = []

        init() throws {
            pod = try TestNamespace(prefix: "wtho")
            peer = try TestNamespace(prefix: "wtho")
            runDirectory = NSTemporaryDirectory() + "wtho-run-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try pod.link(to: peer, localName: "eth0", peerName: "eth0", localAddresses: ["198.18.5.1/24"],
                         peerAddresses: ["198.18.5.2/24"])
            let echo = try BackgroundProcess(peer, ["/usr/bin/python3", HandoverTests.loadScript, "echo", "7000"])
            processes.append(echo)
            try echo.waitFor("ready")
        }

        func agent(_ extra: [String] = [], environment: String = "") throws -> BackgroundProcess {
            let args = [weirBinary, "run", "--run-dir", runDirectory, "-i", "*", "-b", "*", "--drain-timeout", "3s",
                        "--admin-address", "127.0.0.1:15020"] + extra
            let p = try BackgroundProcess(pod, args, shellPrefix: environment.isEmpty ? nil : environment)
            processes.append(p)
            try p.waitFor("event=ready", timeout: 15)
            return p
        }

        /// An application (UID 1000) holding `streams` connections that echo a line each every 20 ms, and opening
        /// and closing a new connection every 10 ms, for `seconds`; prints its counts at the end.
        func load(streams: Int, seconds: Double) throws -> BackgroundProcess {
            let p = try BackgroundProcess(pod, ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
                                                "/usr/bin/python3", HandoverTests.loadScript, "client",
                                                "198.18.5.2", "7000", "\(streams)", "\(seconds)"])
            processes.append(p)
            try p.waitFor("connected")
            return p
        }

        func delete() {
            for p in processes { p.stop() }
            pod.delete()
            peer.delete()
            try? FileManager.default.removeItem(atPath: runDirectory)
        }
    }

    static var loadScript: String { CaptureTopology.probeScript.replacingOccurrences(of: "probe.py", with: "load.py") }

    func counts(_ output: String) -> [String: Int] {
        var out: [String: Int] = [:]
        for field in output.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            let kv = field.split(separator: "=")
            if kv.count == 2, let v = Int(kv[1]) { out[String(kv[0])] = v }
        }
        return out
    }

    @Test func takeoverMovesListenersAndLiveConnectionsUnderLoad() throws {
        let s = try Setup()
        defer { s.delete() }
        let first = try s.agent()
        let load = try s.load(streams: 100, seconds: 4)
        usleep(500_000)
        // Twice: each new agent takes over from the one before.
        let second = try s.agent(["--takeover"])
        #expect(first.wait(timeout: 10) == 0, "\(first.output)")
        #expect(first.output.contains("event=handover_done"), "\(first.output)")
        usleep(800_000)
        let third = try s.agent(["--takeover"])
        #expect(second.wait(timeout: 10) == 0, "\(second.output)")
        #expect(load.wait(timeout: 15) == 0)
        let c = counts(load.output)
        #expect(c["streams"] == 100 && (c["rounds"] ?? 0) > 20 && (c["new"] ?? 0) > 40, "\(load.output)")
        #expect(c["stream_errors"] == 0 && c["new_errors"] == 0, "\(load.output)")
        // Every stream moved, with nothing lost; the load's two new connections of a round may be open at that
        // moment and move too.
        let done = third.output.split(separator: "\n").first { $0.contains("event=takeover_done") }.map(String.init)
        let moved = done.flatMap { counts($0)["connections"] } ?? 0
        #expect(done?.contains(" lost=0") == true && (100...102).contains(moved), "\(third.output)")
        // The counters go on: every connection accepted by the three agents, in one series.
        let metrics = try adminGet(s.pod, "/metrics").1
        let accepted = metrics.split(separator: "\n").first { $0.hasPrefix("weir_proxy_connections_accepted_total ") }
        #expect(Int(accepted?.split(separator: " ").last ?? "") ?? 0 >= 100 + (c["new"] ?? 0), "\(accepted ?? "")")
        // Without --takeover a second agent is refused, naming the holder and the way out.
        let refused = try s.pod.weir(["run", "--run-dir", s.runDirectory, "-i", "*", "--admin-address",
                                      "127.0.0.1:15021"])
        #expect(refused.status == 1 && refused.stderr.contains("weir run --takeover"), "\(refused.stderr)")
        third.signal(SIGTERM)
        #expect(third.wait(timeout: 10) == 0)
    }

    @Test func aSuccessorOfAnotherHandoverVersionTakesTheListenersAndTheOldAgentDrains() throws {
        let s = try Setup()
        defer { s.delete() }
        let old = try s.agent([], environment: "export WEIR_HANDOVER_VERSION=999;")
        let load = try s.load(streams: 20, seconds: 2)
        let new = try s.agent(["--takeover"])
        #expect(new.output.contains("event=handover_fallback"), "\(new.output)")
        #expect(old.output.contains("event=handover_done") && old.output.contains("draining here"), "\(old.output)")
        // The old agent serves its connections until they end (the drain), then exits; new ones go to the new agent.
        #expect(load.wait(timeout: 15) == 0)
        let c = counts(load.output)
        #expect(c["stream_errors"] == 0 && c["new_errors"] == 0, "\(load.output)")
        #expect(old.wait(timeout: 15) == 0, "\(old.output)")
        #expect(new.process.isRunning)
    }

    @Test func anUnprivilegedUserCanNeitherSquatTheLocksNorCatchACapturePort() throws {
        let s = try Setup()
        defer { s.delete() }
        // The run directory is root's and 0700: a user cannot create the lock before weir, nor hold it.
        let first = try s.agent(["--after-handover", "wait"])
        let mode = try FileManager.default.attributesOfItem(atPath: s.runDirectory)[.posixPermissions] as? Int
        #expect(mode == 0o700)
        let squat = try s.pod.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", "/usr/bin/python3",
                                   "-c", "import fcntl; f = open('\(s.runDirectory)/agent.lock'); fcntl.flock(f, 2)"])
        #expect(squat.status != 0 && squat.stderr.contains("Permission denied"), "\(squat.stderr)")
        // Through a takeover, a user trying to bind 15001 and 15006 in a loop never gets them.
        let squatter = try BackgroundProcess(s.pod, ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
                                                     "/usr/bin/python3", "-c", """
            import socket, time
            got = tries = 0
            print("trying", flush=True)
            end = time.time() + 3
            while time.time() < end:
                for port in (15001, 15006):
                    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                    try:
                        s.bind(("0.0.0.0", port)); s.listen(1); got += 1
                    except OSError:
                        pass
                    s.close(); tries += 1
            print("tries=%d got=%d" % (tries, got), flush=True)
            """])
        try squatter.waitFor("trying")
        let second = try s.agent(["--takeover"])
        // --after-handover wait: the old agent holds nothing and idles until SIGTERM (a DaemonSet's old pod).
        try first.waitFor("event=handed_over_waiting")
        #expect(first.process.isRunning)
        first.signal(SIGTERM)
        #expect(first.wait(timeout: 10) == 0)
        #expect(squatter.wait(timeout: 10) == 0)
        let c = counts(squatter.output)
        #expect((c["tries"] ?? 0) > 100 && c["got"] == 0, "\(squatter.output)")
        #expect(try adminGet(s.pod, "/readyz") == (200, "ready\n"))
        second.signal(SIGTERM)
        #expect(second.wait(timeout: 10) == 0, "\(second.output)")
    }
}
