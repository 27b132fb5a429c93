/// What `weir tune` will do with each key of a profile.
public enum TuneAction: Equatable, Sendable {
    /// Write the desired value.
    case set
    /// The node already has the desired value.
    case keep
    /// Raise-only key whose current value is already higher.
    case raiseOnlySkip
    /// The key does not exist on this node (or its value cannot be read).
    case notAvailable
    /// A global key seen from a non-initial network namespace: only the initial namespace can change it.
    case skipGlobal

    public var label: String {
        switch self {
        case .set: return "set"
        case .keep: return "keep"
        case .raiseOnlySkip: return "raise-only skip"
        case .notAvailable: return "not available"
        case .skipGlobal: return "skip (global)"
        }
    }
}

/// One row of a plan.
public struct PlanItem: Equatable, Sendable {
    public let key: SysctlKey
    public let current: SysctlValue?
    public let desired: SysctlValue?
    public let action: TuneAction
    /// Why, in a few words (empty when the action says it all).
    public let note: String
}

/// What weir knows about the node when it plans.
public struct TuneEnvironment: Equatable, Sendable {
    /// True in the initial network namespace, where global keys can be written.
    public var initialNetworkNamespace: Bool
    /// Kernel modules that are loaded (or built in), e.g. `nf_conntrack`.
    public var loadedModules: Set<String>
    public var cpu: CPUBudget

    public init(initialNetworkNamespace: Bool, loadedModules: Set<String>, cpu: CPUBudget) {
        self.initialNetworkNamespace = initialNetworkNamespace
        self.loadedModules = loadedModules
        self.cpu = cpu
    }
}

/// The result of comparing a profile with the node: one item per key, sorted by key name.
public struct TunePlan: Equatable, Sendable {
    public let profile: String
    public let items: [PlanItem]
    /// Derived conntrack maximum from the CPU budget, when the profile derives it.
    public let derivedConntrackMax: Int?

    /// Items weir will write.
    public var changes: [PlanItem] { items.filter { $0.action == .set } }

    /// Compares `profile` with current values. `read` returns the text of a key's file, nil when it does not exist.
    /// Throws `ConfigError` when a key needs a kernel module that is not loaded; nothing has been changed then.
    public static func make(profile: Profile, environment: TuneEnvironment,
                            read: (SysctlKey) -> String?) throws -> TunePlan {
        for entry in profile.entries {
            if let module = entry.key.module, !environment.loadedModules.contains(module) {
                throw ConfigError("profile \(profile.name): \(entry.key.name) needs kernel module \(module), "
                    + "which is not loaded; expected it loaded (modprobe \(module)) or the key removed")
            }
        }
        let currents = Dictionary(uniqueKeysWithValues: profile.entries.map { entry in
            (entry.key.name, read(entry.key).flatMap { SysctlValue(parsing: $0) })
        })
        var derivedMax: Int?
        var items: [PlanItem] = []
        // The derived conntrack maximum after raise-only: the hash size follows it.
        var effectiveMax: Int?
        if let maxEntry = profile.entry(named: KeyRegistry.conntrackMaxName) {
            var desired: Int?
            switch maxEntry.desired {
            case .derived:
                desired = maxEntry.key.shape.clamping(profile.conntrack.maximum(cpus: environment.cpu.usable))
                derivedMax = desired
            case .literal(let value):
                desired = value.scalar
            }
            if let d = desired, let current = currents[maxEntry.key.name]??.scalar, maxEntry.raiseOnly {
                effectiveMax = max(d, current)
            } else {
                effectiveMax = desired
            }
        }
        for entry in profile.entries {
            let current = currents[entry.key.name] ?? nil
            var desired: SysctlValue
            var note = ""
            switch entry.desired {
            case .literal(let value):
                desired = value
            case .derived where entry.key.name == KeyRegistry.conntrackMaxName:
                let cpus = environment.cpu.usable
                desired = SysctlValue(entry.key.shape.clamping(profile.conntrack.maximum(cpus: cpus)))
                note = "max(\(profile.conntrack.perCore) x \(cpus) CPUs, \(profile.conntrack.floor)), "
                    + "cap \(profile.conntrack.cap)"
            case .derived:
                let base = effectiveMax ?? currents[KeyRegistry.conntrackMaxName]??.scalar
                    ?? profile.conntrack.maximum(cpus: environment.cpu.usable)
                desired = SysctlValue(entry.key.shape.clamping(ConntrackSizing.hashSize(forMaximum: base)))
                note = "conntrack max \(base) / 4"
            }
            let action: TuneAction
            if entry.key.scope == .global && !environment.initialNetworkNamespace {
                action = .skipGlobal
                note = "global key; only the initial network namespace can change it"
            } else if current == nil {
                action = .notAvailable
                note = "\(entry.key.path) does not exist or is not a number here"
            } else if current == desired {
                action = .keep
            } else if entry.raiseOnly, let c = current, c.components.count == desired.components.count,
                      zip(c.components, desired.components).contains(where: { $0 > $1 }) {
                // Raise-only: never lower any component below what the node has.
                let raised = SysctlValue(zip(c.components, desired.components).map { max($0, $1) })
                let reason = "node already has \(c), higher than \(desired)"
                note = note.isEmpty ? reason : note + "; " + reason
                if raised == c {
                    action = .raiseOnlySkip
                } else {
                    action = .set
                    desired = raised
                }
            } else {
                action = .set
            }
            items.append(PlanItem(key: entry.key, current: current, desired: desired, action: action, note: note))
        }
        return TunePlan(profile: profile.name, items: items, derivedConntrackMax: derivedMax)
    }

    /// The dry-run table: key, current, desired, action, note. Stable column widths from the content.
    public func table() -> String {
        var rows = [["KEY", "CURRENT", "DESIRED", "ACTION", "NOTE"]]
        for item in items {
            rows.append([item.key.name, item.current?.description ?? "-", item.desired?.description ?? "-",
                         item.action.label, item.note])
        }
        return TextTable.render(rows)
    }
}

/// Left-aligned columns separated by two spaces; trailing spaces trimmed.
public enum TextTable {
    public static func render(_ rows: [[String]]) -> String {
        let columns = rows.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for row in rows {
            for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) }
        }
        var out = ""
        for row in rows {
            var line = ""
            for (i, cell) in row.enumerated() {
                line += cell
                if i < row.count - 1 { line += String(repeating: " ", count: widths[i] - cell.count + 2) }
            }
            while line.hasSuffix(" ") { line.removeLast() }
            out += line + "\n"
        }
        return out
    }
}
