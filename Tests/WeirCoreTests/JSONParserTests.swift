import Testing
import WeirCore

/// The JSON reader weir uses for the files it writes itself (the tuning state), without Foundation.
struct JSONParserTests {
    func parse(_ text: String) throws(JSONParseError) -> JSONValue { try JSONValue.parse(Array(text.utf8)) }

    func failure(_ text: String) -> String? {
        do throws(JSONParseError) {
            _ = try parse(text)
            return nil
        } catch {
            return error.description
        }
    }

    @Test func readsEveryKindOfValue() throws {
        let v = try parse(#" { "a" : [1, -2, 0, true, false, null, "x"], "b": {}, "c": [] } "#)
        #expect(v == .object([
            ("a", .array([.int(1), .int(-2), .int(0), .bool(true), .bool(false), .null, .string("x")])),
            ("b", .object([])), ("c", .array([])),
        ]))
        #expect(v[member: "a"]?.arrayValue?.count == 7)
        #expect(v[member: "missing"] == nil)
        #expect(try parse("9223372036854775807") == .int(Int64.max))
        #expect(try parse("-9223372036854775808") == .int(Int64.min))
    }

    /// Numbers other than Int64 integers read as their text and render as they were read: a CNI result or network
    /// config passes through weir unchanged.
    @Test(arguments: ["1.5", "-0.25", "1e3", "1E-7", "2.5e+10", "-0", "0.0", "9223372036854775808",
                      "-9223372036854775809", "99999999999999999999999"])
    func otherNumbersPassThrough(_ text: String) throws {
        let value = try parse(#"{"n": [\#(text)]}"#)
        #expect(value[member: "n"]?.arrayValue == [.number(text)])
        #expect(value[member: "n"]?.arrayValue?.first?.intValue == nil)
        #expect(value.rendered == "{\n  \"n\": [\n    \(text)\n  ]\n}\n")
        #expect(try JSONValue.parse(Array(value.rendered.utf8)) == value)
    }

    @Test func stringEscapes() throws {
        #expect(try parse(#""\" \\ \/ \b \f \n \r \t \u0041 \u00e9 \ud83d\ude00""#)
            == .string("\" \\ / \u{8} \u{c} \n \r \t A é 😀"))
    }

    /// Whatever `JSONValue` renders, it reads back the same.
    @Test(arguments: ["", "plain", "quote \" backslash \\ slash /", "control \u{1} \u{1f} \n \t", "é ✓ 😀",
                      "\u{7f} \u{202e} \u{2028}"])
    func renderedStringsReadBack(_ s: String) throws {
        let value = JSONValue.object([("k", .string(s)), ("n", .array([.int(-5), .null]))])
        #expect(try JSONValue.parse(Array(value.rendered.utf8)) == value)
    }

    @Test(arguments: [
        ("", "unexpected end of text at byte 0"),
        ("{", "expected a member name at byte 1"),
        ("{\"a\" 1}", "expected ':' at byte 5"),
        ("[1 2]", "expected ',' or ']' at byte 3"),
        ("[1,]", "expected a value at byte 3"),
        ("{\"a\":1,}", "expected a member name at byte 7"),
        ("1 2", "text after the value at byte 2"),
        ("01", "leading zero at byte 0"),
        ("-", "expected a digit at byte 1"),
        ("-a", "expected a digit at byte 1"),
        ("1.", "expected a digit after '.' at byte 2"),
        ("1.e3", "expected a digit after '.' at byte 2"),
        (".5", "expected a value at byte 0"),
        ("1e", "expected a digit in the exponent at byte 2"),
        ("1e+", "expected a digit in the exponent at byte 3"),
        ("-01", "leading zero at byte 1"),
        ("+1", "expected a value at byte 0"),
        ("1.5.2", "text after the value at byte 3"),
        ("\"abc", "unterminated string at byte 4"),
        ("\"a\nb\"", "control character in a string at byte 2"),
        ("\"\\x\"", "bad escape at byte 2"),
        ("\"\\u12\"", "short \\u escape at byte 3"),
        ("\"\\u12g4\"", "bad \\u escape at byte 5"),
        ("\"\\ud83d\"", "lone surrogate in \\u escape at byte 7"),
        ("\"\\ude00\"", "lone surrogate in \\u escape at byte 7"),
        ("tru", "expected 'true' at byte 3"),
        ("nul", "expected 'null' at byte 3"),
        ("'a'", "expected a value at byte 0"),
    ])
    func refusesMalformedText(_ text: String, _ expected: String) {
        #expect(failure(text) == expected)
    }

    @Test func refusesBytesThatAreNotUTF8() {
        #expect(throws: JSONParseError.self) { try JSONValue.parse([0x22, 0xff, 0x22]) }
    }

    @Test func nestingIsBounded() throws {
        let ok = String(repeating: "[", count: JSONValue.maxDepth) + String(repeating: "]", count: JSONValue.maxDepth)
        #expect(try parse(ok).arrayValue != nil)
        let deep = String(repeating: "[", count: 100_000)
        #expect(failure(deep) == "nested deeper than \(JSONValue.maxDepth) at byte \(JSONValue.maxDepth)")
    }

    @Test func tuneStateRoundTrips() throws {
        let state = TuneState(profiles: ["default", "ingress"], saved: [
            .init(key: "net.core.somaxconn", path: "/proc/sys/net/core/somaxconn", previous: "4096"),
            .init(key: "net.ipv4.ip_local_port_range", path: "/proc/sys/net/ipv4/ip_local_port_range",
                  previous: "32768\t60999"),
        ])
        #expect(TuneState(json: Array(state.json.utf8)) == state)
        #expect(state.json.hasSuffix("}\n"))
    }

    /// The file earlier releases wrote (Foundation's JSONEncoder, pretty-printed with sorted keys) still reads.
    @Test func readsTheStateFileOfEarlierReleases() throws {
        let old = """
        {
          "profiles" : [
            "default"
          ],
          "saved" : [
            {
              "key" : "net.core.somaxconn",
              "path" : "\\/proc\\/sys\\/net\\/core\\/somaxconn",
              "previous" : "4096"
            }
          ],
          "version" : 1
        }

        """
        let state = try #require(TuneState(json: Array(old.utf8)))
        #expect(state == TuneState(profiles: ["default"], saved: [
            .init(key: "net.core.somaxconn", path: "/proc/sys/net/core/somaxconn", previous: "4096"),
        ]))
    }

    @Test(arguments: ["", "[]", #"{"version":1,"profiles":["x"]}"#, #"{"version":"1","profiles":[],"saved":[]}"#,
                      #"{"version":1,"profiles":[1],"saved":[]}"#, #"{"version":1,"profiles":[],"saved":[{"key":"a"}]}"#])
    func refusesStatesWeirDidNotWrite(_ text: String) {
        #expect(TuneState(json: Array(text.utf8)) == nil)
    }
}
