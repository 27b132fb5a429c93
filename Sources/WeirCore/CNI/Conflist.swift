/// weir's entry in the node's primary CNI network config, as `weir cni-install` writes it:
/// `{"type": "weir", "agentSocket": ...}`, with `"failOpen": true` only when asked for.
public struct CNIEntry: Equatable, Sendable {
    public static let type = "weir"

    public var agentSocket: String
    public var failOpen: Bool

    public init(agentSocket: String = CNIConfig.defaultAgentSocket, failOpen: Bool = false) {
        self.agentSocket = agentSocket
        self.failOpen = failOpen
    }

    public var json: JSONValue {
        var members: [(String, JSONValue)] = [("type", .string(Self.type)), ("agentSocket", .string(agentSocket))]
        if failOpen { members.append(("failOpen", .bool(true))) }
        return .object(members)
    }
}

/// One file of the CNI config directory that a runtime would load: a `*.conf` (one plugin) or a `*.conflist` (a
/// chain), read as libcni reads it. A file that does not parse, or lacks what libcni requires (a conf's `type`, a
/// list's `name` and a non-empty `plugins`), is not one: the runtime skips it, and so does the installer.
public struct CNIConfFile: Equatable, Sendable {
    public enum Kind: Equatable, Sendable { case conf, conflist }

    public let name: String
    public let kind: Kind
    public let value: JSONValue

    public init?(name: String, bytes: [UInt8]) {
        guard let kind = Self.kind(of: name), let value = try? JSONValue.parse(bytes) else { return nil }
        // A conf two levels below the parser's bound: wrapped into a conflist it gains two, and weir must read back
        // what it writes (a runtime's parser has no such bound, but no real config comes near it).
        if kind == .conf && Self.depth(value) > JSONValue.maxDepth - 2 { return nil }
        switch kind {
        case .conf:
            guard let type = value[member: "type"]?.stringValue, !type.isEmpty else { return nil }
        case .conflist:
            guard value[member: "name"]?.stringValue != nil, let plugins = value[member: "plugins"]?.arrayValue,
                  !plugins.isEmpty, plugins.allSatisfy({ if case .object = $0 { true } else { false } })
            else { return nil }
        }
        self.name = name
        self.kind = kind
        self.value = value
    }

    /// The kind a file name says, nil for a name a runtime does not load (the installer's own temporary files,
    /// `*.json`, anything else). A name that is only the extension (`.conf`) is a hidden file, not a config.
    public static func kind(of name: String) -> Kind? {
        if name.hasSuffix(".conflist") && name.count > ".conflist".count { return .conflist }
        if name.hasSuffix(".conf") && name.count > ".conf".count { return .conf }
        return nil
    }

    /// How deep arrays and objects nest in `value` (a scalar is 0).
    static func depth(_ value: JSONValue) -> Int {
        switch value {
        case .array(let items): return 1 + (items.map(depth).max() ?? 0)
        case .object(let members): return 1 + (members.map { depth($0.1) }.max() ?? 0)
        default: return 0
        }
    }

    /// The list's (or the single plugin's) `cniVersion`; "" when it has none.
    public var cniVersion: String { value[member: "cniVersion"]?.stringValue ?? "" }

    /// The plugins this file chains, in order.
    public var plugins: [JSONValue] {
        kind == .conf ? [value] : value[member: "plugins"]?.arrayValue ?? []
    }

    /// Whether weir is among the plugins.
    public var hasWeir: Bool { plugins.contains(where: Conflist.isWeir) }
}

/// A change to one file of the config directory: write `text` to `write` (temporary file, then rename, with the mode
/// of `source`), then remove `remove` (the `.conf` a new `.conflist` replaces).
public struct ConflistEdit: Equatable, Sendable {
    /// The file the edit was made from, whose mode the written file keeps.
    public var source: String
    public var write: String
    public var text: String
    public var remove: String?
}

/// What `weir cni-install` does to the config directory, decided from the files' names and bytes alone (istio-cni's
/// and linkerd-cni's installers are the model: reference §2).
public enum Conflist {
    /// What an install finds.
    public enum Plan: Equatable, Sendable {
        /// No loadable `*.conf` or `*.conflist`: the node's network plugin has not written its config yet.
        case noPrimary
        /// The primary config's version is one weir's plugin does not speak: every ADD would fail, so weir is not
        /// added (a node whose pods cannot start is worse than one without weir).
        case unsupportedVersion(file: String, cniVersion: String)
        /// weir is already the last plugin of the primary, with these settings: nothing to write.
        case unchanged(file: String)
        case edit(ConflistEdit)
    }

    /// Whether a plugin entry is weir's.
    public static func isWeir(_ plugin: JSONValue) -> Bool { plugin[member: "type"]?.stringValue == CNIEntry.type }

    /// The primary config: the first loadable file in byte order of the names, as libcni sorts them.
    public static func primary(_ files: [CNIConfFile]) -> CNIConfFile? {
        files.min { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
    }

    /// Puts `entry` last in the primary config: a conflist loses any earlier weir entry and gets this one appended;
    /// a conf is wrapped into `{cniVersion, name, plugins: [conf, weir]}` written as `<name>.conflist` (the conf
    /// file removed). Other files are left alone.
    public static func install(_ entry: CNIEntry, files: [CNIConfFile]) -> Plan {
        guard let primary = primary(files) else { return .noPrimary }
        guard CNIVersion.supported.contains(primary.cniVersion) else {
            return .unsupportedVersion(file: primary.name, cniVersion: primary.cniVersion)
        }
        switch primary.kind {
        case .conflist:
            let plugins = primary.plugins.filter { !isWeir($0) } + [entry.json]
            let updated = replacing("plugins", with: .array(plugins), in: primary.value)
            if updated == primary.value { return .unchanged(file: primary.name) }
            return .edit(ConflistEdit(source: primary.name, write: primary.name, text: updated.rendered))
        case .conf:
            let wrapped = JSONValue.object([
                ("cniVersion", .string(primary.cniVersion)),
                ("name", .string(primary.value[member: "name"]?.stringValue ?? "k8s-pod-network")),
                ("plugins", .array(primary.plugins.filter { !isWeir($0) } + [entry.json])),
            ])
            return .edit(ConflistEdit(source: primary.name, write: primary.name + "list", text: wrapped.rendered,
                                      remove: primary.name))
        }
    }

    /// Takes every weir entry out of every conflist (not only the primary: the primary may have changed since weir
    /// was added). A conf that weir once wrapped stays a conflist, which runtimes load the same way.
    public static func uninstall(files: [CNIConfFile]) -> [ConflistEdit] {
        files.filter { $0.kind == .conflist && $0.hasWeir }
            .sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
            .map { file in
                let updated = replacing("plugins", with: .array(file.plugins.filter { !isWeir($0) }), in: file.value)
                return ConflistEdit(source: file.name, write: file.name, text: updated.rendered)
            }
    }

    /// `object` with member `key` set to `value` where it stands (appended when missing).
    static func replacing(_ key: String, with value: JSONValue, in object: JSONValue) -> JSONValue {
        guard case .object(var members) = object else { return object }
        if let i = members.firstIndex(where: { $0.0 == key }) {
            members[i].1 = value
        } else {
            members.append((key, value))
        }
        return .object(members)
    }
}
