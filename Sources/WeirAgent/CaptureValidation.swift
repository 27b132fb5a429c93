import WeirCore
import WeirSystem

/// istio's `--run-validation`: proves the capture is really in place before a workload starts.
///
/// As istio's validator does, it listens on loopback at the two capture ports (-p, -z), connects from loopback to
/// the inbound passthrough address (127.0.0.6, ::6) at the probe port, and passes when one of its listeners accepts a
/// connection whose original destination port is the probe port: the nat rules redirected it. istio runs the check in
/// a container whose user is the proxy's; weir makes the probe connection with the first -u UID and -g GID (set for
/// the probing thread only), so it works the same when run as root. One attempt every 250 ms until the timeout.
public enum CaptureValidation {
    public struct Outcome: Equatable, Sendable {
        public let passed: Bool
        public let description: String
    }

    public static func run(_ config: CaptureConfig, probePort: UInt16, timeoutMs: Int) -> Outcome {
        var families: [(loopback: String, source: String)] = [("127.0.0.1", "127.0.0.6")]
        if !config.ipv4Only { families.append(("::1", "::6")) }
        var listeners: [(socket: Socket, address: String)] = []
        for f in families {
            for port in Set([config.proxyPort, config.inboundCapturePort]).sorted() {
                if let socket = listen(f.loopback, port) {
                    listeners.append((socket, SocketAddress(ip: f.loopback, port: port)!.description))
                }
            }
        }
        let targets = families.filter { f in listeners.contains { $0.socket.family == family(of: f.loopback) } }
        guard !targets.isEmpty, let poller = try? Poller(capacity: listeners.count) else {
            return Outcome(passed: false, description: "no validation listener could be opened on loopback ports "
                + "\(config.proxyPort) and \(config.inboundCapturePort)")
        }
        for (i, l) in listeners.enumerated() { poller.add(l.socket.fd, .readable, token: UInt64(i)) }
        let uid = config.proxyUIDs.first ?? 1337, gid = config.proxyGIDs.first ?? uid
        let deadline = Clock.nowMs() + Int64(timeoutMs)
        var clients: [Socket] = []
        var nextAttempt = Clock.nowMs()
        while Clock.nowMs() < deadline {
            if Clock.nowMs() >= nextAttempt {
                clients.removeAll()  // the last attempt's sockets close
                clients = targets.compactMap { connect(from: $0.loopback, to: $0.source, port: probePort, uid: uid, gid: gid) }
                nextAttempt = Clock.nowMs() + 250
            }
            let ready = (try? poller.wait(timeoutMs: Poller.timeout(until: min(nextAttempt, deadline), now: Clock.nowMs(),
                                                                     maxMs: 250))) ?? 0
            for i in 0..<ready where poller[i].token != Poller.wakeToken {
                let l = listeners[Int(poller[i].token)]
                guard case .done(let conn)? = try? l.socket.accept(),
                      let original = SocketAddress.originalDestination(of: conn.socket.fd, family: l.socket.family),
                      original.port == probePort else { continue }
                return Outcome(passed: true, description: "validation passed: a connection from UID \(uid) to "
                    + "\(original) was redirected to \(l.address)")
            }
        }
        withExtendedLifetime(clients) {}
        let tried = targets.map { SocketAddress(ip: $0.source, port: probePort)!.description }.joined(separator: " and ")
        return Outcome(passed: false, description: "validation failed: no connection to \(tried) from UID \(uid) was "
            + "redirected to ports \(config.proxyPort) or \(config.inboundCapturePort) within \(timeoutMs)ms: the "
            + "capture is not in place, the workload is not ready")
    }

    private static func family(of ip: String) -> Int32 { ip.contains(":") ? AddressFamily.ipv6 : AddressFamily.ipv4 }

    private static func listen(_ ip: String, _ port: UInt16) -> Socket? {
        let address = SocketAddress(ip: ip, port: port)!
        let options: [SocketOption] = address.family == AddressFamily.ipv6 ? [.reusePort, .v6Only] : [.reusePort]
        return try? Socket.listener(on: address, options: options, backlog: 16)
    }

    /// A non-blocking connect from `ip`:0 to `target`:`port`, the socket created with the given file system IDs
    /// (what nftables' skuid and skgid see).
    private static func connect(from ip: String, to target: String, port: UInt16, uid: UInt32, gid: UInt32) -> Socket? {
        let local = SocketAddress(ip: ip, port: 0)!
        let remote = SocketAddress(ip: target, port: port)!
        let ownUID = ProcessEnvironment.effectiveUID, ownGID = ProcessEnvironment.effectiveGID
        _ = setThreadFileSystemIDs(uid: uid, gid: gid)
        let socket = try? Socket(family: local.family)
        _ = setThreadFileSystemIDs(uid: ownUID, gid: ownGID)
        guard let socket, (try? socket.bind(local)) != nil else { return nil }
        _ = try? socket.connect(remote)
        return socket
    }
}
