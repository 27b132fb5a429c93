import Glibc
import Testing
@testable import WeirAgent
import WeirCore
import WeirSystem

/// The agent loop's deadlines (`AgentSchedule`), without a loop: what is due when, and what the loop sleeps until.
struct AgentScheduleTests {
    let start: Int64 = 100_000

    @Test func theFirstWatchdogPingIsAtOnceAndTheFirstReconcileOneIntervalLater() {
        var s = AgentSchedule(now: start, reconcileIntervalMs: 10_000, watchdogIntervalMs: 15_000)
        #expect(s.deadline(now: start) == start)
        #expect(s.due(now: start) == .watchdog)
        s.watchdogHandled(now: start)
        #expect(s.due(now: start).isEmpty)
        // The loop still wakes every second, to look at the workers.
        #expect(s.deadline(now: start) == start + 1000)
        #expect(s.deadline(now: start + 9_500) == start + 10_000)
        #expect(s.due(now: start + 9_999).isEmpty)
        #expect(s.due(now: start + 10_000) == .reconcile)
        #expect(s.due(now: start + 15_000) == [.reconcile, .watchdog])
    }

    @Test func pagesAreReleasedOnceAfterABurstOfControlPlaneWorkHasBeenQuietASecond() {
        var s = AgentSchedule(now: start, reconcileIntervalMs: 10_000, watchdogIntervalMs: nil)
        #expect(s.pageRelease == nil)
        // A burst of pod requests: each one moves the release.
        s.controlPlaneWorked(now: start + 100)
        s.controlPlaneWorked(now: start + 700)
        #expect(s.deadline(now: start + 700) == start + 1_700)
        #expect(s.due(now: start + 1_699).isEmpty)
        #expect(s.due(now: start + 1_700) == .releasePages)
        s.pagesReleased()
        #expect(s.pageRelease == nil)
        #expect(s.due(now: start + 5_000).isEmpty)
    }

    @Test func withoutAWatchdogNothingButReconcileIsEverDue() {
        let s = AgentSchedule(now: start, reconcileIntervalMs: 500, watchdogIntervalMs: nil)
        #expect(s.nextWatchdog == nil)
        #expect(s.deadline(now: start) == start + 500)
        #expect(s.due(now: start + 100_000) == .reconcile)
    }

    @Test func theNextReconcileCountsFromTheEndOfTheLastWithTheIntervalOfThatMoment() {
        var s = AgentSchedule(now: start, reconcileIntervalMs: 10_000, watchdogIntervalMs: nil)
        // A reload changed the interval to 2 s; the reconcile took 300 ms.
        s.reconciled(at: start + 10_300, intervalMs: 2_000)
        #expect(s.lastReconcile == start + 10_300)
        #expect(s.due(now: start + 12_299).isEmpty)
        #expect(s.due(now: start + 12_300) == .reconcile)
    }

    @Test func anEventBurstBringsOneReconcileForwardAtMostOnceASecond() {
        var s = AgentSchedule(now: start, reconcileIntervalMs: 10_000, watchdogIntervalMs: nil)
        // Right after the last reconcile: the gap decides.
        s.changeSuspected(now: start + 200)
        #expect(s.earlyReconcile == start + 1_000)
        // More events of the burst move nothing.
        s.changeSuspected(now: start + 900)
        #expect(s.earlyReconcile == start + 1_000)
        #expect(s.deadline(now: start + 900) == start + 1_000)
        #expect(s.due(now: start + 1_000) == .reconcile)
        s.reconciled(at: start + 1_050, intervalMs: 10_000)
        #expect(s.earlyReconcile == nil)
        // Long after: 100 ms, for the burst to end.
        s.changeSuspected(now: start + 5_000)
        #expect(s.earlyReconcile == start + 5_100)
    }

    @Test func aRequestFromTheAdminThreadIsAsSoonAsTheGapAllowsAndReplacesAnEventsPlan() {
        var s = AgentSchedule(now: start, reconcileIntervalMs: 10_000, watchdogIntervalMs: nil)
        s.changeSuspected(now: start + 3_000)
        #expect(s.earlyReconcile == start + 3_100)
        s.reconcileRequested(now: start + 3_010)
        #expect(s.earlyReconcile == start + 3_010)
        #expect(s.due(now: start + 3_010) == .reconcile)
        s.reconciled(at: start + 3_020, intervalMs: 10_000)
        s.reconcileRequested(now: start + 3_500)
        #expect(s.earlyReconcile == start + 4_020)
    }

    @Test func theWatchdogIsLookedAtEveryIntervalFromTheLastLook() {
        var s = AgentSchedule(now: start, reconcileIntervalMs: 60_000, watchdogIntervalMs: 2_000)
        s.watchdogHandled(now: start + 5)
        #expect(s.nextWatchdog == start + 2_005)
        #expect(s.deadline(now: start + 1_500) == start + 2_005)
        #expect(s.due(now: start + 2_004).isEmpty)
        #expect(s.due(now: start + 2_005) == .watchdog)
    }
}

