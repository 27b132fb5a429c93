// What an nftables reply must look like before libnftnl may parse it.
//
// libnftnl 1.2.4 trusts the kernel. An attribute of the wrong size makes it print "nf_tables kernel ABI is broken"
// and call exit(1) (its abi_breakage()); a verdict without a code, or an expression without a name, makes it read an
// uninitialised or NULL pointer; more than 16 concatenation fields overflow a fixed array; a set element attribute
// numbered above NFTA_SET_ELEM_EXPRESSIONS is stored past the end of a table on the stack (its callback bounds types
// by NFTA_SET_MAX); strings are copied with strdup whatever their length. So every reply is checked here first, against what libnftnl's parse callbacks assert
// (mnl_attr_validate: u8, u32 and u64 exactly 1, 4 and 8 bytes; a string at least one byte, here also NUL-terminated;
// a nest empty or at least one attribute header) plus what it reads without checking. A reply that fails is not one
// of weir's objects: the read-back then differs from the desired table and weir applies its table again.
//
// Rules may only hold the expressions weir itself generates (NftObjects.swift); each is checked with its attributes.
// Attribute types not listed are ones libnftnl ignores or never reads.
import CNetfilter
import WeirSystem

/// How libnftnl reads one attribute. (A struct rather than an indirect enum: LeakSanitizer cannot see pointers that
/// carry enum tags in their spare bits, and reported the policies below as leaks in `make fuzz`.)
struct NftAttribute {
    enum Kind {
        case u8, u32, u64, string, binary
        /// A nest of `attributes`.
        case nest
        /// A nest of NFTA_LIST_ELEM entries, each one an `element`.
        case list
        /// nftnl_parse_data: a value, or a verdict (with its code, and its chain for jump and goto).
        case data
        /// An expression: its name, one of weir's, and the attributes of that expression.
        case expression
        /// A set's concatenation description: at most 16 fields in all.
        case concat
        /// Never part of weir's objects, and parsed by libnftnl in ways not checked here (expressions on sets).
        case refused
    }

    let kind: Kind
    private(set) var attributes: [UInt16: NftAttribute] = [:]
    /// For a nest: the highest attribute type it may hold, when libnftnl mishandles higher ones.
    private(set) var maximum: UInt16?
    private(set) var element: [NftAttribute] = []

    static let u8 = NftAttribute(kind: .u8), u32 = NftAttribute(kind: .u32), u64 = NftAttribute(kind: .u64)
    static let string = NftAttribute(kind: .string), binary = NftAttribute(kind: .binary)
    static let data = NftAttribute(kind: .data), expression = NftAttribute(kind: .expression)
    static let concat = NftAttribute(kind: .concat), refused = NftAttribute(kind: .refused)
    static func nest(_ attributes: [UInt16: NftAttribute], maximum: UInt16? = nil) -> NftAttribute {
        NftAttribute(kind: .nest, attributes: attributes, maximum: maximum)
    }
    static func list(_ element: NftAttribute) -> NftAttribute { NftAttribute(kind: .list, element: [element]) }
}

enum NftReplyCheck {
    typealias Policy = [UInt16: NftAttribute]

    static let table: Policy = [
        attr(NFTA_TABLE_NAME): .string, attr(NFTA_TABLE_HANDLE): .u64, attr(NFTA_TABLE_FLAGS): .u32,
        attr(NFTA_TABLE_USE): .u32, attr(NFTA_TABLE_OWNER): .u32, attr(NFTA_TABLE_USERDATA): .binary,
    ]

    static let generation: Policy = [attr(NFTA_GEN_ID): .u32]

    static let chain: Policy = [
        attr(NFTA_CHAIN_NAME): .string, attr(NFTA_CHAIN_TABLE): .string, attr(NFTA_CHAIN_TYPE): .string,
        attr(NFTA_CHAIN_HOOK): .nest([
            attr(NFTA_HOOK_HOOKNUM): .u32, attr(NFTA_HOOK_PRIORITY): .u32, attr(NFTA_HOOK_DEV): .string,
            attr(NFTA_HOOK_DEVS): .nest([attr(NFTA_DEVICE_NAME): .string]),
        ]),
        attr(NFTA_CHAIN_COUNTERS): .nest([attr(NFTA_COUNTER_BYTES): .u64, attr(NFTA_COUNTER_PACKETS): .u64]),
        attr(NFTA_CHAIN_POLICY): .u32, attr(NFTA_CHAIN_USE): .u32, attr(NFTA_CHAIN_FLAGS): .u32,
        attr(NFTA_CHAIN_ID): .u32, attr(NFTA_CHAIN_HANDLE): .u64, attr(NFTA_CHAIN_USERDATA): .binary,
    ]

