import Testing
import WeirSystem

/// Conntrack (libnetfilter_conntrack: the proxy workers' delete, the agent's start-up sweep) against the kernel, in a
/// namespace of its own.
struct ConntrackTests {
    @Test func deletesTheEntryOfAFlowAndReportsOneThatIsNotThere() throws {
        try withNamespace(prefix: "wtc") { ns in
            // An established TCP entry 198.18.0.1:40000 -> 198.18.0.2:80, inserted as the proxy's upstream would.
            _ = try ns.exec(["conntrack", "-I", "-p", "tcp", "-s", "198.18.0.1", "-d", "198.18.0.2", "--sport", "40000",
                             "--dport", "80", "--state", "ESTABLISHED", "-u", "SEEN_REPLY", "-t", "120"])
            #expect(try ns.exec(["conntrack", "-L"]).contains("dport=80"))
            let results = try inNamespace(ns) { () -> [String] in
                let socket = try Conntrack.open()
                let local = SocketAddress(ip: "198.18.0.1", port: 40000)!, target = SocketAddress(ip: "198.18.0.2", port: 80)!
                let v6 = SocketAddress(ip: "2001:db8::1", port: 40000)!
                return [socket.delete(source: local, destination: target), socket.delete(source: local, destination: target),
                        socket.delete(source: v6, destination: target)].map { "\($0)" }
            }
            #expect(results == ["deleted", "noEntry", "failed(\(Errno.EAFNOSUPPORT))"])
            #expect(!(try ns.exec(["conntrack", "-L"]).contains("dport=80")))
        }
    }
}
