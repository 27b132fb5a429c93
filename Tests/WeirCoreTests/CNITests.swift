import Testing
import WeirCore

/// The CNI plugin's pure side: the request from the environment and stdin, the spec's errors, and what each verb
/// prints for each answer of the agent.
struct CNITests {
    /// A bridge + host-local result, as Debian's reference plugins print it for 1.0.0 (a fraction and a negative
    /// number added: they pass through as they came).
    static let prevResult = #"""
        {"cniVersion":"1.0.0","interfaces":[{"name":"cni0","mac":"aa:bb:cc:dd:ee:01"},
        {"name":"eth0","mac":"aa:bb:cc:dd:ee:02","sandbox":"/var/run/netns/cni-1"}],
        "ips":[{"interface":1,"address":"198.18.0.5/24","gateway":"198.18.0.1"}],
        "routes":[{"dst":"0.0.0.0/0"}],"dns":{},"x-weight":0.5,"x-offset":-3}
        """#

    static func config(version: String = "1.0.0", extra: String = "", prev: Bool = true) -> [UInt8] {
        var text = #"{"cniVersion":"\#(version)","name":"pods","type":"weir""#
        if !extra.isEmpty { text += "," + extra }
        if prev { text += #","prevResult":"# + prevResult }
        text += #","runtimeConfig":{"portMappings":[]},"unknownKey":[1,2.5]}"#
        return Array(text.utf8)
    }

    static let kubernetesArgs = "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart-7d9;"
        + "K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=0f1e2d"

    static func environment(_ command: String, _ overrides: [String: String?] = [:]) -> [String: String] {
        var env = ["CNI_COMMAND": command, "CNI_CONTAINERID": "abc123def4567890", "CNI_NETNS": "/var/run/netns/cni-1",
                   "CNI_IFNAME": "eth0", "CNI_ARGS": kubernetesArgs, "CNI_PATH": "/opt/cni/bin:/usr/lib/cni"]
        for (k, v) in overrides { env[k] = v }
        return env
    }

    func request(_ command: String, _ overrides: [String: String?] = [:], config: [UInt8] = CNITests.config())
        throws -> CNIRequest
    {
        switch CNIStart.start(environment: Self.environment(command, overrides), stdin: config) {
        case .ask(let request): return request
        case .answered(let output): throw CNIFailure(output: output)
        }
    }

    /// The error object a start answered with (code, msg), or nil when it asks the agent.
    func refusal(_ command: String, _ overrides: [String: String?] = [:], config: [UInt8] = CNITests.config())
        throws -> (code: Int64, msg: String, version: String)?
    {
        guard case .answered(let output) = CNIStart.start(environment: Self.environment(command, overrides),
                                                          stdin: config) else { return nil }
        #expect(output.exitStatus == 1)
        let json = try JSONValue.parse(Array(output.stdout.utf8))
        return (try #require(json[member: "code"]?.intValue), try #require(json[member: "msg"]?.stringValue),
                try #require(json[member: "cniVersion"]?.stringValue))
    }

    // MARK: the request

    @Test func readsAnAddAsARuntimeSendsIt() throws {
        let r = try request("ADD")
        #expect(r.command == .add && r.containerID == "abc123def4567890" && r.netns == "/var/run/netns/cni-1")
        #expect(r.interface == "eth0" && r.path == ["/opt/cni/bin", "/usr/lib/cni"])
        #expect(r.args == CNIArgs(podNamespace: "shop", podName: "cart-7d9", podUID: "0f1e2d",
                                  podInfraContainerID: "abc123"))
        #expect(r.config == CNIConfig(cniVersion: "1.0.0", name: "pods", type: "weir",
                                      agentSocket: "/run/weir/cni.sock", failOpen: false,
                                      prevResult: try JSONValue.parse(Array(Self.prevResult.utf8))))
        #expect(r.podLabel == "shop/cart-7d9")
    }

    @Test func readsTheSettingsOfTheEntry() throws {
        let r = try request("ADD", config: Self.config(version: "0.4.0",
                                                          extra: #""agentSocket":"/var/run/w/c.sock","failOpen":true"#))
        #expect(r.config.cniVersion == "0.4.0" && r.config.agentSocket == "/var/run/w/c.sock" && r.config.failOpen)
    }

    @Test func cniArgsAreReadByKeyInAnyOrderAndUnknownKeysIgnored() throws {
        #expect(try CNIArgs.parse("K8S_POD_UID=u;FOO=bar;K8S_POD_NAME=p;;K8S_POD_NAMESPACE=n;IgnoreUnknown=1;")
            == CNIArgs(podNamespace: "n", podName: "p", podUID: "u"))
        #expect(try CNIArgs.parse("") == CNIArgs())
        // podman: the container's name only.
        let r = try request("ADD", ["CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web"])
        #expect(r.args == CNIArgs(podName: "web") && r.podLabel == "web")
        #expect(try request("DEL", ["CNI_ARGS": nil]).podLabel == "container abc123def456")
        #expect(try CNIArgs.parse("K8S_POD_NAME=a=b").podName == "a=b")
    }

    @Test func aCniArgsPairWithoutEqualsIsRefused() throws {
        let e = try #require(try refusal("ADD", ["CNI_ARGS": "K8S_POD_NAME=p;garbage"]))
        #expect(e.code == 4 && e.msg == "CNI_ARGS 'garbage' is not a pair: expected KEY=VALUE pairs separated by ';'")
        #expect(e.version == "1.0.0")
    }

    @Test(arguments: [
        ("ADD", ["CNI_CONTAINERID": nil], "CNI_CONTAINERID is not set: expected the container's id for ADD"),
        ("CHECK", ["CNI_CONTAINERID": ""], "CNI_CONTAINERID is not set: expected the container's id for CHECK"),
        ("DEL", ["CNI_IFNAME": nil], "CNI_IFNAME is not set: expected the pod's interface name for DEL"),
        ("ADD", ["CNI_NETNS": nil], "CNI_NETNS is not set: expected the path of the pod's network namespace for ADD"),
        ("CHECK", ["CNI_NETNS": ""],
         "CNI_NETNS is not set: expected the path of the pod's network namespace for CHECK"),
        ("ADD", ["CNI_NETNS": "cni-1"], "CNI_NETNS 'cni-1' is not a path: expected the path of the pod's network "
            + "namespace, such as /var/run/netns/cni-1234"),
        ("DEL", ["CNI_NETNS": "cni-1"], "CNI_NETNS 'cni-1' is not a path: expected the path of the pod's network "
            + "namespace, such as /var/run/netns/cni-1234"),
    ] as [(String, [String: String?], String)])
    func missingOrBadEnvironmentIsCode4(_ command: String, _ env: [String: String?], _ msg: String) throws {
        let e = try #require(try refusal(command, env))
        #expect(e.code == 4)
        #expect(e.msg == msg)
    }

    @Test func delNeedsNoNamespaceAndStatusNeedsOnlyTheConfig() throws {
        #expect(try request("DEL", ["CNI_NETNS": nil]).netns == "")
        #expect(try request("DEL", ["CNI_NETNS": nil], config: Self.config(prev: false)).config.prevResult == nil)
        let s = try request("STATUS", ["CNI_CONTAINERID": nil, "CNI_NETNS": nil, "CNI_IFNAME": nil,
                                       "CNI_ARGS": "broken"], config: Self.config(prev: false))
        #expect(s.command == .status && s.containerID == "" && s.config.name == "pods")
    }

    @Test func addWithoutPrevResultIsRefusedWeirIsChained() throws {
        let e = try #require(try refusal("ADD", config: Self.config(prev: false)))
        #expect(e.code == 7)
        #expect(e.msg == "ADD without prevResult: weir is a chained plugin, expected after the network plugin in a "
            + "conflist's \"plugins\"")
        // CHECK and DEL do without it.
        #expect(try request("CHECK", config: Self.config(prev: false)).command == .check)
    }

    @Test(arguments: [
        ("0.2.0", "cniVersion '0.2.0' is not supported: expected 0.3.0 or 0.3.1 or 0.4.0 or 1.0.0"),
        ("1.1.0", "cniVersion '1.1.0' is not supported: expected 0.3.0 or 0.3.1 or 0.4.0 or 1.0.0"),
        ("0.1.0", "cniVersion '0.1.0' is not supported: expected 0.3.0 or 0.3.1 or 0.4.0 or 1.0.0"),
    ])
    func otherVersionsAreCode1(_ version: String, _ msg: String) throws {
        for command in ["ADD", "DEL", "CHECK", "STATUS"] {
            let e = try #require(try refusal(command, config: Self.config(version: version)))
            #expect(e.code == 1 && e.msg == msg && e.version == "1.0.0")
        }
    }

    @Test(arguments: [
        ("", 6, "the network config on standard input is not JSON"),
        ("{\"cniVersion\":", 6, "the network config on standard input is not JSON"),
        ("[\"cniVersion\"]", 6, "the network config on standard input is not a JSON object"),
        ("{\"name\":\"pods\",\"type\":\"weir\"}", 7,
         "the network config has no cniVersion: expected \"cniVersion\": \"0.3.0\" or \"0.3.1\" or \"0.4.0\" or \"1.0.0\""),
        ("{\"cniVersion\":1,\"name\":\"pods\",\"type\":\"weir\"}", 7,
         "the network config has no cniVersion: expected \"cniVersion\": \"0.3.0\" or \"0.3.1\" or \"0.4.0\" or \"1.0.0\""),
        ("{\"cniVersion\":\"0.4.0\",\"type\":\"weir\"}", 7, "the network config has no name: expected the network's name"),
        ("{\"cniVersion\":\"0.4.0\",\"name\":\"\",\"type\":\"weir\"}", 7,
         "name '' is not valid: expected the network's name"),
        ("{\"cniVersion\":\"0.4.0\",\"name\":\"n\"}", 7, "the network config has no type: expected \"type\": \"weir\""),
        ("{\"cniVersion\":\"0.4.0\",\"name\":\"n\",\"type\":\"weir\",\"agentSocket\":\"run/cni.sock\"}", 7,
         "agentSocket 'run/cni.sock' is not an absolute path: expected the path of the agent's socket, such as "
            + "/run/weir/cni.sock"),
        ("{\"cniVersion\":\"0.4.0\",\"name\":\"n\",\"type\":\"weir\",\"agentSocket\":7}", 7,
         "agentSocket 7 is not valid: expected the absolute path of the agent's socket"),
        ("{\"cniVersion\":\"0.4.0\",\"name\":\"n\",\"type\":\"weir\",\"failOpen\":\"yes\"}", 7,
         "failOpen 'yes' is not valid: expected true or false"),
        ("{\"cniVersion\":\"0.4.0\",\"name\":\"n\",\"type\":\"weir\",\"prevResult\":[1, 2]}", 7,
         "prevResult [ 1, 2 ] is not valid: expected the previous plugin's result, an object"),
    ] as [(String, Int64, String)])
    func badConfigs(_ text: String, _ code: Int64, _ msg: String) throws {
        let e = try #require(try refusal("DEL", config: Array(text.utf8)))
        #expect(e.code == code)
        #expect(e.msg == msg)
        // Once the version is known, the error is written in it.
        #expect(e.version == (text.contains("\"0.4.0\"") ? "0.4.0" : "1.0.0"))
    }

    @Test func anOversizedConfigIsRefusedBeforeParsing() throws {
        let big = Array(repeating: UInt8(ascii: " "), count: CNIConfig.maxBytes + 1)
        let e = try #require(try refusal("ADD", config: big))
        #expect(e.code == 6 && e.msg == "the network config on standard input is larger than 1 MiB")
    }

    @Test(arguments: ["GC", "add", "", "INIT"])
    func unknownCommandsAreCode4(_ verb: String) throws {
        let e = try #require(try refusal(verb))
        #expect(e.code == 4)
        #expect(e.msg == "CNI_COMMAND \(quotedValue(verb)) is not supported: expected one of ADD, DEL, CHECK, "
            + "VERSION, STATUS")
    }

    // MARK: VERSION

    @Test(arguments: [("{\"cniVersion\":\"1.0.0\"}", "1.0.0"), ("{\"cniVersion\":\"0.4.0\"}", "0.4.0"),
                      ("{\"cniVersion\":\"0.3.1\"}", "0.3.1"), ("", "1.0.0"), ("not json", "1.0.0"),
                      ("{}", "1.0.0")])
    func versionAnswersWithTheInputVersionAndNeverFails(_ input: String, _ version: String) throws {
        guard case .answered(let out) = CNIStart.start(environment: ["CNI_COMMAND": "VERSION"],
                                                       stdin: Array(input.utf8)) else {
            Issue.record("VERSION asked the agent")
            return
        }
        #expect(out.exitStatus == 0 && out.log.isEmpty)
        #expect(try JSONValue.parse(Array(out.stdout.utf8)) == .object([
            ("cniVersion", .string(version)), ("supportedVersions", .array([.string("0.3.0"), .string("0.3.1"), .string("0.4.0"), .string("1.0.0")])),
        ]))
    }

    // MARK: errors

    @Test func errorObjectsAreTheSpecs() throws {
        let e = CNIError(.tryAgainLater, "agent busy", details: "queue full", cniVersion: "0.4.0")
        #expect(e.json.rendered == """
            {
              "cniVersion": "0.4.0",
              "code": 11,
              "msg": "agent busy",
              "details": "queue full"
            }

