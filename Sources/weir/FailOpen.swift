import WeirCore
import WeirSystem
import WeirTuning

/// The fail-open history file of `weir run --fail-open-after` (the rule is `FailOpenPolicy`, in WeirCore).
struct FailOpenHistory {
    let path: String
    let policy: FailOpenPolicy

    /// Records this start, or removes the capture and throws when too many starts in the window never got ready.
    func start() throws {
        var text = ""
        switch readSmallFile(path, limit: 1 << 20) {
        case .success(let bytes): text = String(decoding: bytes, as: UTF8.self)
        case .failure(.missing): break
        case .failure(let problem):
            throw RuntimeFailure(message: "fail-open history \(quotedValue(path)) \(problem): expected a small "
                + "regular file weir writes")
        }
        switch policy.decide(history: text, now: Clock.wallSeconds()) {
        case .start(let history):
            try write(FailOpenPolicy.render(history))
        case .failOpen(let failures):
            let log = OutputLog()
            log.info("event=fail_open starts=\(failures) window_s=\(policy.windowSeconds) "
                + "reason=\"starts never reached ready\" action=\"removing the capture\"")
            try removeCapture(log)
            throw RuntimeFailure(message: "failed open: \(failures) starts within \(policy.windowSeconds)s never "
                + "reached ready, so the capture was removed and weir does not start; it tries again when the "
                + "oldest leaves the window (\(path))")
        }
    }

    /// A success: the count starts again from zero. A failure to write is logged, never fatal for a ready agent.
    func reset() {
        do {
            try write("")
        } catch {
            OutputLog().warn("fail-open history not reset: \(error)")
        }
    }

    private func write(_ text: String) throws {
        do {
            try SysctlFiles.writeAtomically(path, text)
        } catch {
            throw RuntimeFailure(message: "fail-open history: \(error)")
        }
    }
}
