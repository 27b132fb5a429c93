/// weir's configuration file (`weir run --config FILE`): `KEY=VALUE` lines, the same shape as Istio's `cluster.env`
/// and a systemd `EnvironmentFile=`. Capture settings use istio-iptables' environment variable names
/// (`ISTIO_SERVICE_CIDR=...`), weir's own settings `WEIR_*` names. `#` starts a comment line; blank lines are skipped;
/// a value may be wrapped in one pair of single or double quotes; `export ` before a key is allowed.
public struct ConfigFile: Equatable, Sendable {
    /// weir's own keys and the `weir run` flag each one stands for.
    public static let weirKeys: [(key: String, flag: String)] = [
        ("WEIR_PROFILE", "--profile"), ("WEIR_PROFILES_DIR", "--profiles-dir"), ("WEIR_STATE_DIR", "--state-dir"),
        ("WEIR_ADMIN_ADDRESS", "--admin-address"), ("WEIR_CONNECT_TIMEOUT", "--connect-timeout"),
        ("WEIR_IDLE_TIMEOUT", "--idle-timeout"), ("WEIR_MAX_CONNECTIONS", "--max-connections"),
        ("WEIR_BUFFER_LIMIT", "--buffer-limit"), ("WEIR_DRAIN_TIMEOUT", "--drain-timeout"),
        ("WEIR_WORKERS", "--workers"), ("WEIR_RECONCILE_INTERVAL", "--reconcile-interval"),
        ("WEIR_CLEANUP_ON_EXIT", "--cleanup-on-exit"), ("WEIR_IPV4_ONLY", "--ipv4-only"),
        ("WEIR_EXCLUDE_CONTROL_PATH", "--exclude-control-path"), ("WEIR_API_SERVERS", "--api-servers"),
        ("WEIR_REGISTRY_CIDRS", "--registry-cidrs"), ("WEIR_REGISTRY_PORTS", "--registry-ports"),
        ("WEIR_METRICS_ADDRESS", "--metrics-address"), ("WEIR_METRICS_TOKEN_FILE", "--metrics-token-file"),
        ("WEIR_POD_MODE", "--pod-mode"), ("WEIR_RUN_DIR", "--run-dir"), ("WEIR_CAPTURE_NODE", "--capture-node"),
        ("WEIR_MAX_CONNECTIONS_PER_POD", "--max-connections-per-pod"),
        ("WEIR_MAX_CONNECTION_RATE_PER_POD", "--max-connection-rate-per-pod"),
        ("WEIR_TPROXY_SOURCE_PORTS", "--tproxy-source-ports"),
    ]

    /// The key that stands for weir's `flag` (`--idle-timeout`: `WEIR_IDLE_TIMEOUT`).
    public static func key(forFlag flag: String) -> String {
        guard let key = weirKeys.first(where: { $0.flag == flag })?.key else {
            preconditionFailure("\(flag) has no WEIR_ key in ConfigFile.weirKeys")
        }
        return key
    }

    /// The file's path, as given.
    public let path: String
    /// Values by key; a key given twice keeps the last value, as a shell would.
    public let values: [String: String]
    /// Line number of each key's (last) value, for messages.
    public let lines: [String: Int]

    /// Where a key's value came from: `FILE:LINE KEY`.
    public func source(_ key: String) -> String { valueSource(key).description }

    /// Where a key's value came from, as a `ValueSource`.
    public func valueSource(_ key: String) -> ValueSource { .configFile(path: path, line: lines[key] ?? 0, key: key) }

    /// Parses the text of `path`. Every key must be an istio-iptables variable or a `WEIR_*` key in `weirKeys`.
    public static func parse(_ text: String, path: String) throws -> ConfigFile {
        let known = CaptureFlag.environmentNames.union(weirKeys.map(\.key))
        var values: [String: String] = [:]
        var lines: [String: Int] = [:]
        var number = 0
        // "\r\n" is one Character in Swift: split on it as well as on "\n".
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            number += 1
            let trimmed = String(line).trimmingSpaces
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            var body = Substring(trimmed)
            if body.hasPrefix("export ") { body = body.dropFirst(7) }
            guard let eq = body.firstIndex(of: "=") else {
                throw ConfigError("\(path):\(number) \(quotedValue(trimmed)) is not KEY=VALUE: expected a "
                    + "line like ISTIO_INBOUND_PORTS=* or a # comment")
            }
            let key = String(body[..<eq]).trimmingSpaces
            guard known.contains(key) else {
                throw ConfigError("\(path):\(number) \(quotedValue(key)) is not a known key: expected an "
                    + "istio-iptables variable (ISTIO_SERVICE_CIDR, ENVOY_PORT, ...) or a WEIR_ setting "
                    + "(see 'weir run --help')")
            }
            var value = String(body[body.index(after: eq)...]).trimmingSpaces
            if value.count >= 2, let q = value.first, q == "\"" || q == "'", value.last == q {
                value = String(value.dropFirst().dropLast())
            }
            if value.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" }) {
                throw ConfigError("\(path):\(number) \(key) \(quotedValue(value)) holds a control character: "
                    + "expected printable text")
            }
            values[key] = value
            lines[key] = number
        }
        return ConfigFile(path: path, values: values, lines: lines)
    }

    /// A boolean setting: true, false, 1, 0, yes, no (any case).
    public func bool(_ key: String) throws -> Bool? {
        guard let v = values[key] else { return nil }
        switch v.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off", "": return false
        default: throw ConfigError(valueSource(key), v, "is not a boolean: expected true or false")
        }
    }
}
