import Testing
import WeirCore

/// The agent's `/status` JSON and `weir status`'s lines.
struct AgentStatusTests {
    let status = AgentStatus(version: "0.4.0", ready: false, problem: "capture incomplete: table inet weir",
                             connectionsActive: 3, connectionsAccepted: 40, lastReconcile: 1_796_562_745,
                             reconciles: 7, repairs: 2, reloads: 1, reloadFailures: 1)

    @Test func roundTripsAndIgnoresUnknownMembers() {
        #expect(AgentStatus(json: Array(status.json.rendered.utf8)) == status)
        let newer = status.json.rendered.replacing("\"ready\"", with: "\"pods\": 3,\n  \"ready\"")
        #expect(AgentStatus(json: Array(newer.utf8)) == status)
        #expect(AgentStatus(json: Array("{\"version\": \"1\"}".utf8)) == nil)
        #expect(AgentStatus(json: Array("not ready\n".utf8)) == nil)
    }

    @Test func reportSaysWhyNotReady() {
        let text = status.report(address: "127.0.0.1:15020", now: 1_796_562_750)
        #expect(text == """
            agent at 127.0.0.1:15020: NOT READY: capture incomplete: table inet weir (weir 0.4.0)
              connections: 3 active, 40 accepted since start
              last reconcile: 13:12:25 UTC (5 s ago), 7 runs, 2 repairs
              reloads: 1 applied, 1 refused

            """)
    }
}