            """)
        #expect(CNIError(.invalidConfig, "x").json == .object([("cniVersion", .string("1.0.0")), ("code", .int(7)),
                                                                ("msg", .string("x"))]))
        #expect([CNIError.Code.incompatibleVersion, .unsupportedField, .unknownContainer, .invalidEnvironment,
                 .ioFailure, .decodeFailure, .invalidConfig, .tryAgainLater, .notAvailable,
                 .notAvailableExistingLimited].map(\.rawValue) == [1, 2, 3, 4, 5, 6, 7, 11, 50, 51])
    }

    // MARK: answers

    func json(_ out: CNIOutput) throws -> JSONValue { try JSONValue.parse(Array(out.stdout.utf8)) }

    @Test(arguments: ["1.0.0", "0.4.0"])
    func addPassesPrevResultThroughInTheInputVersion(_ version: String) throws {
        let r = try request("ADD", config: Self.config(version: version))
        let out = r.output(for: .reply(ok: true, state: "up", message: "attached"))
        #expect(out.exitStatus == 0 && out.log.isEmpty)
        guard case .object(var expected) = try JSONValue.parse(Array(Self.prevResult.utf8)) else { return }
        expected[0].1 = .string(version)
        #expect(try json(out) == .object(expected))
        #expect(out.stdout.contains("\"x-weight\": 0.5") && out.stdout.contains("\"x-offset\": -3"))
    }

    @Test func addPutsTheVersionFirstWhenPrevResultHasNone() throws {
        let r = try request("ADD", config: Array(#"""
            {"cniVersion":"0.4.0","name":"n","type":"weir","prevResult":{"ips":[],"dns":{}}}
            """#.utf8))
        #expect(r.result == .object([("cniVersion", .string("0.4.0")), ("ips", .array([])), ("dns", .object([]))]))
    }

    @Test func addFailsClosedUnlessFailOpen() throws {
        let closed = try request("ADD").output(for: .unreachable("connect: ENOENT"))
        #expect(closed.exitStatus == 1 && closed.log.isEmpty)
        #expect(try json(closed) == .object([
            ("cniVersion", .string("1.0.0")), ("code", .int(11)),
            ("msg", .string("the weir agent is not reachable at /run/weir/cni.sock: shop/cart-7d9 is not started "
                + "uncaptured (set \"failOpen\": true in the network config to start it anyway)")),
            ("details", .string("connect: ENOENT")),
        ]))
        let open = try request("ADD", config: Self.config(extra: #""failOpen":true"#))
            .output(for: .unreachable("connect: ECONNREFUSED"))
        #expect(open.exitStatus == 0)
        #expect(try json(open)[member: "ips"] != nil)
        #expect(open.log == ["weir-cni: event=agent_unreachable pod=shop/cart-7d9 socket=/run/weir/cni.sock "
            + "action=fail_open error=\"connect: ECONNREFUSED\" note=\"the pod starts uncaptured\""])
        // failOpen covers an absent agent, not one that refuses the pod or does not answer in time.
        let refused = try request("ADD", config: Self.config(extra: #""failOpen":true"#))
            .output(for: .reply(ok: false, state: "failed", message: "descriptor budget spent"))
        #expect(refused.exitStatus == 1)
        #expect(try json(refused)[member: "code"] == .int(11))
        #expect(try json(refused)[member: "msg"]
            == .string("the weir agent did not attach shop/cart-7d9 (state failed)"))
        #expect(try json(refused)[member: "details"] == .string("descriptor budget spent"))
        let slow = try request("ADD", config: Self.config(extra: #""failOpen":true"#)).output(for: .failed("timeout"))
        #expect(try slow.exitStatus == 1 && json(slow)[member: "code"] == .int(11))
    }

    @Test func delSucceedsWhenThePodOrTheAgentIsGone() throws {
        let r = try request("DEL", ["CNI_NETNS": nil])
        #expect(r.output(for: .reply(ok: true, state: "", message: "")) == .success())
        #expect(r.output(for: .reply(ok: false, state: "absent", message: "no such pod")) == .success())
        let gone = r.output(for: .unreachable("connect: ENOENT"))
        #expect(gone.exitStatus == 0 && gone.stdout.isEmpty)
        #expect(gone.log == ["weir-cni: event=agent_unreachable pod=shop/cart-7d9 socket=/run/weir/cni.sock "
            + "action=del_succeeds error=\"connect: ENOENT\""])
        let failed = r.output(for: .reply(ok: false, state: "up", message: "netlink: EBUSY"))
        #expect(try failed.exitStatus == 1 && json(failed)[member: "code"] == .int(11))
        #expect(r.output(for: .failed("timeout")).exitStatus == 1)
    }

    @Test func checkSucceedsOnlyWhenThePodIsUp() throws {
        let r = try request("CHECK")
        #expect(r.output(for: .reply(ok: true, state: "up", message: "")) == .success())
        for answer in [CNIAgentAnswer.reply(ok: true, state: "pending", message: ""),
                       .reply(ok: false, state: "failed", message: "listener gone"),
                       .reply(ok: false, state: "absent", message: ""), .unreachable("ENOENT"), .failed("timeout")] {
            let out = r.output(for: answer)
            #expect(out.exitStatus == 1)
            #expect(try json(out)[member: "code"] == .int(11))
        }
        #expect(try json(r.output(for: .reply(ok: true, state: "pending", message: "")))[member: "msg"]
            == .string("shop/cart-7d9 is not served by the weir agent (state pending)"))
    }

    @Test func statusIs50WhenTheAgentCannotServe() throws {
        let r = try request("STATUS", config: Self.config(prev: false))
        #expect(r.output(for: .reply(ok: true, state: "up", message: "")) == .success())
        for answer in [CNIAgentAnswer.reply(ok: false, state: "", message: "draining"), .unreachable("ENOENT"),
                       .failed("timeout")] {
            let out = r.output(for: answer)
            #expect(try out.exitStatus == 1 && json(out)[member: "code"] == .int(50))
        }
    }

    @Test func agentTimeouts() {
        #expect(CNICommand.add.agentTimeoutMs == 20_000 && CNICommand.status.agentTimeoutMs == 5_000)
    }
}

private struct CNIFailure: Error, CustomStringConvertible {
    let output: CNIOutput
    var description: String { output.stdout }
}
