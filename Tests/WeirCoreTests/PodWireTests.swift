import Testing
import WeirCore

/// The plugin's messages to the agent, the pod registry file and the pod table `weir status` prints.
struct PodWireTests {
    let pod = PodIdentity(namespace: "shop", name: "cart-7f9", uid: "0b5e")

    @Test func requestsSurviveTheWireAndAreKeyedByUIDThenContainer() throws {
        let add = PodRequest(operation: .add, containerID: "c1", netns: "/run/netns/cni-1", interface: "eth0", pod: pod)
        #expect(try PodRequest.decode(add.encoded) == add)
        #expect(add.key == "0b5e")
        let podman = PodRequest(operation: .del, containerID: "c2", netns: "", interface: "eth0",
                                pod: PodIdentity(name: "web"))
        #expect(try PodRequest.decode(podman.encoded) == podman)
        #expect(podman.key == "c2")
        #expect(podman.pod.label == "web")
        #expect(pod.label == "shop/cart-7f9")
        let reply = PodReply(ok: false, state: "failed", message: "descriptor budget spent")
        #expect(try PodReply.decode(reply.encoded) == reply)
    }

    @Test func badRequestsSayWhatIsWrong() {
        func why(_ text: String) -> String? {
            do throws(PodWireError) {
                _ = try PodRequest.decode(Array(text.utf8))
                return nil
            } catch {
                return error.description
            }
        }
        #expect(why("nope")?.hasPrefix("request is not JSON") == true)
        #expect(why(#"{"version": 2, "operation": "add"}"#) == "request version 2 is not known: expected 1")
        #expect(why(#"{"version": 1, "operation": "reboot"}"#)?.contains("no known operation") == true)
        #expect(why(#"{"version": 1, "operation": "add", "containerID": "c"}"#) == "add has no netns")
        #expect(why(#"{"version": 1, "operation": "del"}"#) == "request has no containerID")
        #expect(why(#"{"version": 1, "operation": "del", "containerID": 5}"#) == "request's containerID is not a string")
        #expect(why(#"{"version": 1, "operation": "status"}"#) == nil)
    }

    @Test func registryFileIsDeterministicAndReadBack() throws {
        let a = PodRecord(key: "b", containerID: "c2", pod: pod, netns: "/run/netns/x", netnsIdentity: "4:4026532")
        let b = PodRecord(key: "a", containerID: "c1", pod: PodIdentity(name: "web"), netns: "/run/netns/y",
                          netnsIdentity: "4:4026533")
        let text = PodRegistryFile.render([a, b])
        #expect(text == PodRegistryFile.render([b, a]))
        #expect(try PodRegistryFile.parse(Array(text.utf8)) == [b, a])
        #expect(throws: PodWireError.self) { try PodRegistryFile.parse(Array(#"{"version": 9, "pods": []}"#.utf8)) }
        #expect(throws: PodWireError.self) { try PodRegistryFile.parse(Array(#"{"version": 1, "pods": [{}]}"#.utf8)) }
    }

    @Test func podListRoundTripsAndPrintsAsATable() throws {
        let up = PodStatus(record: PodRecord(key: "u1", containerID: "c1", pod: pod, netns: "/run/netns/a",
                                             netnsIdentity: ""), state: .up, connections: 12)
        let failed = PodStatus(record: PodRecord(key: "u2", containerID: "c2", pod: PodIdentity(name: "web"),
                                                 netns: "/run/netns/b", netnsIdentity: ""),
                               state: .failed(reason: "listeners: EADDRINUSE"), connections: 0)
        let json = PodStatus.renderList([failed, up])
        #expect(json.contains(#""reason": "listeners: EADDRINUSE""#))
        let back = try PodStatus.parseList(Array(json.utf8))
        #expect(back.map(\.state) == [.up, .failed(reason: "listeners: EADDRINUSE")])
        #expect(back.map(\.connections) == [12, 0])
        #expect(PodStatus.table(back) == """
            POD            STATE                           CONNECTIONS  NETNS
            shop/cart-7f9  up                              12           /run/netns/a
            web            failed (listeners: EADDRINUSE)  0            /run/netns/b

            """)
    }
}
