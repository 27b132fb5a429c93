import Testing
import WeirCore

struct IPAddressTests {
    @Test(arguments: [
        ("198.18.0.1", "198.18.0.1"), ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"), ("::", "::"), ("::1", "::1"),
        ("::ffff:198.18.0.1", "::ffff:198.18.0.1"), ("::FFFF:c612:1", "::ffff:198.18.0.1"),
        ("::ffff:0:0", "::ffff:0.0.0.0"), ("::c612:1", "::c612:1"), ("::1:ffff:c612:1", "::1:ffff:c612:1"), ("2001:db8:0:1:0:0:0:0", "2001:db8:0:1::"),
        ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"), ("2001:0:0:1:0:0:1:1", "2001::1:0:0:1:1"), ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
    ])
    func canonicalText(_ input: String, _ expected: String) {
        #expect(IPAddress(input)?.description == expected)
    }

    @Test(arguments: ["1.2.3", "1.2.3.256", "01.2.3.4", "1::2::3", "1:2:3:4:5:6:7:8:9", "12345::", "", ":::", "1.2.3.4/"])
    func rejectsMalformed(_ input: String) {
        #expect(IPAddress(input) == nil)
    }

    @Test func cidrLastAndSuccessor() throws {
        let c = try CIDR.parse("198.18.0.0/15").get()
        #expect(c.last.description == "198.19.255.255")
        #expect(IPAddress("198.18.255.255")?.successor?.description == "198.19.0.0")
        #expect(IPAddress("255.255.255.255")?.successor == nil)
        #expect(IPRange(try CIDR.parse("2001:db8::/32").get()).asCIDR?.description == "2001:db8::/32")
    }
}
