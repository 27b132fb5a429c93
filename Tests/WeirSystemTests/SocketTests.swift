import Foundation
import Glibc
import Testing
import WeirSystem

/// `Socket`, the listener builder and the data path's raw calls, over loopback TCP on 127.0.0.1 with port 0 in the
/// test process's own network namespace (no root, nothing on the host's network).
@Suite struct SocketTests {
    /// A listener on a free loopback port, and a client connected to it (the handshake completes in the kernel).
    private func pair() throws -> (listener: Socket, client: Socket, port: UInt16) {
        let listener = try Socket.listener(on: SocketAddress(ip: "127.0.0.1", port: 0)!, backlog: 8)
        let port = try #require(listener.localAddress?.port)
        let client = try Socket(family: AddressFamily.ipv4)
        _ = try client.connect(SocketAddress(ip: "127.0.0.1", port: port)!)
        return (listener, client, port)
    }

    /// Waits (up to 2 s) until `fd` is ready for `events`.
    private func waitUntil(_ fd: Int32, _ events: PollEvents) throws {
        let poller = try Poller(capacity: 4)
        poller.add(fd, events, token: 7)
        #expect(try poller.wait(timeoutMs: 2000) == 1)
        #expect(poller[0].token == 7 && poller[0].events.contains(events))
    }

    @Test func listenerPicksAPortAndAcceptsWithThePeersAddress() throws {
        let (listener, client, port) = try pair()
        #expect(port != 0)
        try waitUntil(listener.fd, .readable)
        guard case .done(let accepted) = try listener.accept() else {
            Issue.record("accept: would block with a connection queued")
            return
        }
        #expect(accepted.peer.ip == "127.0.0.1")
        #expect(accepted.peer == client.localAddress)
        #expect(accepted.socket.family == AddressFamily.ipv4)
        #expect(try listener.accept() == .wouldBlock)
    }

    @Test func bytesGoBothWaysAndAnEmptyQueueIsAValueNotAnError() throws {
        let (listener, client, _) = try pair()
        try waitUntil(listener.fd, .readable)
        guard case .done(let accepted) = try listener.accept() else { throw SystemError("accept", errno: EAGAIN) }
        let server = accepted.socket
        var buffer = [UInt8](repeating: 0, count: 64)
        func read() -> IOStatus { buffer.withUnsafeMutableBytes { readBytes(server.fd, into: $0.baseAddress!, count: 64) } }
        #expect(read() == .wouldBlock)
        let hello = Array("hello".utf8)
        try waitUntil(client.fd, .writable)
        let sent = hello.withUnsafeBytes { sendBytes(client.fd, from: $0.baseAddress!, count: 5, more: false) }
        #expect(sent == .done(5))
        try waitUntil(server.fd, .readable)
        #expect(read() == .done(5))
        #expect(Array(buffer[0..<5]) == hello)
        client.close()
        try waitUntil(server.fd, .readHangup)
        #expect(read() == .done(0))
    }

