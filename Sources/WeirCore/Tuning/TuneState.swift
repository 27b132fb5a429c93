/// What `weir tune` changed, saved before the first write so `weir tune --revert` can put it back.
public struct TuneState: Equatable, Sendable {
    /// One key weir changed, with the value the node had before weir touched it.
    public struct Saved: Equatable, Sendable {
        public let key: String
        public let path: String
        public let previous: String

        public init(key: String, path: String, previous: String) {
            self.key = key
            self.path = path
            self.previous = previous
        }
    }

    public var version: Int
    /// Profiles applied since the state file was created, in order.
    public var profiles: [String]
    /// Saved values, sorted by key.
    public var saved: [Saved]

    public init(version: Int = 1, profiles: [String], saved: [Saved]) {
        self.version = version
        self.profiles = profiles
        self.saved = saved.sorted { $0.key < $1.key }
    }

    /// Adds the previous values of `plan`'s changes. A key already saved keeps its older value, so a revert after
    /// several applies returns the node to what it had before the first one.
    public func merging(_ plan: TunePlan) -> TuneState {
        var byKey = Dictionary(uniqueKeysWithValues: saved.map { ($0.key, $0) })
        for item in plan.changes where byKey[item.key.name] == nil {
            guard let current = item.current else { continue }
            byKey[item.key.name] = Saved(key: item.key.name, path: item.key.path, previous: current.description)
        }
        return TuneState(version: version, profiles: profiles + [plan.profile], saved: Array(byKey.values))
    }

    public static let empty = TuneState(profiles: [], saved: [])

    /// The state file's text: members in a fixed order (the order earlier releases wrote them in, sorted), so an
    /// unchanged state is byte for byte the same file.
    public var json: String {
        JSONValue.object([
            ("profiles", .array(profiles.map { .string($0) })),
            ("saved", .array(saved.map {
                .object([("key", .string($0.key)), ("path", .string($0.path)), ("previous", .string($0.previous))])
            })),
            ("version", .int(Int64(version))),
        ]).rendered
    }

    /// Reads the state file's text; nil when it is not a state weir wrote (members it does not know are ignored).
    public init?(json bytes: [UInt8]) {
        guard let value = try? JSONValue.parse(bytes),
              let version = value[member: "version"]?.intValue, let v = Int(exactly: version),
              let profiles = value[member: "profiles"]?.arrayValue, let saved = value[member: "saved"]?.arrayValue
        else { return nil }
        var names: [String] = []
        for p in profiles {
            guard let name = p.stringValue else { return nil }
            names.append(name)
        }
        var items: [Saved] = []
        for s in saved {
            guard let key = s[member: "key"]?.stringValue, let path = s[member: "path"]?.stringValue,
                  let previous = s[member: "previous"]?.stringValue else { return nil }
            items.append(Saved(key: key, path: path, previous: previous))
        }
        self.init(version: v, profiles: names, saved: items)
    }
}