    static let set: Policy = [
        attr(NFTA_SET_TABLE): .string, attr(NFTA_SET_NAME): .string, attr(NFTA_SET_HANDLE): .u64,
        attr(NFTA_SET_FLAGS): .u32, attr(NFTA_SET_KEY_TYPE): .u32, attr(NFTA_SET_KEY_LEN): .u32,
        attr(NFTA_SET_DATA_TYPE): .u32, attr(NFTA_SET_DATA_LEN): .u32, attr(NFTA_SET_OBJ_TYPE): .u32,
        attr(NFTA_SET_ID): .u32, attr(NFTA_SET_POLICY): .u32, attr(NFTA_SET_GC_INTERVAL): .u32,
        attr(NFTA_SET_TIMEOUT): .u64, attr(NFTA_SET_USERDATA): .binary,
        attr(NFTA_SET_DESC): .nest([attr(NFTA_SET_DESC_SIZE): .u32, attr(NFTA_SET_DESC_CONCAT): .concat]),
        attr(NFTA_SET_EXPR): .refused, attr(NFTA_SET_EXPRESSIONS): .refused,
    ]

    static let elements: Policy = [
        attr(NFTA_SET_ELEM_LIST_TABLE): .string, attr(NFTA_SET_ELEM_LIST_SET): .string,
        attr(NFTA_SET_ELEM_LIST_SET_ID): .u32,
        attr(NFTA_SET_ELEM_LIST_ELEMENTS): .list(.nest([
            attr(NFTA_SET_ELEM_FLAGS): .u32, attr(NFTA_SET_ELEM_TIMEOUT): .u64,
            attr(NFTA_SET_ELEM_EXPIRATION): .u64, attr(NFTA_SET_ELEM_KEY): .data, attr(NFTA_SET_ELEM_KEY_END): .data,
            attr(NFTA_SET_ELEM_DATA): .data, attr(NFTA_SET_ELEM_USERDATA): .binary,
            attr(NFTA_SET_ELEM_OBJREF): .string, attr(NFTA_SET_ELEM_EXPR): .refused,
            attr(NFTA_SET_ELEM_EXPRESSIONS): .refused,
        ], maximum: attr(NFTA_SET_ELEM_EXPRESSIONS))),
    ]

    static let rule: Policy = [
        attr(NFTA_RULE_TABLE): .string, attr(NFTA_RULE_CHAIN): .string, attr(NFTA_RULE_HANDLE): .u64,
        attr(NFTA_RULE_EXPRESSIONS): .list(.expression),
        attr(NFTA_RULE_COMPAT): .nest([attr(NFTA_RULE_COMPAT_PROTO): .u32, attr(NFTA_RULE_COMPAT_FLAGS): .u32]),
        attr(NFTA_RULE_POSITION): .u64, attr(NFTA_RULE_USERDATA): .binary, attr(NFTA_RULE_ID): .u32,
        attr(NFTA_RULE_POSITION_ID): .u32,
    ]

    /// The attributes of each expression weir generates.
    static let expressions: [String: Policy] = [
        "meta": [attr(NFTA_META_KEY): .u32, attr(NFTA_META_DREG): .u32, attr(NFTA_META_SREG): .u32],
        "cmp": [attr(NFTA_CMP_SREG): .u32, attr(NFTA_CMP_OP): .u32, attr(NFTA_CMP_DATA): .data],
        "payload": [
            attr(NFTA_PAYLOAD_SREG): .u32, attr(NFTA_PAYLOAD_DREG): .u32, attr(NFTA_PAYLOAD_BASE): .u32,
            attr(NFTA_PAYLOAD_OFFSET): .u32, attr(NFTA_PAYLOAD_LEN): .u32, attr(NFTA_PAYLOAD_CSUM_TYPE): .u32,
            attr(NFTA_PAYLOAD_CSUM_OFFSET): .u32, attr(NFTA_PAYLOAD_CSUM_FLAGS): .u32,
        ],
        "bitwise": [
            attr(NFTA_BITWISE_SREG): .u32, attr(NFTA_BITWISE_DREG): .u32, attr(NFTA_BITWISE_OP): .u32,
            attr(NFTA_BITWISE_LEN): .u32, attr(NFTA_BITWISE_MASK): .data, attr(NFTA_BITWISE_XOR): .data,
            attr(NFTA_BITWISE_DATA): .data,
        ],
        "lookup": [
            attr(NFTA_LOOKUP_SREG): .u32, attr(NFTA_LOOKUP_DREG): .u32, attr(NFTA_LOOKUP_SET_ID): .u32,
            attr(NFTA_LOOKUP_FLAGS): .u32, attr(NFTA_LOOKUP_SET): .string,
        ],
        "immediate": [attr(NFTA_IMMEDIATE_DREG): .u32, attr(NFTA_IMMEDIATE_DATA): .data],
        "ct": [attr(NFTA_CT_KEY): .u32, attr(NFTA_CT_DREG): .u32, attr(NFTA_CT_SREG): .u32,
               attr(NFTA_CT_DIRECTION): .u8],
        "counter": [attr(NFTA_COUNTER_BYTES): .u64, attr(NFTA_COUNTER_PACKETS): .u64],
        "redir": [attr(NFTA_REDIR_REG_PROTO_MIN): .u32, attr(NFTA_REDIR_REG_PROTO_MAX): .u32,
                  attr(NFTA_REDIR_FLAGS): .u32],
        "tproxy": [attr(NFTA_TPROXY_FAMILY): .u32, attr(NFTA_TPROXY_REG_ADDR): .u32,
                   attr(NFTA_TPROXY_REG_PORT): .u32],
    ]

