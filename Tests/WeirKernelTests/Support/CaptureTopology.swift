import Foundation

/// A pod namespace wired to two peers, with probe servers everywhere, for proving capture behaviour with real
/// connections. pod `eth0` (198.18.0.1, 2001:db8::1) <-> peer0 (198.18.0.2, 2001:db8::2); pod `<second>`
/// (198.18.1.1, 2001:db8:1::1) <-> peer1 (198.18.1.2, 2001:db8:1::2).
final class CaptureTopology {
    let pod: TestNamespace
    let peer0: TestNamespace
    let peer1: TestNamespace
    private var servers: [Process] = []

    static let probeScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("probe.py").path
    /// Ports the pod's application listens on.
    static let podPorts = ["80", "32000", "31000", "15008", "6000", "4000", "5000", "7000"]

    static let dnsScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("dns.py").path

    /// With `dnsAgentUID`, DNS servers too: the pod's resolver on 127.0.0.53 and ::127.0.0.53 (`pod-dns`), the
    /// agent on loopback at 15053 running as that UID and relaying to the resolver (`agent>...`), and a server on
    /// each peer (`peer0-dns`, `peer1-dns`).
    init(secondInterface: String = "eth1", transparentInbound: Bool = false, dnsAgentUID: UInt32? = nil) throws {
        pod = try TestNamespace(prefix: "wtc")
        peer0 = try TestNamespace(prefix: "wtc")
        peer1 = try TestNamespace(prefix: "wtc")
        do {
            try pod.link(to: peer0, localName: "eth0", peerName: "veth0",
                         localAddresses: ["198.18.0.1/24", "2001:db8::1/64"],
                         peerAddresses: ["198.18.0.2/24", "2001:db8::2/64"])
            try pod.link(to: peer1, localName: secondInterface, peerName: "veth1",
                         localAddresses: ["198.18.1.1/24", "2001:db8:1::1/64"],
                         peerAddresses: ["198.18.1.2/24", "2001:db8:1::2/64"])
            try startServer(pod, ["pod", "15001"] + Self.podPorts)
            try startServer(pod, ["pod", "15006"] + (transparentInbound ? ["--transparent"] : []))
            try startServer(peer0, ["peer0", "80", "32000"])
            try startServer(peer1, ["peer1", "80", "32000"])
            if let uid = dnsAgentUID {
                try pod.exec(["ip", "-6", "addr", "add", "::127.0.0.53/128", "dev", "lo"])
                try startServer(pod, ["pod-dns", "127.0.0.53:53", "[::127.0.0.53]:53"], script: Self.dnsScript)
                try startServer(pod, ["agent", "--forward", "127.0.0.53:53", "127.0.0.1:15053", "[::1]:15053"],
                                script: Self.dnsScript, uid: uid)
                try startServer(peer0, ["peer0-dns", "198.18.0.2:53", "[2001:db8::2]:53"], script: Self.dnsScript)
                try startServer(peer1, ["peer1-dns", "198.18.1.2:53"], script: Self.dnsScript)
            }
        } catch {
            delete()
            throw error
        }
    }

    private func startServer(_ ns: TestNamespace, _ args: [String], script: String = probeScript,
                             uid: UInt32? = nil) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        let user = uid.map { ["setpriv", "--reuid=\($0)", "--regid=\($0)", "--clear-groups"] } ?? []
        p.arguments = ["netns", "exec", ns.name] + user + ["/usr/bin/python3", script, "serve"] + args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        servers.append(p)
        var seen = ""
        let deadline = Date().addingTimeInterval(10)
        while !seen.contains("ready") {
            guard Date() < deadline, p.isRunning else {
                throw CommandFailed(arguments: args, result: CommandResult(status: -1, stdout: seen, stderr: "no ready"))
            }
            seen += String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        }
    }

    /// Connects from `ns` (optionally as uid/gid) and returns `label:port` of the listener that answered, or `ERR:...`.
    func probe(from ns: TestNamespace, uid: UInt32? = nil, gid: UInt32? = nil, to host: String, port: Int) throws
        -> String
    {
        var args = ["/usr/bin/python3", Self.probeScript, "connect", host, String(port)]
        if let uid {
            args = ["setpriv", "--reuid=\(uid)", "--regid=\(gid ?? uid)", "--clear-groups"] + args
        }
        let result = try ns.run(args)
        let line = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let first = line.split(separator: " ").first else { return "ERR:no output: \(result.stderr)" }
        return String(first)
    }

    /// The full line (with `orig=` and `peer=`) a probe got back.
    func probeLine(from ns: TestNamespace, uid: UInt32? = nil, to host: String, port: Int) throws -> String {
        var args = ["/usr/bin/python3", Self.probeScript, "connect", host, String(port)]
        if let uid { args = ["setpriv", "--reuid=\(uid)", "--regid=\(uid)", "--clear-groups"] + args }
        return try ns.run(args).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// One DNS query from the pod as `uid`; the TXT answer, `ERR:...`, or the first word of a non-DNS reply.
    func dnsQuery(uid: UInt32, to host: String, transport: String) throws -> String {
        let args = ["setpriv", "--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", "/usr/bin/python3", Self.dnsScript,
                    "query", host, "53", transport]
        let line = try pod.run(args).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        return line.isEmpty ? "ERR:no output" : line
    }

    func delete() {
        for p in servers where p.isRunning { p.terminate() }
        pod.delete()
        peer0.delete()
        peer1.delete()
    }

    deinit { delete() }
}
