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
    /// Throws `ConfigError` naming file:line, the key and what was expected.
    public init(name: String, text: String, file: String) throws {
        var entries: [String: Entry] = [:]
        var parameters: [String: Int] = [:]
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
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
                throw ConfigError("\(place): expected 'key = value', got '\(statement)'")
            }
            let name = statement[..<equals].tuningTrimmed
            var words = statement[statement.index(after: equals)...]
                .split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard !name.isEmpty else { throw ConfigError("\(place): expected a key before '='") }
            if entries[name] != nil || parameters[name] != nil {
                throw ConfigError("\(place): \(name) is set twice; expected each key once")
            }

            if Profile.parameterNames.contains(name) {
                guard words.count == 1, let value = Int(words[0]), value > 0 else {
                    throw ConfigError("\(place): \(name): value '\(words.joined(separator: " "))' is not valid, "
                        + "expected a positive integer")
                }
                parameters[name] = value
                continue
            }
            guard let key = KeyRegistry.key(named: name) else {
                if name.hasPrefix("conntrack.") {
                    throw ConfigError("\(place) '\(name)' is not a parameter: expected one of "
                        + Profile.parameterNames.joined(separator: ", "))
                }
                throw ConfigError("\(place) '\(name)' is not a key weir knows: expected one "
                    + "(see 'weir tune --list-keys')")
            }
            var raiseOnly = false
            if words.last == "raise-only" {
                raiseOnly = true
                words.removeLast()
                guard key.shape.supportsRaiseOnly else {
                    throw ConfigError("\(place): \(name): raise-only applies to integers and buffer triples, "
                        + "but this key expects \(key.shape)")
                }
            }
            let valueText = words.joined(separator: " ")
            let desired: Desired
            if valueText == "derived" {
                guard name == KeyRegistry.conntrackMaxName || name == KeyRegistry.hashSizeName else {
                    throw ConfigError("\(place): \(name): 'derived' is only valid for "
                        + "\(KeyRegistry.conntrackMaxName) and \(KeyRegistry.hashSizeName); expected \(key.shape)")
                }
                desired = .derived
            } else {
                guard let value = SysctlValue(parsing: valueText), key.shape.accepts(value) else {
                    throw ConfigError("\(place) \(name) '\(valueText)' is not valid: expected \(key.shape)")
                }
                desired = .literal(value)
            }
            entries[name] = Entry(key: key, desired: desired, raiseOnly: raiseOnly, comment: comment,
                                  line: lineNumber)
        }
        let defaults = ConntrackSizing.kubeProxyDefaults
        let sizing = ConntrackSizing(perCore: parameters["conntrack.per_core"] ?? defaults.perCore,
                                     floor: parameters["conntrack.min"] ?? defaults.floor,
                                     cap: parameters["conntrack.cap"] ?? defaults.cap)
        guard sizing.floor <= sizing.cap else {
            throw ConfigError("\(file): conntrack.min \(sizing.floor) is above conntrack.cap \(sizing.cap); "
                + "expected min <= cap")
        }
        self.name = name
        self.entries = entries.values.sorted { $0.key.name < $1.key.name }
        self.conntrack = sizing
    }

    /// The setting for a key, if the profile has one.
    public func entry(named name: String) -> Entry? { entries.first { $0.key.name == name } }

    /// Checks a profile name given on the command line: letters, digits, '-' and '_' only.
    public static func validateName(_ name: String) throws {
        let allowed = name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_"
        }
        guard !name.isEmpty, allowed else {
            throw ConfigError("profile name '\(name)' is not valid: expected letters, digits, '-' or '_'")
        }
    }
}
