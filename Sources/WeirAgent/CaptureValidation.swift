import CWeirLinux
import Glibc
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
        var listeners: [(fd: Int32, family: Int32, address: String)] = []
        defer { for l in listeners { close(l.fd) } }
        for f in families {
            for port in Set([config.proxyPort, config.inboundCapturePort]).sorted() {
                if let fd = listen(f.loopback, port) {
                    listeners.append((fd, f.loopback.contains(":") ? AF_INET6 : AF_INET,
                                      SocketAddress(ip: f.loopback, port: port)!.description))
                }
            }
        }
        let targets = families.filter { f in listeners.contains { $0.family == (f.loopback.contains(":") ? AF_INET6 : AF_INET) } }
        guard !targets.isEmpty else {
            return Outcome(passed: false, description: "no validation listener could be opened on loopback ports "
                + "\(config.proxyPort) and \(config.inboundCapturePort)")
        }
        let uid = config.proxyUIDs.first ?? 1337, gid = config.proxyGIDs.first ?? uid
        let deadline = weir_now_ms() + Int64(timeoutMs)
        var clients: [Int32] = []
        defer { for c in clients { close(c) } }
        var nextAttempt = weir_now_ms()
        while weir_now_ms() < deadline {
            if weir_now_ms() >= nextAttempt {
                for c in clients { close(c) }
                clients = targets.compactMap { connect(from: $0.loopback, to: $0.source, port: probePort, uid: uid, gid: gid) }
                nextAttempt = weir_now_ms() + 250
            }
            var fds = listeners.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            let wait = Int32(max(0, min(nextAttempt, deadline) - weir_now_ms()))
            guard poll(&fds, nfds_t(fds.count), wait) > 0 else { continue }
            for (i, p) in fds.enumerated() where p.revents & Int16(POLLIN) != 0 {
                var peer = sockaddr_storage()
                var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let conn = weir_accept(listeners[i].fd, &peer, &length)
                guard conn >= 0 else { continue }
                defer { close(conn) }
                guard let original = SocketAddress.originalDestination(of: conn, family: listeners[i].family),
                      original.port == probePort else { continue }
                return Outcome(passed: true, description: "validation passed: a connection from UID \(uid) to "
                    + "\(original) was redirected to \(listeners[i].address)")
            }
        }
        let tried = targets.map { SocketAddress(ip: $0.source, port: probePort)!.description }.joined(separator: " and ")
        return Outcome(passed: false, description: "validation failed: no connection to \(tried) from UID \(uid) was "
            + "redirected to ports \(config.proxyPort) or \(config.inboundCapturePort) within \(timeoutMs)ms: the "
            + "capture is not in place, the workload is not ready")
    }

    private static func listen(_ ip: String, _ port: UInt16) -> Int32? {
        let address = SocketAddress(ip: ip, port: port)!
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue | SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return nil }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        _ = weir_set_reuseport(fd)
        if address.family == AF_INET6 { _ = weir_set_v6only(fd) }
        let bound = address.withSockaddr { bind(fd, $0, $1) } == 0
        guard bound, Glibc.listen(fd, 16) == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    /// A non-blocking connect from `ip`:0 to `target`:`port`, the socket created with the given file system IDs
    /// (what nftables' skuid and skgid see).
    private static func connect(from ip: String, to target: String, port: UInt16, uid: UInt32, gid: UInt32) -> Int32? {
        let local = SocketAddress(ip: ip, port: 0)!
        let remote = SocketAddress(ip: target, port: port)!
        let ownUID = UInt32(geteuid()), ownGID = UInt32(getegid())
        _ = weir_set_thread_fs_ids(uid, gid)
        let fd = socket(local.family, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue | SOCK_NONBLOCK.rawValue), 0)
        _ = weir_set_thread_fs_ids(ownUID, ownGID)
        guard fd >= 0 else { return nil }
        guard local.withSockaddr({ bind(fd, $0, $1) }) == 0 else {
            close(fd)
            return nil
        }
        _ = remote.withSockaddr { Glibc.connect(fd, $0, $1) }
        return fd
    }
}
