import Foundation
import Testing
import WeirCore

/// The built `weir` run as a container runtime runs a CNI plugin (no arguments, CNI_* variables, config on stdin),
/// with no agent listening: what each verb prints and how it exits. No root needed.
struct CNIPluginTests {
    static let socket = NSTemporaryDirectory() + "wtcni-\(getpid())-absent.sock"

    static func config(_ extra: String = "", prevResult: Bool = true) -> String {
        var text = #"{"cniVersion":"1.0.0","name":"pods","type":"weir","agentSocket":"\#(socket)""#
        if !extra.isEmpty { text += "," + extra }
        if prevResult {
            text += #","prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],"#
                + #""ips":[{"address":"198.18.0.5/24","interface":0}],"x-ratio":0.25}"#
        }
        return text + "}"
    }

    func plugin(_ command: String, _ config: String, _ env: [String: String] = [:]) throws -> CommandResult {
        var vars = ["CNI_COMMAND": command, "CNI_CONTAINERID": "c0ffee", "CNI_NETNS": "/proc/self/ns/net",
                    "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin",
                    "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart"]
        for (k, v) in env { vars[k] = v }
        return try runCommand(["env"] + vars.map { "\($0.key)=\($0.value)" }.sorted() + [weirBinary], input: config)
    }

    func json(_ text: String) throws -> JSONValue { try JSONValue.parse(Array(text.utf8)) }

    @Test func versionAnswersWithTheSupportedVersions() throws {
        let r = try plugin("VERSION", #"{"cniVersion":"0.4.0"}"#)
        #expect(r.status == 0 && r.stderr.isEmpty)
        #expect(try json(r.stdout) == .object([
            ("cniVersion", .string("0.4.0")), ("supportedVersions", .array([.string("0.3.0"), .string("0.3.1"), .string("0.4.0"), .string("1.0.0")])),
        ]))
    }

    @Test func addFailsClosedWithTheSpecsErrorOnStdout() throws {
        let r = try plugin("ADD", Self.config())
        #expect(r.status != 0)
        #expect(r.stderr.isEmpty)
        let e = try json(r.stdout)
        #expect(e[member: "code"] == .int(11) && e[member: "cniVersion"] == .string("1.0.0"))
        #expect(e[member: "msg"]?.stringValue?.hasPrefix("the weir agent is not reachable at \(Self.socket): "
            + "shop/cart is not started uncaptured") == true)
    }

    @Test func addFailsOpenWhenTheConfigSaysSo() throws {
        let r = try plugin("ADD", Self.config(#""failOpen":true"#))
        #expect(r.status == 0)
        let result = try json(r.stdout)
        #expect(result[member: "ips"]?.arrayValue?.count == 1 && r.stdout.contains("\"x-ratio\": 0.25"))
        #expect(r.stderr.hasPrefix("weir-cni: event=agent_unreachable pod=shop/cart"))
        #expect(r.stderr.contains("action=fail_open"))
    }

    @Test func delSucceedsWithoutAnAgentOrANamespace() throws {
        let r = try plugin("DEL", Self.config(prevResult: false), ["CNI_NETNS": ""])
        #expect(r.status == 0 && r.stdout.isEmpty)
        #expect(r.stderr.contains("action=del_succeeds"))
    }

    @Test func checkAndStatusFailWithoutAnAgent() throws {
        let check = try plugin("CHECK", Self.config())
        #expect(try check.status != 0 && json(check.stdout)[member: "code"] == .int(11))
        let status = try plugin("STATUS", Self.config(prevResult: false))
        #expect(try status.status != 0 && json(status.stdout)[member: "code"] == .int(50))
    }

    @Test func badRequestsAreTheSpecsCodes() throws {
        #expect(try json(plugin("ADD", Self.config(), ["CNI_CONTAINERID": ""]).stdout)[member: "code"] == .int(4))
        #expect(try json(plugin("ADD", "not json").stdout)[member: "code"] == .int(6))
        #expect(try json(plugin("ADD", Self.config(prevResult: false)).stdout)[member: "code"] == .int(7))
        #expect(try json(plugin("ADD", Self.config().replacing("1.0.0", with: "0.2.0")).stdout)[member: "code"]
            == .int(1))
        #expect(try json(plugin("GC", Self.config()).stdout)[member: "code"] == .int(4))
    }

    /// With arguments, weir is the command line whatever the environment holds.
    @Test func argumentsWinOverCniCommand() throws {
        let r = try runCommand(["env", "CNI_COMMAND=ADD", weirBinary, "--version"])
        #expect(r.status == 0 && r.stdout.hasPrefix("weir "))
    }
}
