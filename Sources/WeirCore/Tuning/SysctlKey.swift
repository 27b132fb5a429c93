/// The value of a kernel tunable: one or more integers, as the kernel prints them (`32768\t60999`).
public struct SysctlValue: Equatable, Hashable, Sendable, CustomStringConvertible {
    public let components: [Int]

    public init(_ components: [Int]) { self.components = components }
    public init(_ value: Int) { self.components = [value] }

    /// Parses kernel text or profile text: integers separated by spaces or tabs. Nil for anything else.
    public init?(parsing text: String) {
        let fields = text.tuningTrimmed.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard !fields.isEmpty else { return nil }
        var values: [Int] = []
        for field in fields {
            guard let value = Int(field) else { return nil }
            values.append(value)
        }
        components = values
    }

    /// The single integer, for one-component values.
    public var scalar: Int? { components.count == 1 ? components[0] : nil }

    /// Space separated, as written to the kernel and shown in tables.
    public var description: String { components.map(String.init).joined(separator: " ") }
}

/// What a key's value must look like.
public enum ValueShape: Equatable, Sendable, CustomStringConvertible {
    /// One integer within bounds.
    case integer(ClosedRange<Int>)
    /// 0 or 1.
    case boolean
    /// One integer from a fixed set.
    case choice([Int])
    /// Two integers `low high` within bounds, low <= high.
    case range(ClosedRange<Int>)
    /// Three integers `min default max` (socket buffer sizes), each within bounds, non-decreasing.
    case triple(ClosedRange<Int>)

    public var description: String {
        switch self {
        case .integer(let bounds): return "an integer \(bounds.lowerBound)..\(bounds.upperBound)"
        case .boolean: return "0 or 1"
        case .choice(let values): return "one of " + values.map(String.init).joined(separator: ", ")
        case .range(let bounds):
            return "two integers 'low high' with \(bounds.lowerBound) <= low <= high <= \(bounds.upperBound)"
        case .triple(let bounds):
            return "three integers 'min default max', non-decreasing, each \(bounds.lowerBound)..\(bounds.upperBound)"
        }
    }

    /// True when `value` fits this shape.
    public func accepts(_ value: SysctlValue) -> Bool {
        let c = value.components
        switch self {
        case .integer(let bounds): return c.count == 1 && bounds.contains(c[0])
        case .boolean: return c.count == 1 && (c[0] == 0 || c[0] == 1)
        case .choice(let values): return c.count == 1 && values.contains(c[0])
        case .range(let bounds): return c.count == 2 && bounds.contains(c[0]) && bounds.contains(c[1]) && c[0] <= c[1]
        case .triple(let bounds):
            return c.count == 3 && c.allSatisfy(bounds.contains) && c[0] <= c[1] && c[1] <= c[2]
        }
    }

    /// `value` moved into the bounds of an integer shape; other shapes leave it as it is. For derived values, which
    /// no profile line bounds: a `conntrack.cap` above what the kernel takes, a hash size from a huge maximum.
    public func clamping(_ value: Int) -> Int {
        guard case .integer(let bounds) = self else { return value }
        return min(max(value, bounds.lowerBound), bounds.upperBound)
    }

    /// Raise-only compares single integers, and triples (buffer sizes) component by component; a port range or a
    /// choice has no "higher".
    public var supportsRaiseOnly: Bool {
        switch self {
        case .integer, .triple: return true
        default: return false
        }
    }
}

/// Whether a key belongs to the network namespace or to the whole kernel.
public enum KeyScope: String, Equatable, Sendable {
    /// Each network namespace has its own value, writable inside the namespace.
    case networkNamespace = "per-netns"
    /// One value for the whole kernel; only the initial network namespace can change it.
    case global = "global"
}

/// A kernel tunable weir knows: where it lives, what it may hold, and which namespace owns it.
public struct SysctlKey: Equatable, Sendable {
    /// Dotted sysctl name (`net.core.somaxconn`), or for module parameters the dotted /sys path.
    public let name: String
    /// Absolute path (under /proc/sys or /sys) on a real node.
    public let path: String
    public let shape: ValueShape
    public let scope: KeyScope
    /// Kernel module the key belongs to, when it only exists with that module loaded.
    public let module: String?

    public init(name: String, path: String, shape: ValueShape, scope: KeyScope, module: String? = nil) {
        self.name = name
        self.path = path
        self.shape = shape
        self.scope = scope
        self.module = module
    }

    /// A sysctl under /proc/sys; the path follows from the name.
    static func sysctl(_ name: String, _ shape: ValueShape, _ scope: KeyScope, module: String? = nil) -> SysctlKey {
        let path = "/proc/sys/" + name.split(separator: ".").joined(separator: "/")
        return SysctlKey(name: name, path: path, shape: shape, scope: scope, module: module)
    }
}