/// A failed undo step (after another failure) is logged and counted, and exported with a HELP line.
struct RollbackAccountingTests {
    struct Refused: Error, CustomStringConvertible {
        var description: String { "refused" }
    }

    @Test func aFailedRollbackIsCountedByStepAndExported() throws {
        let settings = AgentSettings(capture: try CaptureConfig.parse(flags: ["istio-inbound-ports": ["*"]]),
                                     proxy: ProxyConfig(), adminHost: "127.0.0.1", adminPort: 15020)
        let agent = Agent(settings: settings, reload: { settings })
        agent.rollback(.captureRestore) { throw Refused() }
        agent.rollback(.captureRestore) { throw Refused() }
        agent.rollback(.tuningRevert) {}
        #expect(agent.current.rollbackFailures == [.captureRestore: 2])
        let samples = agentMetricSamples(agent.current).filter { $0.name == "weir_rollback_failures_total" }
        #expect(samples.map(\.labelText) == [#"{step="capture_remove"}"#, #"{step="tuning_revert"}"#,
                                             #"{step="capture_restore"}"#])
        #expect(samples.map(\.value) == [0, 0, 2])
    }

    @Test func aFailedRollbackIsAnErrorForJournald() {
        #expect(EventLine.level(of: "rollback_failed") == .error)
    }

    @Test func everyAgentFamilyHasHelp() throws {
        let settings = AgentSettings(capture: try CaptureConfig.parse(flags: [:]), proxy: ProxyConfig(),
                                     adminHost: "127.0.0.1", adminPort: 15020)
        for sample in agentMetricSamples(Agent.AgentState(settings: settings)) {
            #expect(metricHelp[sample.name] != nil, "\(sample.name)")
        }
    }
}

/// The kernel doors the loop uses, on descriptors of this process only: no root, no signal to anyone else.
struct AgentDoorTests {
    @Test func aSignalQueueReadsASignalSentToItsThread() throws {
        // On a thread of its own that blocks the signals and then ends: the signal is sent to that thread only and
        // taken there, and no test thread is left with a blocked mask (children spawned from it would inherit it).
        final class Seen: @unchecked Sendable {
            var before: Int32?, after: Int32?, next: Int32?, ready = false, failure: String?
        }
        let seen = Seen()
        let thread = try startThread(name: "signal-test", stackSize: 256 * 1024) {
            Signals.block()
            do {
                let queue = try SignalQueue()
                seen.before = queue.next()
                _ = pthread_kill(pthread_self(), Signals.SIGHUP)
                let poller = try Poller(capacity: 2)
                poller.add(queue.descriptor.rawValue, .readable, token: 7)
                seen.ready = try poller.wait(timeoutMs: 1000) == 1 && poller[0].token == 7
                seen.next = queue.next()
                seen.after = queue.next()
            } catch {
                seen.failure = "\(error)"
            }
        }
        joinThread(thread)
        #expect(seen.failure == nil)
        #expect(seen.before == nil && seen.ready && seen.next == Signals.SIGHUP && seen.after == nil)
    }

    @Test func sdNotifyDatagramsReachAPathOrAnAbstractName() throws {
        let path = "/tmp/weir-notify-test-\(getpid()).sock"
        let abstract = "\0weir-notify-test-\(getpid())"
        for name in [path, abstract] {
            unlink(path)
            let fd = try #require(datagramListener(Array(name.utf8)))
            defer { close(fd); unlink(path) }
            #expect(UnixDatagram.send(Array("READY=1\nSTATUS=x".utf8), to: Array(name.utf8)))
            var buffer = [UInt8](repeating: 0, count: 64)
            let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            #expect(n > 0 && String(decoding: buffer[0..<max(n, 0)], as: UTF8.self) == "READY=1\nSTATUS=x")
        }
        #expect(!UnixDatagram.send([1], to: Array(repeating: UInt8(ascii: "a"), count: 108)))
        #expect(!UnixDatagram.send([1], to: []))
        #expect(!UnixDatagram.send([1], to: Array("/tmp/weir-nobody-listens-\(getpid())".utf8)))
    }

    /// A bound AF_UNIX datagram socket at `name` (a leading 0: the abstract namespace).
    private func datagramListener(_ name: [UInt8]) -> Int32? {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in name.enumerated() { raw[i] = b } }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + name.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    @Test func systemInfoIsSane() {
        #expect(SystemInfo.clockTicksPerSecond > 0)
        #expect(SystemInfo.pageSize >= 4096)
        #expect(SystemInfo.onlineCPUs >= 1)
        #expect((SystemInfo.openFilesLimit ?? 0) > 0)
        #expect(!BuildInfo.version.isEmpty && BuildInfo.version == BuildStamp.version)
    }
}