    @Test func aPortInUseIsNamedInTheError() throws {
        let first = try Socket.listener(on: SocketAddress(ip: "127.0.0.1", port: 0)!, backlog: 8)
        let port = try #require(first.localAddress?.port)
        let error = #expect(throws: SystemError.self) {
            _ = try Socket.listener(on: SocketAddress(ip: "127.0.0.1", port: port)!, backlog: 8)
        }
        #expect(error?.description == "bind 127.0.0.1:\(port): EADDRINUSE")
        #expect(error?.errno == EADDRINUSE)
    }

    @Test func reusePortLetsTwoListenersShareAPort() throws {
        let first = try Socket.listener(on: SocketAddress(ip: "127.0.0.1", port: 0)!, options: [.reusePort],
                                        backlog: 8)
        let port = try #require(first.localAddress?.port)
        let second = try Socket.listener(on: SocketAddress(ip: "127.0.0.1", port: port)!, options: [.reusePort],
                                         backlog: 8)
        #expect(second.localAddress?.port == port)
    }

    @Test func optionsAreSetAndFailuresNameTheOption() throws {
        let socket = try Socket(family: AddressFamily.ipv4)
        try socket.set(.noDelay)
        var value: Int32 = 0
        var length = socklen_t(4)
        #expect(getsockopt(socket.fd, Int32(IPPROTO_TCP), 1 /* TCP_NODELAY */, &value, &length) == 0 && value == 1)
        // IPV6_V6ONLY on an IPv4 socket: the kernel refuses, and the error says which option.
        let error = #expect(throws: SystemError.self) { try socket.set(.v6Only) }
        #expect(error?.call == "IPV6_V6ONLY")
    }

    @Test func aRefusedConnectIsReportedAsPendingError() throws {
        // A port nobody listens on: bind a listener to learn a free port, then close it.
        let probe = try Socket.listener(on: SocketAddress(ip: "127.0.0.1", port: 0)!, backlog: 1)
        let port = try #require(probe.localAddress?.port)
        probe.close()
        let client = try Socket(family: AddressFamily.ipv4)
        let r: IOResult<Int32>
        do { r = try client.connect(SocketAddress(ip: "127.0.0.1", port: port)!) } catch let e as SystemError {
            #expect(e.errno == ECONNREFUSED)
            return
        }
        #expect(r == .wouldBlock)
        try waitUntil(client.fd, .writable)
        #expect(client.pendingError == ECONNREFUSED)
    }

    @Test func acceptOnAnEmptyQueueWouldBlock() throws {
        let listener = try Socket.listener(on: SocketAddress(ip: "127.0.0.1", port: 0)!, backlog: 8)
        var peer = SocketAddress()
        let r = acceptConnection(listener.fd, peer: &peer)
        #expect(r == .wouldBlock)
    }

    @Test func aMissingNamespaceIsNamedByItsPath() {
        let error = #expect(throws: SystemError.self) {
            _ = try NetworkNamespace.Handle(path: "/nonexistent/netns")
        }
        #expect(error?.description == "open network namespace /nonexistent/netns: ENOENT")
    }

    @Test func aFileThatIsNotANamespaceIsRefused() {
        let error = #expect(throws: SystemError.self) { _ = try NetworkNamespace.Handle(path: "/proc/self/ns/uts") }
        #expect(error?.errno == EINVAL)
    }

    /// Creating a socket inside a namespace enters it for the one call: here the thread's own namespace, which only
    /// root may enter (setns needs CAP_SYS_ADMIN); without it the error names the path.
    @Test func aSocketMadeInANamespaceLeavesTheThreadWhereItWas() throws {
        let own = try NetworkNamespace.Handle.current()
        let before = try String(contentsOfLink: "/proc/thread-self/ns/net")
        if geteuid() == 0 {
            let socket = try Socket(family: AddressFamily.ipv4, in: own)
            #expect(socket.fd >= 0)
        } else {
            let error = #expect(throws: SystemError.self) { _ = try Socket(family: AddressFamily.ipv4, in: own) }
            #expect(error?.call == "setns /proc/thread-self/ns/net")
        }
        #expect(try String(contentsOfLink: "/proc/thread-self/ns/net") == before)
    }
}

extension String {
    /// The target of a symbolic link (a namespace's identity, `net:[4026531840]`).
    init(contentsOfLink path: String) throws {
        var buffer = [CChar](repeating: 0, count: 256)
        let n = readlink(path, &buffer, 255)
        guard n > 0 else { throw SystemError("readlink \(path)", errno: errno) }
        self = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

@Suite struct ListenBacklogTests {
    @Test func isThisNamespacesSomaxconn() throws {
        let text = try String(contentsOfFile: "/proc/sys/net/core/somaxconn")
        #expect(maximumListenBacklog() == Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)))
    }
}
