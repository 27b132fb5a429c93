/// What the admin endpoint makes of the bytes of one request received so far. Kept apart from the sockets so it can
/// be tested and fuzzed on bytes: the server reads, calls `parse`, and answers as soon as it is not `.incomplete`.
///
/// Only the request line matters (`GET /healthz HTTP/1.1`): the method and the path without its query. The head ends
/// at the first blank line, CRLF or bare LF.
public enum AdminRequest: Equatable, Sendable {
    /// No blank line yet: read more.
    case incomplete
    /// No end of head within the limit: answer 431.
    case tooLarge
    /// A method other than GET or HEAD, or no path: answer 405.
    case methodNotAllowed
    /// `GET` (or `HEAD` when `headOnly`) of `path`.
    case get(path: String, headOnly: Bool)

    /// Parses the bytes received so far; `.tooLarge` once `maxBytes` arrived without the end of the head.
    public static func parse(_ bytes: [UInt8], maxBytes: Int) -> AdminRequest {
        guard let end = headEnd(bytes) else { return bytes.count >= maxBytes ? .tooLarge : .incomplete }
        let line = String(decoding: bytes[..<end].prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        guard parts.count >= 2, parts[0] == "GET" || parts[0] == "HEAD" else { return .methodNotAllowed }
        return .get(path: String(parts[1].split(separator: "?").first ?? ""), headOnly: parts[0] == "HEAD")
    }

    /// The token of an `Authorization: Bearer TOKEN` header in a complete request head (the header name in any
    /// case), or nil.
    public static func bearerToken(_ bytes: [UInt8]) -> String? {
        guard let end = headEnd(bytes) else { return nil }
        let head = String(decoding: bytes[..<end], as: UTF8.self)
        for line in head.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }).dropFirst() {
            guard let colon = line.firstIndex(of: ":"),
                  line[..<colon].lowercased() == "authorization" else { continue }
            let value = String(line[line.index(after: colon)...]).trimmingSpaces
            let words = value.split(separator: " ", maxSplits: 1)
            guard words.count == 2, words[0].lowercased() == "bearer" else { return nil }
            return String(words[1]).trimmingSpaces
        }
        return nil
    }

    /// Index after the blank line that ends an HTTP request head (CRLF or bare LF), if present.
    static func headEnd(_ bytes: [UInt8]) -> Int? {
        var i = 0
        while i < bytes.count {
            if bytes[i] == 10 {
                if i + 1 < bytes.count && bytes[i + 1] == 10 { return i + 2 }
                if i + 2 < bytes.count && bytes[i + 1] == 13 && bytes[i + 2] == 10 { return i + 3 }
            }
            i += 1
        }
        return nil
    }
}
