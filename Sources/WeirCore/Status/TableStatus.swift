/// weir's nftables table (`inet weir`) as the kernel reports it.
public enum TableStatus: Equatable, Sendable {
    case absent
    /// Flags are NFT_TABLE_F_*; owner is the netlink port id of the owning socket when owned.
    case present(flags: UInt32, ownerPort: UInt32?)
    /// Could not ask the kernel (the reason says why).
    case unknown(String)

    public var installed: Bool? {
        switch self {
        case .absent: return false
        case .present: return true
        case .unknown: return nil
        }
    }
}
