/// Bad input from an operator: a flag, an environment variable, a profile or a config file.
///
/// The CLI prints `message` as one line and exits with status 2, before anything touches the system.
public struct ConfigError: Error, Equatable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
