/// One of weir's own ports as the operator set it (or its default): a port weir listens on (`-p`, `-z`, the admin
/// address, the validation probe) or one its rules send traffic to (`--dns-proxy-port`).
public struct PortSetting: Equatable, Sendable {
    /// Where the value came from: `-p`, `ENVOY_PORT`, `weir.conf:3 WEIR_ADMIN_ADDRESS`, or `-p (default)`.
    public var source: String
    /// The value as the setting takes it (`15001`, `127.0.0.1:15020`).
    public var text: String
    public var port: UInt16

    public init(source: String, text: String, port: UInt16) {
        self.source = source
        self.text = text
        self.port = port
    }

    /// Refuses two settings that name the same port, in one line naming both, before anything is bound or changed:
    /// the second bind would fail (or, for the probe and DNS ports, capture would land on the wrong listener).
    public static func requireDistinct(_ settings: [PortSetting]) throws {
        for (i, a) in settings.enumerated() {
            for b in settings[(i + 1)...] where a.port == b.port {
                throw ConfigError("\(a.source) \(quotedValue(a.text)) and \(b.source) \(quotedValue(b.text)) name "
                    + "the same port \(a.port): expected a different port for each")
            }
        }
    }
}

extension CaptureFlag {
    /// Where this flag's value comes from with these inputs, as `CaptureConfig.parse` reads them: the flag (`-p`),
    /// the variable (`ENVOY_PORT`, `weir.conf:3 ENVOY_PORT`), or `-p (default)` when neither is set.
    public func source(flags: [String: [String]], environment: [String: String],
                       environmentSource: (String) -> ValueSource = { .variable($0) }) -> String {
        if flags[long]?.isEmpty == false { return display }
        if let name = environments.first(where: { environment[$0] != nil }) { return environmentSource(name).description }
        return "\(display) (default)"
    }

    /// This flag's port as a `PortSetting`, with its source.
    public func portSetting(_ port: UInt16, flags: [String: [String]], environment: [String: String],
                            environmentSource: (String) -> ValueSource = { .variable($0) }) -> PortSetting {
        PortSetting(source: source(flags: flags, environment: environment, environmentSource: environmentSource),
                    text: String(port), port: port)
    }
}
