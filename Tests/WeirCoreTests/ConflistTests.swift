import Testing
import WeirCore

/// `weir cni-install`'s edits of the CNI config directory, on names and bytes only.
struct ConflistTests {
    static let flannelConflist = #"""
        {
          "name": "cbr0",
          "cniVersion": "1.0.0",
          "plugins": [
            {"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true}},
            {"type": "portmap", "capabilities": {"portMappings": true}}
          ]
        }
        """#
    static let bridgeConf = #"""
        {"cniVersion": "0.4.0", "name": "podnet", "type": "bridge", "bridge": "cni0", "mtu": 1450,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "198.18.0.0/24"}]], "ratio": 0.75}}
        """#

    func file(_ name: String, _ text: String) -> CNIConfFile? { CNIConfFile(name: name, bytes: Array(text.utf8)) }

    func edit(_ plan: Conflist.Plan) -> ConflistEdit? {
        if case .edit(let e) = plan { return e }
        Issue.record("expected an edit, got \(plan)")
        return nil
    }

    func plugins(_ text: String) throws -> [JSONValue] {
        try #require(try JSONValue.parse(Array(text.utf8))[member: "plugins"]?.arrayValue)
    }

    @Test func weirIsAppendedLastToAConflist() throws {
        let primary = try #require(file("10-flannel.conflist", Self.flannelConflist))
        let e = try #require(edit(Conflist.install(CNIEntry(), files: [primary])))
        #expect(e.source == "10-flannel.conflist" && e.write == "10-flannel.conflist" && e.remove == nil)
        let list = try plugins(e.text)
        #expect(list.count == 3)
        #expect(Array(list.prefix(2)) == primary.plugins)
        #expect(list[2] == .object([("type", .string("weir")), ("agentSocket", .string("/run/weir/cni.sock"))]))
        // Everything else of the file stays as it was, in its order.
        let value = try JSONValue.parse(Array(e.text.utf8))
        guard case .object(let members) = value else { return }
        #expect(members.map(\.0) == ["name", "cniVersion", "plugins"])
    }

    @Test func aConfIsWrappedIntoAConflistOfTheSameName() throws {
        let conf = try #require(file("10-bridge.conf", Self.bridgeConf))
        let e = try #require(edit(Conflist.install(CNIEntry(agentSocket: "/var/run/weir/cni.sock", failOpen: true),
                                                   files: [conf])))
        #expect(e.source == "10-bridge.conf" && e.write == "10-bridge.conflist" && e.remove == "10-bridge.conf")
        #expect(try JSONValue.parse(Array(e.text.utf8)) == .object([
            ("cniVersion", .string("0.4.0")), ("name", .string("podnet")),
            ("plugins", .array([conf.value, .object([("type", .string("weir")),
                                                    ("agentSocket", .string("/var/run/weir/cni.sock")),
                                                    ("failOpen", .bool(true))])])),
        ]))
        // The fraction in the bridge's config passes through as it was written.
        #expect(e.text.contains("\"ratio\": 0.75"))
        // The wrapped list is weir's primary from now on, and installing again changes nothing.
        let wrapped = try #require(file(e.write, e.text))
        #expect(wrapped.kind == .conflist && wrapped.hasWeir)
        #expect(Conflist.install(CNIEntry(agentSocket: "/var/run/weir/cni.sock", failOpen: true), files: [wrapped])
            == .unchanged(file: "10-bridge.conflist"))
    }

    @Test func aConfWithoutANameIsWrappedAsIstioDoes() throws {
        let conf = try #require(file("05-x.conf", #"{"cniVersion":"1.0.0","type":"ptp"}"#))
        let e = try #require(edit(Conflist.install(CNIEntry(), files: [conf])))
        #expect(try JSONValue.parse(Array(e.text.utf8))[member: "name"] == .string("k8s-pod-network"))
    }

    @Test func reinstallingIsIdempotentAndSettingsAreUpdatedInPlace() throws {
        let first = try #require(edit(Conflist.install(CNIEntry(), files: [file("10-flannel.conflist",
                                                                               Self.flannelConflist)!])))
        let installed = try #require(file("10-flannel.conflist", first.text))
        #expect(Conflist.install(CNIEntry(), files: [installed]) == .unchanged(file: "10-flannel.conflist"))
        // A different socket or failOpen replaces weir's entry: still one, still last.
        let changed = try #require(edit(Conflist.install(CNIEntry(agentSocket: "/x/cni.sock"), files: [installed])))
        let list = try plugins(changed.text)
        #expect(list.count == 3 && list.filter(Conflist.isWeir).count == 1)
        #expect(list[2][member: "agentSocket"] == .string("/x/cni.sock"))
    }

    @Test func anOldWeirEntryIsDroppedAndWeirPutBackLast() throws {
        let text = #"""
            {"cniVersion":"0.4.0","name":"k8s","plugins":[{"type":"calico"},{"type":"weir","agentSocket":"/old"},
            {"type":"bandwidth"},{"type":"weir"}]}
            """#
        let e = try #require(edit(Conflist.install(CNIEntry(), files: [file("10-calico.conflist", text)!])))
        #expect(try plugins(e.text).map { $0[member: "type"]?.stringValue ?? "" } == ["calico", "bandwidth", "weir"])
    }

    /// The primary plugin rewrote its file without weir: the same edit puts weir back.
    @Test func aRewriteByThePrimaryPluginIsUndone() throws {
        let rewritten = try #require(file("10-flannel.conflist", Self.flannelConflist.replacing(
            "hairpinMode\": true", with: "hairpinMode\": false")))
        let e = try #require(edit(Conflist.install(CNIEntry(), files: [rewritten])))
        #expect(try plugins(e.text).last.map(Conflist.isWeir) == true)
        #expect(e.text.contains("\"hairpinMode\": false"))
    }

    @Test func thePrimaryIsTheFirstLoadableFileInByteOrder() throws {
        let files = [file("20-b.conflist", Self.flannelConflist), file("10-a.conf", Self.bridgeConf),
                     file("Z-upper.conflist", Self.flannelConflist), file("10-a.conflist", Self.flannelConflist)]
            .compactMap { $0 }
        #expect(Conflist.primary(files)?.name == "10-a.conf")  // "10-a.conf" < "10-a.conflist" < "20-b..." < "Z..."
        #expect(Conflist.primary(Array(files.dropFirst(3)))?.name == "10-a.conflist")
        #expect(Conflist.primary([file("Z.conf", Self.bridgeConf)!, file("a.conf", Self.bridgeConf)!])?.name == "Z.conf")
        #expect(Conflist.install(CNIEntry(), files: []) == .noPrimary)
    }

    @Test(arguments: [
        ("00-broken.conflist", "{\"name\": \"x\", \"plugins\": ["),
        ("00-noplugins.conflist", "{\"name\": \"x\", \"cniVersion\": \"1.0.0\"}"),
        ("00-empty.conflist", "{\"name\": \"x\", \"cniVersion\": \"1.0.0\", \"plugins\": []}"),
        ("00-noname.conflist", "{\"cniVersion\": \"1.0.0\", \"plugins\": [{\"type\": \"ptp\"}]}"),
        ("00-badplugin.conflist", "{\"name\": \"x\", \"plugins\": [\"ptp\"]}"),
        ("00-notype.conf", "{\"cniVersion\": \"1.0.0\", \"name\": \"x\"}"),
        ("00-array.conf", "[]"),
        ("00-other.json", "{\"cniVersion\": \"1.0.0\", \"type\": \"ptp\"}"),
        (".conf", "{\"cniVersion\": \"1.0.0\", \"type\": \"ptp\"}"),
        (".10-flannel.conflist.weir-tmp", "{\"name\": \"x\", \"plugins\": [{\"type\": \"ptp\"}]}"),
    ])
    func filesARuntimeWouldSkipAreSkipped(_ name: String, _ text: String) {
        #expect(file(name, text) == nil)
    }

    /// weir reads back every file it writes: a conf nested so deep that its wrapped conflist would pass the JSON
    /// reader's bound is not one weir edits.
    @Test func aConfTooDeepToReadBackOnceWrappedIsSkipped() throws {
        func conf(_ depth: Int) -> String {
            #"{"cniVersion":"1.0.0","type":"x","a":"# + String(repeating: "[", count: depth - 1)
                + String(repeating: "]", count: depth - 1) + "}"
        }
        let deepest = try #require(file("10-x.conf", conf(JSONValue.maxDepth - 2)))
        let e = try #require(edit(Conflist.install(CNIEntry(), files: [deepest])))
        #expect(file(e.write, e.text)?.hasWeir == true)
        #expect(file("10-x.conf", conf(JSONValue.maxDepth - 1)) == nil)
    }

    @Test func aVersionWeirDoesNotSpeakIsNotInstalled() throws {
        let old = Self.flannelConflist.replacing("1.0.0", with: "0.2.0")
        #expect(Conflist.install(CNIEntry(), files: [file("10-flannel.conflist", old)!])
            == .unsupportedVersion(file: "10-flannel.conflist", cniVersion: "0.2.0"))
        #expect(Conflist.install(CNIEntry(), files: [file("10-ptp.conf", #"{"type":"ptp"}"#)!])
            == .unsupportedVersion(file: "10-ptp.conf", cniVersion: ""))
    }

    @Test func uninstallRemovesWeirFromEveryConflistAndRestoresThePlugins() throws {
        let flannel = try #require(file("10-flannel.conflist", Self.flannelConflist))
        let installed = try #require(edit(Conflist.install(CNIEntry(), files: [flannel])))
        let wrapped = try #require(edit(Conflist.install(CNIEntry(), files: [file("30-b.conf", Self.bridgeConf)!])))
        let files = [file("10-flannel.conflist", installed.text)!, file(wrapped.write, wrapped.text)!,
                     file("20-other.conflist", Self.flannelConflist)!, file("40-c.conf", Self.bridgeConf)!]
        let edits = Conflist.uninstall(files: files)
        #expect(edits.map(\.write) == ["10-flannel.conflist", "30-b.conflist"])
        #expect(edits.allSatisfy { $0.remove == nil && $0.source == $0.write })
        #expect(try JSONValue.parse(Array(edits[0].text.utf8)) == flannel.value)
        #expect(try plugins(edits[1].text) == [file("30-b.conf", Self.bridgeConf)!.value])
        // Nothing of weir left: nothing more to do.
        #expect(Conflist.uninstall(files: edits.map { file($0.write, $0.text)! }).isEmpty)
    }
}
