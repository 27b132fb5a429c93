/// Bad input from an operator: a flag, an environment variable, a profile or a config file.
///
/// The CLI prints `message` as one line and exits with status 2, before anything touches the system.
public struct ConfigError: Error, Equatable, CustomStringConvertible {
    public let message: String
    /// Where the refused value came from, when one value is to blame; callers branch on this, never on the text.
    public let source: ValueSource?

    public init(_ message: String, source: ValueSource? = nil) {
        self.message = message
        self.source = source
    }

    /// A value refused with the problem, as every parser words it: `SOURCE 'VALUE' PROBLEM`.
    public init<S: StringProtocol>(_ source: ValueSource, _ value: S, _ problem: String) {
        self.init("\(source) \(quotedValue(value)) \(problem)", source: source)
    }

    public var description: String { message }

    /// Two errors are the same when an operator reads the same line: the source is how it was found, not what it
    /// says.
    public static func == (lhs: ConfigError, rhs: ConfigError) -> Bool { lhs.message == rhs.message }
}

/// Where a value came from, as messages name it. Made for every value (every entry of a list file), so it holds
/// parts and puts its text together only when a message needs it.
public enum ValueSource: Hashable, Sendable, CustomStringConvertible {
    /// A command-line flag: `-p`, `--proxy-port`.
    case flag(String)
    /// A process environment variable: `ENVOY_PORT`.
    case variable(String)
    /// A `weir run --config` key: `weir.conf:3 ENVOY_PORT`.
    case configFile(path: String, line: Int, key: String)
    /// One line of a `@PATH` list given by `list` (the list's own source, as text): `-i @/etc/cidrs:7`.
    case listFile(String, path: String, line: Int)
    /// A flag's default, named by the flag: `-p (default)`.
    case defaultValue(String)

    public var description: String {
        switch self {
        case .flag(let name), .variable(let name): return name
        case .configFile(let path, let line, let key): return "\(path):\(line) \(key)"
        case .listFile(let list, let path, let line): return "\(list) @\(oneLineMessage(path)):\(line)"
        case .defaultValue(let flag): return "\(flag) (default)"
        }
    }
}
