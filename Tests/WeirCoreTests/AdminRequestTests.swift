import Testing
import WeirCore

struct AdminRequestTests {
    @Test(arguments: [
        ("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", AdminRequest.get(path: "/healthz", headOnly: false)),
        ("HEAD /readyz HTTP/1.0\n\n", .get(path: "/readyz", headOnly: true)),
        ("GET /metrics?name[]=x HTTP/1.1\r\n\r\n", .get(path: "/metrics", headOnly: false)),
        ("GET /?x HTTP/1.1\r\n\r\n", .get(path: "/", headOnly: false)),
        ("POST /config HTTP/1.1\r\n\r\n", .methodNotAllowed),
        ("GET\r\n\r\n", .methodNotAllowed),
        ("get /healthz HTTP/1.1\r\n\r\n", .methodNotAllowed),
        ("\n\n", .methodNotAllowed),
        ("GET /healthz HTTP/1.1\r\nHost: x\r\n", .incomplete),
        ("GET /healthz HTTP/1.1\r\n\r", .incomplete),
        ("", .incomplete),
    ])
    func requestLine(_ text: String, _ expected: AdminRequest) {
        #expect(AdminRequest.parse(Array(text.utf8), maxBytes: 8192) == expected)
    }

    @Test func headWithoutEndIsTooLargeOnlyAtTheLimit() {
        let head = Array("GET / HTTP/1.1\r\nX: ".utf8) + [UInt8](repeating: 0x61, count: 100)
        #expect(AdminRequest.parse(head, maxBytes: head.count + 1) == .incomplete)
        #expect(AdminRequest.parse(head, maxBytes: head.count) == .tooLarge)
        // A complete head is answered even past the limit (it may arrive in one read).
        #expect(AdminRequest.parse(head + Array("\r\n\r\n".utf8), maxBytes: 16) == .get(path: "/", headOnly: false))
    }
}

struct AdminBearerTokenTests {
    @Test func theBearerTokenOfACompleteHead() {
        func token(_ text: String) -> String? { AdminRequest.bearerToken(Array(text.utf8)) }
        #expect(token("GET /metrics HTTP/1.1\r\nHost: x\r\nauthorization: Bearer abc.def\r\n\r\n") == "abc.def")
        #expect(token("GET /metrics HTTP/1.1\nAuthorization:  bearer  tok \n\n") == "tok")
        #expect(token("GET /metrics HTTP/1.1\r\nAuthorization: Basic dXNlcg==\r\n\r\n") == nil)
        #expect(token("GET /metrics HTTP/1.1\r\nAuthorization: Bearer abc\r\n") == nil)  // head not complete
        #expect(token("GET /metrics HTTP/1.1\r\n\r\n") == nil)
    }
}
