import Foundation
import Testing

/// istio-iptables' flags beyond the ruleset: another network namespace, validation, cleanup-only, skip-rule-apply,
/// force-apply, istio's spellings of booleans and its logging flags, run through the real binary.
@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct IstioFlagsTests {
    /// What weir may have changed in a namespace: its ruleset, ip rules, routes and addresses.
    func snapshot(_ ns: TestNamespace) throws -> String {
        try ["nft list ruleset", "ip -4 rule", "ip -6 rule", "ip -4 route show table all", "ip -6 route show table all",
             "ip -6 addr show dev lo"].map { try ns.exec($0.split(separator: " ").map(String.init)) }.joined()
    }

    @Test func actsInAnotherNamespaceAndLeavesItsOwnAlone() throws {
        let node = try TestNamespace(prefix: "wti")
        let pod = try TestNamespace(prefix: "wti")
        defer { node.delete(); pod.delete() }
        let nodeBefore = try snapshot(node)
        // The pod namespace by name and by /proc/PID/ns/net of a process inside it.
        let sleeper = try BackgroundProcess(pod, ["sleep", "60"])
        defer { sleeper.stop() }
        for path in ["/var/run/netns/\(pod.name)", "/proc/\(sleeper.pid)/ns/net"] {
            let applied = try node.weir(["rules", "--network-namespace", path, "-m", "TPROXY", "-b", "*",
                                         "--redirect-dns", "--dns-servers", "127.0.0.53"])
            #expect(applied.status == 0, "\(applied.stderr)")
            #expect(try pod.exec(["nft", "list", "table", "inet", "weir"]).contains("ct zone set 2"))
            #expect(try pod.exec(["ip", "-4", "rule"]).contains("fwmark 0x539 lookup 133"))
            #expect(try snapshot(node) == nodeBefore)
            let status = try node.weir(["status", "--network-namespace", path])
            #expect(status.stdout.contains("inet weir"), "\(status.stdout)")
            let cleaned = try node.weir(["clean", "--network-namespace", path])
            #expect(cleaned.stdout.contains("removed table inet weir"), "\(cleaned.stdout)")
            #expect(try pod.exec(["nft", "list", "ruleset"]).isEmpty)
        }
        // istio's variable, and --cleanup-only with it.
        let env = ["NETWORK_NAMESPACE": "/var/run/netns/\(pod.name)"]
        #expect(try node.weir(["istio-iptables", "-b", "8080"], environment: env).status == 0)
        #expect(try pod.exec(["nft", "list", "ruleset"]).contains("inbound-ports"))
        #expect(try node.weir(["istio-iptables", "--cleanup-only"], environment: env).status == 0)
        #expect(try pod.exec(["nft", "list", "ruleset"]).isEmpty)
        #expect(try snapshot(node) == nodeBefore)
        // A path that is no network namespace is bad input, and changes nothing anywhere.
        for bad in ["/nonexistent/ns", "/proc/self/ns/mnt", "/etc/hostname"] {
            let r = try node.weir(["rules", "-b", "*", "--network-namespace", bad])
            #expect(r.status == 2, "\(bad): \(r.stderr)")
            #expect(r.stderr.hasPrefix("weir: --network-namespace '\(bad)' "), "\(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1)
        }
        #expect(try snapshot(node) == nodeBefore)
        #expect(try pod.exec(["nft", "list", "ruleset"]).isEmpty)
    }

    @Test func agentRunsItsDataPlaneInAnotherNamespace() throws {
        let node = try TestNamespace(prefix: "wti")
        let pod = try TestNamespace(prefix: "wti")
        defer { node.delete(); pod.delete() }
        let nodeBefore = try snapshot(node)
        let agent = try startAgent(node, ["--network-namespace", "/var/run/netns/\(pod.name)", "-b", "*",
                                          "--admin-address", "127.0.0.1:15020", "--drain-timeout", "1s"])
        defer { agent.stop() }
        // Admin on the node; capture, listeners and the lock in the pod.
        #expect(try adminGet(node, "/readyz") == (200, "ready\n"))
        #expect(try pod.exec(["nft", "list", "table", "inet", "weir"]).contains("redirect to :15006"))
        let listening = try pod.exec(["ss", "-Htln"])
        #expect(listening.contains(":15006") && listening.contains(":15001"), "\(listening)")
        #expect(!(try node.exec(["ss", "-Htln"]).contains(":15006")))
        #expect(try snapshot(node) == nodeBefore)
        agent.signal(SIGTERM)
        #expect(agent.wait(timeout: 10) == 0)
    }

    @Test func validationPassesOnlyWhenTheCaptureIsInPlace() throws {
        try withNamespace { ns in
            // Nothing installed: the probe connection is refused, and weir exits 126 after the timeout.
            let none = try ns.weir(["rules", "--skip-rule-apply", "--run-validation", "--probe-timeout", "1s"])
            #expect(none.status == 126, "\(none.stdout) \(none.stderr)")
            #expect(none.stderr.hasPrefix("weir: validation failed: no connection to 127.0.0.6:15002"), "\(none.stderr)")
            #expect(try ns.exec(["nft", "list", "ruleset"]).isEmpty)
            // Applied: the connection from the proxy UID to 127.0.0.6:15002 is redirected to 15006.
            let ok = try ns.weir(["istio-iptables", "-p", "15101", "-z", "15106", "--run-validation=true",
                                  "--iptables-probe-port", "15102"])
            #expect(ok.status == 0, "\(ok.stdout) \(ok.stderr)")
            #expect(ok.stdout.contains("validation passed: a connection from UID 1337 to 127.0.0.6:15102 was "
                + "redirected to 127.0.0.1:15106"), "\(ok.stdout)")
            // A proxy UID the rules do not know is not redirected: validation fails, as it would under istio.
            let wrong = try ns.weir(["rules", "--skip-rule-apply", "-z", "15106", "-p", "15101", "-u", "4242",
                                     "--run-validation"], environment: ["PROBE_TIMEOUT": "500ms"])
            #expect(wrong.status == 126, "\(wrong.stderr)")
        }
    }

    @Test func forceApplySkipRuleApplyAndIstioSpellings() throws {
        try withNamespace { ns in
            #expect(try ns.weir(["istio-iptables", "-b", "*", "--redirect-dns=false", "--drop-invalid=t"]).status == 0)
            let table = try ns.exec(["nft", "list", "table", "inet", "weir"])
            #expect(table.contains("ct state invalid") && !table.contains("15053"))
            let generation = { try ns.exec(["nft", "list", "ruleset"]) }
            let before = try generation()
            #expect(try ns.weir(["rules", "-b", "*", "--drop-invalid"]).stdout.contains("unchanged"))
            let forced = try ns.weir(["rules", "-b", "*", "--drop-invalid", "--force-apply"])
            #expect(forced.stdout.contains("table inet weir: replaced"), "\(forced.stdout)")
            #expect(try generation() == before)
            // --skip-rule-apply changes nothing, whatever the flags say.
            #expect(try ns.weir(["rules", "-b", "8080", "--skip-rule-apply"]).status == 0)
            #expect(try generation() == before)
            // Accepted flags that have no work to do in weir.
            let accepted = try ns.weir(["istio-iptables", "-b", "*", "--drop-invalid", "--reconcile", "--cni-mode",
                                        "--native-nftables", "--force-iptables-binary", "nft", "--dual-stack",
                                        "--log_caller", "default", "--log_stacktrace_level", "none"])
            #expect(accepted.status == 0 && accepted.stdout.contains("unchanged"), "\(accepted.stderr)")
            // Logging: JSON lines, a level that hides informational output, a file target.
            let json = try ns.weir(["rules", "-b", "*", "--drop-invalid", "--log_as_json"])
            #expect(json.stdout == "{\"level\":\"info\",\"msg\":\"table inet weir: unchanged\"}\n", "\(json.stdout)")
            let quiet = try ns.weir(["rules", "-b", "*", "--drop-invalid", "--log_output_level", "default:warn"])
            #expect(quiet.status == 0 && quiet.stdout.isEmpty)
            let path = "/tmp/weir-log-\(getpid()).txt"
            defer { unlink(path) }
            #expect(try ns.weir(["rules", "-b", "*", "--drop-invalid", "--log_target", path]).stdout.isEmpty)
            #expect((try? String(contentsOfFile: path, encoding: .utf8)) == "table inet weir: unchanged\n")
            // Bad values of the new flags: one line, exit 2, nothing changed.
            for args in [["--redirect-dns=maybe"], ["--log_output_level", "loud"], ["-p", "-1"], ["-b", "-1"],
                         ["--probe-timeout", "soon", "--run-validation"], ["--force-iptables-binary", "iptables"]] {
                let r = try ns.weir(["istio-iptables", "-b", "*"] + args)
                #expect(r.status == 2, "\(args): \(r.stderr)")
                #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains("expected"), "\(r.stderr)")
                #expect(r.stderr.contains("-1") || !args.contains("-1"), "\(r.stderr)")
            }
            #expect(try generation() == before)
        }
    }
}
