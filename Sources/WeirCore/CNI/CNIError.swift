/// A CNI plugin's failure as the spec's error object: `{cniVersion, code, msg, details}`, printed on standard output
/// (where libcni reads it; S04 and pkg/invoke, though S10's prose says stderr) with a non-zero exit.
public struct CNIError: Error, Equatable, CustomStringConvertible {
    /// The spec's well-known codes (0-99 are reserved for it). 0.4.0 knew only 1, 2, 3 and 11; a runtime of that
    /// version reads the others as a failure all the same.
    public enum Code: Int64, Sendable {
        /// The config's `cniVersion` is one this plugin does not speak.
        case incompatibleVersion = 1
        /// A field of the config is not supported.
        case unsupportedField = 2
        /// The container does not exist, so there is nothing to clean up.
        case unknownContainer = 3
        /// A `CNI_*` variable is missing or malformed.
        case invalidEnvironment = 4
        case ioFailure = 5
        /// The config on standard input is not JSON, or not an object.
        case decodeFailure = 6
        /// The config is JSON but a field is wrong.
        case invalidConfig = 7
        /// Transient: the runtime should retry (kubelet recreates the sandbox).
        case tryAgainLater = 11
        /// STATUS: the plugin cannot serve ADD.
        case notAvailable = 50
        /// STATUS: the plugin cannot serve ADD, and existing containers may have limited connectivity.
        case notAvailableExistingLimited = 51
    }

    public var code: Code
    /// One line saying what failed.
    public var msg: String
    /// More context (the agent's own words, the refused value), or empty.
    public var details: String
    /// The version the error is written in: the request's when it could be read and is supported, else the newest.
    public var cniVersion: String

    public init(_ code: Code, _ msg: String, details: String = "", cniVersion: String = CNIVersion.newest) {
        self.code = code
        self.msg = msg
        self.details = details
        self.cniVersion = cniVersion
    }

    /// The error object; `details` only when there are any (it is optional in the spec).
    public var json: JSONValue {
        var members: [(String, JSONValue)] = [("cniVersion", .string(cniVersion)), ("code", .int(code.rawValue)),
                                              ("msg", .string(msg))]
        if !details.isEmpty { members.append(("details", .string(details))) }
        return .object(members)
    }

    public var description: String { details.isEmpty ? msg : "\(msg): \(details)" }
}

/// The CNI spec versions weir's plugin speaks. 0.4.0 for runtimes that still write it (containerd 1.x configs,
/// Debian 12's podman), 1.0.0 for the rest; STATUS (a 1.1.0 verb) is answered too, for the runtimes that ask.
public enum CNIVersion {
    public static let supported = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]
    public static let newest = "1.0.0"
}
