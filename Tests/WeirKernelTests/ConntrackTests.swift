import Testing
import WeirSystem

/// Conntrack (libnetfilter_conntrack: the proxy workers' delete, the agent's start-up sweep) against the kernel, in a
/// namespace of its own.
struct ConntrackTests {
    @Test func deletesTheEntryOfAFlowAndReportsOneThatIsNotThere() throws {
        let ports: (UInt16, UInt16) = (15001, 15006)
        try withNamespace(prefix: "wtc") { ns in
            // An established TCP entry 198.18.0.1:40000 -> 198.18.0.2:80, inserted as the proxy's upstream would.
            _ = try ns.exec(["conntrack", "-I", "-p", "tcp", "-s", "198.18.0.1", "-d", "198.18.0.2", "--sport", "40000",
                             "--dport", "80", "--state", "ESTABLISHED", "-u", "SEEN_REPLY", "-t", "120"])
            #expect(try ns.exec(["conntrack", "-L"]).contains("dport=80"))
            let results = try inNamespace(ns) { () -> [String] in
                let socket = try Conntrack.open()
                let local = SocketAddress(ip: "198.18.0.1", port: 40000)!, target = SocketAddress(ip: "198.18.0.2", port: 80)!
                let v6 = SocketAddress(ip: "2001:db8::1", port: 40000)!
                return [(local, target), (local, target), (v6, target)].map {
                    "\(socket.delete(source: $0, destination: $1, sparingRedirectsTo: ports))"
                }
            }
            #expect(results == ["deleted", "noEntry", "failed(\(Errno.EAFNOSUPPORT))"])
            #expect(!(try ns.exec(["conntrack", "-L"]).contains("dport=80")))
        }
    }

    /// An application's connection that took a failed upstream's 4-tuple is redirected to the proxy (DNAT to its
    /// listener): the proxy's delete of its old flow must leave it alone. An entry NATed elsewhere (a service's DNAT
    /// of the proxy's own upstream) is still the proxy's to delete.
    @Test func sparesAnApplicationsConnectionRedirectedToTheProxy() throws {
        try withNamespace(prefix: "wtc") { ns in
            func insert(_ src: String, _ dst: String, sport: Int, nat: String) throws {
                _ = try ns.exec(["conntrack", "-I", "-p", "tcp", "-s", src, "-d", dst, "--sport", String(sport),
                                 "--dport", "80", "--state", "ESTABLISHED", "-u", "SEEN_REPLY", "-t", "120",
                                 "--dst-nat", nat])
            }
            try insert("198.18.0.1", "198.18.0.2", sport: 40000, nat: "127.0.0.1:15001")    // redirected, outbound
            try insert("198.18.0.1", "198.18.0.2", sport: 40001, nat: "198.18.0.1:15006")   // redirected, inbound
            try insert("198.18.0.1", "198.18.0.2", sport: 40002, nat: "198.18.0.9:8080")    // a service's DNAT
            try insert("2001:db8::1", "2001:db8::2", sport: 40000, nat: "[::1]:15001")
            try insert("2001:db8::1", "2001:db8::2", sport: 40002, nat: "[2001:db8::9]:15002")
            let results = try inNamespace(ns) { () -> [String] in
                let socket = try Conntrack.open()
                return [("198.18.0.1", "198.18.0.2", 40000), ("198.18.0.1", "198.18.0.2", 40001),
                        ("198.18.0.1", "198.18.0.2", 40002), ("2001:db8::1", "2001:db8::2", 40000),
                        ("2001:db8::1", "2001:db8::2", 40002)].map { src, dst, port in
                    let deletion = socket.delete(source: SocketAddress(ip: src, port: UInt16(port))!,
                                                 destination: SocketAddress(ip: dst, port: 80)!,
                                                 sparingRedirectsTo: (15001, 15006))
                    return "\(deletion)"
                }
            }
            #expect(results == ["spared", "spared", "deleted", "spared", "deleted"])
            let left = try ns.exec(["conntrack", "-L", "-f", "ipv4"]) + (try ns.exec(["conntrack", "-L", "-f", "ipv6"]))
            #expect(left.contains("sport=40000") && left.contains("sport=40001") && !left.contains("sport=40002"), "\(left)")
        }
    }
}
