import Foundation
import Testing

/// Log lines carry a journald priority (`<N>` prefix) only when stderr is the journal ($JOURNAL_STREAM names stderr's
/// device and inode); anywhere else (terminals, files, these tests) they stay plain.
@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"), .serialized)
struct JournalPriorityTests {
    /// $JOURNAL_STREAM set to stderr's own DEVICE:INODE, as systemd sets it for StandardError=journal.
    static let journal = "export JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2);"

    func agentLines(_ ns: TestNamespace, shellPrefix: String?) throws -> [Substring] {
        let agent = try BackgroundProcess(ns, [weirBinary, "run", "-b", "*", "-i", "*", "--drain-timeout", "1s"],
                                          shellPrefix: shellPrefix)
        defer { agent.stop() }
        try agent.waitFor("event=ready", timeout: 20)
        agent.signal(SIGTERM)
        #expect(agent.wait(timeout: 15) == 0)
        return agent.output.split(separator: "\n").filter { $0.contains("event=") }
    }

    @Test func prefixedUnderJournaldPlainElsewhere() throws {
        try withNamespace { ns in
            let journal = try agentLines(ns, shellPrefix: Self.journal)
            #expect(journal.contains { $0.hasPrefix("<6>weir run: event=ready ") }, "\(journal)")
            #expect(journal.contains { $0.hasPrefix("<6>weir proxy: event=listening ") }, "\(journal)")
            #expect(journal.allSatisfy { $0.hasPrefix("<") }, "\(journal)")
            _ = try? ns.weir(["clean"])

            let plain = try agentLines(ns, shellPrefix: nil)
            #expect(plain.contains { $0.hasPrefix("weir run: event=ready ") }, "\(plain)")
            #expect(!plain.contains { $0.hasPrefix("<") }, "\(plain)")
            _ = try? ns.weir(["clean"])

            // Inherited from a parent whose stderr was the journal, but this stderr is another file: plain.
            let inherited = try agentLines(ns, shellPrefix: "export JOURNAL_STREAM=1:1;")
            #expect(!inherited.contains { $0.hasPrefix("<") }, "\(inherited)")
            _ = try? ns.weir(["clean"])
        }
    }

    @Test func theLastLineOfABadStartIsAnError() throws {
        try withNamespace { ns in
            let bad = "\(Self.journal) exec \(weirBinary) run --check-config --idle-timeout forever"
            let journal = try ns.run(["sh", "-c", bad])
            #expect(journal.status == 2)
            #expect(journal.stderr.hasPrefix("<3>weir: --idle-timeout 'forever' "), "\(journal.stderr)")
            let plain = try ns.weir(["run", "--check-config", "--idle-timeout", "forever"])
            #expect(plain.status == 2)
            #expect(plain.stderr.hasPrefix("weir: --idle-timeout 'forever' "), "\(plain.stderr)")
        }
    }
}
