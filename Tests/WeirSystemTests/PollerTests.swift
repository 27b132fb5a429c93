import Glibc
import Testing
import WeirSystem

/// `Poller` (epoll with a wake handle and deadlines) and `AcceptGate`, without root.
@Suite struct PollerTests {
    @Test func aWaitWithNothingReadyEndsAtItsTimeout() throws {
        let poller = try Poller(capacity: 8)
        let start = Clock.nowMs()
        #expect(try poller.wait(timeoutMs: 50) == 0)
        #expect(Clock.nowMs() - start >= 45)
    }

    @Test func anotherThreadWakesTheWait() throws {
        let poller = try Poller(capacity: 8)
        let thread = try startThread(name: "waker", stackSize: 64 * 1024) {
            sleepMilliseconds(20)
            poller.wake()
        }
        defer { joinThread(thread) }
        let start = Clock.nowMs()
        #expect(try poller.wait(timeoutMs: 5000) == 1)
        #expect(poller[0].token == Poller.wakeToken && poller[0].events.contains(.readable))
        #expect(Clock.nowMs() - start < 4000)
        // Acknowledged, the handle is quiet until the next wake.
        poller.acknowledgeWake()
        #expect(try poller.wait(timeoutMs: 0) == 0)
        poller.wake()
        poller.wake()
        #expect(try poller.wait(timeoutMs: 0) == 1)
    }

    @Test func tokensComeBackWithTheirEvents() throws {
        let poller = try Poller(capacity: 8)
        let pipe = try #require(makePipe(size: 0))
        defer { closeDescriptor(pipe.read); closeDescriptor(pipe.write) }
        #expect(poller.add(pipe.read, .readable, token: 42) == 0)
        #expect(poller.add(pipe.read, .readable, token: 42) == EEXIST)
        #expect(try poller.wait(timeoutMs: 0) == 0)
        var byte: UInt8 = 1
        #expect(write(pipe.write, &byte, 1) == 1)
        #expect(try poller.wait(timeoutMs: 1000) == 1)
        #expect(poller[0].token == 42)
        #expect(poller.modify(pipe.read, .writable, token: 43) == 0)
        #expect(try poller.wait(timeoutMs: 0) == 0)  // a read end is never writable
        #expect(poller.remove(pipe.read) == 0)
        #expect(poller.remove(pipe.read) == ENOENT)
    }

    @Test(arguments: [
        (1_000, 400, 1_000, 600),   // time left
        (1_000, 1_500, 1_000, 0),   // past: never negative
        (10_000, 0, 1_000, 1_000),  // capped: a heartbeat loop wakes at least this often
    ] as [(Int64, Int64, Int64, Int32)])
    func timeoutIsTheTimeLeftToTheDeadline(_ deadline: Int64, _ now: Int64, _ maxMs: Int64, _ expected: Int32) {
        #expect(Poller.timeout(until: deadline, now: now, maxMs: maxMs) == expected)
    }

    @Test func theAcceptGatePausesAndSaysWhenToResume() throws {
        let poller = try Poller(capacity: 8)
        let listener = try Socket.listener(on: SocketAddress(ip: "127.0.0.1", port: 0)!, backlog: 8)
        let listeners = [(fd: listener.fd, token: UInt64(5))]
        var gate = AcceptGate()
        #expect(!gate.isOpen && !gate.isPaused)
        let opened = gate.open(poller, listeners)
        #expect(opened == 0 && gate.isOpen)
        let first = gate.pause(poller, listeners, now: 1_000)
        let second = gate.pause(poller, listeners, now: 1_010)
        #expect(first)  // watched until now: the caller logs
        #expect(!second)  // already paused: no second line
        #expect(gate.isPaused && gate.pausedUntil == 1_010 + AcceptGate.pauseMs)
        #expect(!gate.pauseEnded(now: 1_050))
        #expect(gate.pauseEnded(now: 1_010 + AcceptGate.pauseMs))
        // Out of the poller while paused: a waiting connection raises no event.
        let client = try Socket(family: AddressFamily.ipv4)
        _ = try client.connect(listener.localAddress!)
        #expect(try poller.wait(timeoutMs: 50) == 0)
        let reopened = gate.open(poller, listeners)
        #expect(reopened == 0)
        #expect(try poller.wait(timeoutMs: 1000) == 1)
        #expect(poller[0].token == 5)
        gate.close()
        #expect(!gate.isOpen && !gate.isPaused && !gate.pauseEnded(now: .max))
    }
}
