import Testing

@Suite(.enabled(if: canUseNamespaces, "needs root for network namespaces"))
struct NamespaceSmokeTests {
    @Test func namespaceIsCreatedAndDeleted() throws {
        var name = ""
        try withNamespace { ns in
            name = ns.name
            let links = try ns.exec(["ip", "-o", "link", "show", "lo"])
            #expect(links.contains("UP") || links.contains("LOWER_UP"))
        }
        let list = try mustRun(["ip", "netns", "list"])
        #expect(!list.contains(name))
    }
}
