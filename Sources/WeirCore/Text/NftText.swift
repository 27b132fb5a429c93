/// Renders a `Table` as `nft -f` text: one statement per line, stable order, byte-identical for equal input.
///
/// The text first ensures the table exists and deletes it, then declares it whole, so `nft -f` replaces weir's table
/// in one transaction exactly like the netlink batch does.
public enum NftText {
    public static func render(_ table: Table, header: [String] = []) -> String {
        var out: [String] = header.map { "# \($0)" }
        let id = "\(table.family.rawValue) \(table.name)"
        out.append("# The table also carries the nftables 'owner' and 'persist' flags when weir applies it over netlink;")
        out.append("# nft 1.0.6 cannot express those flags in text.")
        out.append("table \(id)")
        out.append("delete table \(id)")
        out.append("table \(id) {")
        for set in table.sets {
            out.append("\tset \(set.name) {")
            out.append("\t\ttype \(set.keyType.rawValue)")
            if let size = set.declaredSize { out.append("\t\tsize \(size)") }
            if set.isInterval { out.append("\t\tflags interval") }
            if !set.elements.isEmpty {
                out.append("\t\telements = { " + set.elements.map(\.description).joined(separator: ", ") + " }")
            }
            out.append("\t}")
        }
        for chain in table.chains {
            out.append("\tchain \(chain.name) {")
            if let base = chain.base {
                out.append("\t\ttype \(base.type.rawValue) hook \(base.hook.rawValue) priority \(base.priority); policy accept;")
            }
            for rule in chain.rules {
                out.append("\t\t" + render(rule, family: table.family))
            }
            out.append("\t}")
        }
        out.append("}")
        return out.joined(separator: "\n") + "\n"
    }

    public static func render(_ rule: Rule, family: TableFamily = .inet) -> String {
        (rule.matches.map(render) + rule.statements.map { render($0, family: family) }).joined(separator: " ")
    }

    static func not(_ negated: Bool) -> String { negated ? "!= " : "" }

    /// A mark as nft lists it: `0x77656972`.
    static func hexMark(_ m: UInt32) -> String {
        let digits = String(m, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }

    static func render(_ match: Match) -> String {
        switch match {
        case .iifname(let n): return "iifname \"\(n)\""
        case .oifname(let n): return "oifname \"\(n)\""
        case .iifnameInSet(let s): return "iifname @\(s)"
        case .oifnameInSet(let s): return "oifname @\(s)"
        case .l4proto(let p): return "meta l4proto \(p.rawValue)"
        case .saddr(let c): return "\(c.family.nftKeyword) saddr \(c)"
        case .daddr(let c, let neg): return "\(c.family.nftKeyword) daddr \(not(neg))\(c)"
        case .daddrInSet(let f, let s): return "\(f.nftKeyword) daddr @\(s)"
        case .saddrInSet(let f, let s): return "\(f.nftKeyword) saddr @\(s)"
        case .sport(let p, let port): return "\(p.rawValue) sport \(port)"
        case .dport(let p, let port, let neg): return "\(p.rawValue) dport \(not(neg))\(port)"
        case .dportInSet(let p, let s): return "\(p.rawValue) dport @\(s)"
        case .skuid(let u, let neg): return "meta skuid \(not(neg))\(u)"
        case .skgid(let g, let neg): return "meta skgid \(not(neg))\(g)"
        case .skgidInSet(let s, let neg): return "meta skgid \(not(neg))@\(s)"
        case .mark(let m, let neg): return "meta mark \(not(neg))\(m)"
        case .ctState(let s):
            var names: [String] = []
            if s.contains(.invalid) { names.append("invalid") }
            if s.contains(.established) { names.append("established") }
            if s.contains(.related) { names.append("related") }
            if s.contains(.new) { names.append("new") }
            return "ct state " + names.joined(separator: ",")
        case .ctMark(let m): return "ct mark \(m)"
        case .tcpSYN(let neg): return "tcp flags & (syn | ack) \(neg ? "!=" : "==") syn"
        }
    }

    static func render(_ statement: Statement, family: TableFamily) -> String {
        switch statement {
        case .counter: return "counter"
        case .redirect(let port): return "redirect to :\(port)"
        case .tproxy(let f, let port): return family == .inet ? "tproxy \(f.nftKeyword) to :\(port)" : "tproxy to :\(port)"
        case .setMark(let m): return "meta mark set \(m)"
        case .setMarkFromCtMark: return "meta mark set ct mark"
        case .setCtMarkFromMark: return "ct mark set meta mark"
        case .setCtMark(let m): return "ct mark set " + hexMark(m)
        case .setCtZone(let z): return "ct zone set \(z)"
        case .verdict(.accept): return "accept"
        case .verdict(.drop): return "drop"
        case .verdict(.return): return "return"
        case .verdict(.jump(let c)): return "jump \(c)"
        }
    }
}
