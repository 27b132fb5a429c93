/// A tuning profile: the keys it sets, with the values and the reason for each.
///
/// Format (one setting per line; see profiles/README.md):
///
///     # comment lines and blank lines are ignored
///     net.core.somaxconn = 65535 raise-only      # why this value
///     net.ipv4.ip_local_port_range = 10240 65535 # why
///     conntrack.per_core = 32768                 # parameter of the derived conntrack sizing
///     net.netfilter.nf_conntrack_max = derived raise-only
///
/// `raise-only` (integers, and buffer triples component by component) means: never lower what the node already has.
/// `derived` is allowed for `net.netfilter.nf_conntrack_max` (kube-proxy's formula over the CPU budget, parameters
/// `conntrack.per_core`, `conntrack.min`, `conntrack.cap`) and for `sys.module.nf_conntrack.parameters.hashsize`
/// (conntrack max / 4).
public struct Profile: Equatable, Sendable {
    /// What a setting asks for.
    public enum Desired: Equatable, Sendable {
        case literal(SysctlValue)
        case derived
    }

    /// One setting line.
    public struct Entry: Equatable, Sendable {
        public let key: SysctlKey
        public let desired: Desired
        public let raiseOnly: Bool
        /// The `# why` text on the line, if any.
        public let comment: String
        /// Line number in the file (1-based).
        public let line: Int
    }

    public let name: String
    /// Settings sorted by key name.
    public let entries: [Entry]
    public let conntrack: ConntrackSizing

    /// Names of the `conntrack.*` parameters a profile may set.
    public static let parameterNames = ["conntrack.cap", "conntrack.min", "conntrack.per_core"]

    /// Parses profile text. `file` names the source in error messages (`profiles/ingress.profile`).
    /// Lines end with `\n` or `\r\n`. Throws `ConfigError` naming file:line, the key, the value (quoted with
    /// `quotedValue`) and what was expected.
    public init(name: String, text: String, file: String) throws {
        var entries: [String: Entry] = [:]
        var parameters: [String: (value: Int, line: Int)] = [:]
        var lineNumber = 0
        // "\r\n" is one Character in Swift: split on it as well as on "\n".
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNumber += 1
            let place = "\(file):\(lineNumber)"
            var content = Substring(rawLine)
            var comment = ""
            if let hash = content.firstIndex(of: "#") {
                comment = content[content.index(after: hash)...].tuningTrimmed
                content = content[..<hash]
            }
            let statement = content.tuningTrimmed
            if statement.isEmpty { continue }
            guard let equals = statement.firstIndex(of: "=") else {
                throw ConfigError("\(place) \(quotedValue(statement)) is not 'key = value': expected a line like "
                    + "'net.core.somaxconn = 4096' or a # comment")
            }
            let name = statement[..<equals].tuningTrimmed
            let valueText = statement[statement.index(after: equals)...].tuningTrimmed
            var words = valueText.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard !name.isEmpty else {
                throw ConfigError("\(place) \(quotedValue(statement)) has no key before '=': expected 'key = value'")
            }
            if let first = entries[name]?.line ?? parameters[name]?.line {
                throw ConfigError("\(place) \(quotedValue(name)) is set again (first on line \(first)): "
                    + "expected each key once")
            }

            if Profile.parameterNames.contains(name) {
                guard words.count == 1, let value = Int(words[0]), value > 0 else {
                    throw ConfigError("\(place) \(name) \(quotedValue(valueText)) is not valid: "
                        + "expected a positive integer")
                }
                parameters[name] = (value, lineNumber)
                continue
            }
            guard let key = KeyRegistry.key(named: name) else {
                if name.hasPrefix("conntrack.") {
                    throw ConfigError("\(place) \(quotedValue(name)) is not a parameter: expected one of "
                        + Profile.parameterNames.joined(separator: ", "))
                }
                throw ConfigError("\(place) \(quotedValue(name)) is not a key weir knows: expected one "
                    + "(see 'weir tune --list-keys')")
            }
            var raiseOnly = false
            if words.last == "raise-only" {
                raiseOnly = true
                words.removeLast()
                guard key.shape.supportsRaiseOnly else {
                    throw ConfigError("\(place) \(name) \(quotedValue(valueText)) is not valid: raise-only applies "
                        + "to integers and buffer triples; expected \(key.shape) without raise-only")
                }
            }
            let desiredText = words.joined(separator: " ")
            let desired: Desired
            if desiredText == "derived" {
                guard name == KeyRegistry.conntrackMaxName || name == KeyRegistry.hashSizeName else {
                    throw ConfigError("\(place) \(name) \(quotedValue(valueText)) is not valid: 'derived' is only "
                        + "valid for \(KeyRegistry.conntrackMaxName) and \(KeyRegistry.hashSizeName); "
                        + "expected \(key.shape)")
                }
                desired = .derived
            } else {
                guard let value = SysctlValue(parsing: desiredText), key.shape.accepts(value) else {
                    throw ConfigError("\(place) \(name) \(quotedValue(valueText)) is not valid: expected \(key.shape)")
                }
                desired = .literal(value)
            }
            entries[name] = Entry(key: key, desired: desired, raiseOnly: raiseOnly, comment: comment,
                                  line: lineNumber)
        }
        let defaults = ConntrackSizing.kubeProxyDefaults
        let sizing = ConntrackSizing(perCore: parameters["conntrack.per_core"]?.value ?? defaults.perCore,
                                     floor: parameters["conntrack.min"]?.value ?? defaults.floor,
                                     cap: parameters["conntrack.cap"]?.value ?? defaults.cap)
        guard sizing.floor <= sizing.cap else {
            let line = parameters["conntrack.min"]?.line ?? parameters["conntrack.cap"]?.line ?? 0
            throw ConfigError("\(file):\(line) conntrack.min '\(sizing.floor)' is above conntrack.cap "
                + "\(sizing.cap): expected min <= cap")
        }
        self.name = name
        self.entries = entries.values.sorted { $0.key.name < $1.key.name }
        self.conntrack = sizing
    }

    /// The setting for a key, if the profile has one.
    public func entry(named name: String) -> Entry? { entries.first { $0.key.name == name } }

    /// Checks a profile name: letters, digits, '-' and '_' only. `source` says where the name came from, for the
    /// message: `--profile`, or `FILE:LINE WEIR_PROFILE`.
    public static func validateName(_ name: String, source: String = "--profile") throws {
        let allowed = name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_"
        }
        guard !name.isEmpty, allowed else {
            throw ConfigError("\(source) \(quotedValue(name)) is not a profile name: expected letters, digits, "
                + "'-' or '_' (the NAME of a NAME.profile file)")
        }
    }
}
