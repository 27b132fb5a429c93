import WeirCore
import WeirProxy
import WeirSystem

/// `--run-dir` (default `/run/weir`, root's, 0700): `agent.lock` (one agent per directory), `handover.sock` (where a
/// successor asks this agent to hand over: `weir run --takeover`), and in pod mode `cni.sock` and `pods.json`; the
/// namespaces' data-plane locks live there too.
final class RunDirectory {
    let path: String
    /// The successor's socket, served by the agent's loop.
    let handoverSocket: Descriptor
    private var lock: Descriptor?

    var lockPath: String { path + "/agent.lock" }

    /// Takes the directory: its lock (unless `deferLock`: a predecessor still holds it during a takeover) and the
    /// handover socket (`inherited`, or made here). Throws `AgentError` naming the directory.
    init(_ path: String, inheritedHandover: Descriptor?, deferLock: Bool) throws {
        self.path = path
        do {
            try DataPlaneLock.ensureRunDirectory(path)
            // The lock first: binding the socket replaces a running agent's.
            if !deferLock { lock = try Self.lock(path + "/agent.lock", path) }
            handoverSocket = try inheritedHandover
                ?? UnixSeqpacket.listen(at: path + "/handover.sock", permissions: 0o600)
        } catch let e as SystemError {
            throw AgentError("--run-dir \(quotedValue(path)): \(e)")
        }
    }

    /// The directory's lock, once the predecessor of a takeover has gone: tried every 5 ms for at most `waitMs`
    /// (the lock, not the predecessor's pid, says when it has gone: a successor in another container of a DaemonSet
    /// rollout does not see its pid).
    func takeLock(waitMs: Int64 = 0) throws {
        let deadline = Clock.nowMs() + waitMs
        while lock == nil {
            do {
                lock = try Self.lock(lockPath, path)
            } catch {
                if Clock.nowMs() >= deadline { throw error }
                Clock.sleepMs(5)
            }
        }
    }

    /// Takes the lock at `lockPath`; throws naming the holder when another agent has it.
    private static func lock(_ lockPath: String, _ path: String) throws -> Descriptor {
        let held: Descriptor?
        do { held = try FileSystem.lockExclusively(lockPath) } catch let e as SystemError {
            throw AgentError("--run-dir \(quotedValue(path)): \(e)")
        }
        guard let held else {
            let holder = DataPlaneLock.holderPID(lockPath)
            throw AgentError("--run-dir \(quotedValue(path)): another weir agent (pid \(holder)) holds \(lockPath); "
                             + "stop it first, or replace it without a gap: weir run --takeover")
        }
        _ = try? FileSystem.replaceContents(of: held, with: Array("\(ProcessEnvironment.pid)\n".utf8))
        return held
    }
}
