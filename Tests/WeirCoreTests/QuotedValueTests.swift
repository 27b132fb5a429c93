import Testing
import WeirCore

/// `quotedValue`, the one way a message quotes a value the operator gave.
@Suite struct QuotedValueTests {
    @Test(arguments: [
        ("4096", "'4096'"),
        ("", "''"),
        ("4096\0", "'4096\\0'"),
        ("a\nb\rc\td", "'a\\nb\\rc\\td'"),
        ("\u{1}\u{1b}[31m\u{7f}", "'\\x01\\x1b[31m\\x7f'"),
        ("\u{9b}", "'\\x9b'"),                         // C1 CSI: a terminal control of its own
        ("it's C:\\x", "'it\\'s C:\\\\x'"),
        ("a\u{202e}b\u{2028}c", "'a\\u{202e}b\\u{2028}c'"),  // bidi override, line separator
        ("\u{fffd}", "'\\u{fffd}'"),                     // bytes that were not UTF-8
        ("grüße 日本", "'grüße 日本'"),
    ])
    func escapes(_ value: String, _ quoted: String) {
        #expect(quotedValue(value) == quoted)
    }

    @Test func boundsLongValuesAndSaysHowLongTheyWere() {
        let long = String(repeating: "x", count: 50 << 20)
        #expect(quotedValue(long) == "'" + String(repeating: "x", count: 64) + "'…(52428800 bytes)")
        #expect(quotedValue(String(repeating: "y", count: 64)) == "'" + String(repeating: "y", count: 64) + "'")
        #expect(quotedValue(String(repeating: "\0", count: 100), limit: 2) == "'\\0\\0'…(100 bytes)")
    }

    @Test func oneLineMessageEscapesWhatIsLeftAndKeepsQuotes() {
        #expect(oneLineMessage("--x 'a' is bad\nsecond\0") == "--x 'a' is bad\\nsecond\\0")
        let message = "-p " + quotedValue("1\n2") + " is not a port"
        #expect(oneLineMessage(message) == message)
        #expect(oneLineMessage(String(repeating: "z", count: 5000), limit: 10) == "zzzzzzzzzz…(5000 bytes)")
    }
}