    /// True when `m` (an nfnetlink message: header, nfgenmsg, attributes) holds only what `policy` allows.
    static func valid(_ m: NetlinkMessage, _ policy: Policy) -> Bool {
        guard m.isNetfilterShaped else { return false }
        return valid(m.netfilterAttributes, policy)
    }

    /// The attributes walked as libmnl walks them (NetlinkAttributes: stopping at the first malformed one).
    private static func valid(_ attributes: NetlinkAttributes, _ policy: Policy) -> Bool {
        attributes.allSatisfy { a in policy[a.type].map { valid(attributes, a, $0) } ?? true }
    }

    /// A nest's payload is empty or holds at least one attribute header.
    private static func nestSized(_ a: NetlinkAttribute) -> Bool { a.payload.isEmpty || a.payload.count >= 4 }

    private static func valid(_ s: NetlinkAttributes, _ a: NetlinkAttribute, _ policy: NftAttribute) -> Bool {
        let p = a.payload
        switch policy.kind {
        case .u8: return p.count == 1
        case .u32: return p.count == 4
        case .u64: return p.count == 8
        case .string: return !p.isEmpty && s.value(a).contains(0)
        case .binary: return true
        case .nest:
            let inner = s.nested(a)
            guard nestSized(a) else { return false }
            if let maximum = policy.maximum, inner.contains(where: { $0.type > maximum }) { return false }
            return valid(inner, policy.attributes)
        case .list:
            let inner = s.nested(a)
            return nestSized(a) && inner.allSatisfy {
                $0.type == attr(NFTA_LIST_ELEM) && valid(inner, $0, policy.element[0])
            }
        case .data: return validData(s, a)
        case .expression:
            // libnftnl looks the expression up by name without checking that there is one.
            let inner = s.nested(a)
            guard nestSized(a), valid(inner, [attr(NFTA_EXPR_NAME): .string, attr(NFTA_EXPR_DATA): .nest([:])]),
                  let name = inner.last(attr(NFTA_EXPR_NAME)),
                  let expression = expressions[String(decoding: s.value(name).prefix { $0 != 0 }, as: UTF8.self)]
            else { return false }
            return inner.allSatisfy { $0.type != attr(NFTA_EXPR_DATA) || valid(inner, $0, .nest(expression)) }
        case .concat:
            guard nestSized(a) else { return false }
            var fields = 0
            for element in s.nested(a) where element.type == attr(NFTA_LIST_ELEM) {
                for field in s.nested(element) where field.type == attr(NFTA_SET_FIELD_LEN) {
                    guard field.payload.count == 4 else { return false }
                    fields += 1
                }
            }
            return fields <= 16
        case .refused: return false
        }
    }

    /// nftnl_parse_data: exactly one value (1 to 64 bytes) or one verdict.
    private static func validData(_ s: NetlinkAttributes, _ a: NetlinkAttribute) -> Bool {
        let parts = Array(s.nested(a))
        guard nestSized(a), parts.count == 1, let part = parts.first else { return false }
        if part.type == attr(NFTA_DATA_VALUE) { return (1...64).contains(part.payload.count) }
        guard part.type == attr(NFTA_DATA_VERDICT) else { return false }
        // libnftnl's verdict table is not initialised: the code must be there, and the chain for jump and goto.
        let verdict = s.nested(part)
        guard nestSized(part),
              valid(verdict, [attr(NFTA_VERDICT_CODE): .u32, attr(NFTA_VERDICT_CHAIN): .string,
                              attr(NFTA_VERDICT_CHAIN_ID): .u32]),
              let code = verdict.last(attr(NFTA_VERDICT_CODE)),
              let raw = s.integer(code, as: UInt32.self)
        else { return false }
        let value = Int32(bitPattern: UInt32(bigEndian: raw))
        let jumps = value == NFT_JUMP.rawValue || value == NFT_GOTO.rawValue
        return !jumps || verdict.contains { $0.type == attr(NFTA_VERDICT_CHAIN) }
    }
}
