/// Every key a profile may set.
///
/// Scope was checked on kernel 6.18 from inside a fresh `ip netns add` namespace (`ip netns exec`):
/// - per-netns and writable there: somaxconn, tcp_max_syn_backlog, ip_local_port_range, tcp_tw_reuse,
///   tcp_fin_timeout, tcp_keepalive_*, tcp_rmem/tcp_wmem, tcp_slow_start_after_idle, tcp_notsent_lowat,
///   tcp_fastopen, tcp_mtu_probing, tcp_syncookies, tcp_abort_on_overflow, tcp_migrate_req (5.14+),
///   tcp_max_tw_buckets, optmem_max and the
///   nf_conntrack_*_timeout_* keys (conntrack timeouts have been per netns since Linux 4.x).
/// - global: netdev_max_backlog, busy_poll and busy_read do not exist outside the initial namespace;
///   rmem_max, wmem_max, nf_conntrack_max and nf_conntrack_buckets are read-only there (0444);
///   /sys/module/nf_conntrack/parameters/hashsize is a module parameter and the kernel refuses writes from other
///   namespaces (EOPNOTSUPP).
public enum KeyRegistry {
    /// Largest value the kernel accepts for most `int` sysctls.
    static let intMax = 2_147_483_647

    public static let all: [SysctlKey] = [
        // Accept queues and SYN handling.
        .sysctl("net.core.somaxconn", .integer(128...intMax), .networkNamespace),
        .sysctl("net.ipv4.tcp_max_syn_backlog", .integer(128...intMax), .networkNamespace),
        .sysctl("net.ipv4.tcp_syncookies", .choice([0, 1, 2]), .networkNamespace),
        .sysctl("net.ipv4.tcp_abort_on_overflow", .boolean, .networkNamespace),
        .sysctl("net.ipv4.tcp_migrate_req", .boolean, .networkNamespace),
        .sysctl("net.core.netdev_max_backlog", .integer(1000...intMax), .global),
        // Ports and TIME-WAIT.
        .sysctl("net.ipv4.ip_local_port_range", .range(1024...65535), .networkNamespace),
        .sysctl("net.ipv4.tcp_tw_reuse", .choice([0, 1, 2]), .networkNamespace),
        .sysctl("net.ipv4.tcp_fin_timeout", .integer(1...600), .networkNamespace),
        .sysctl("net.ipv4.tcp_max_tw_buckets", .integer(1024...intMax), .networkNamespace),
        // Keepalive (long-lived connections through NAT and load balancers).
        .sysctl("net.ipv4.tcp_keepalive_time", .integer(1...32767), .networkNamespace),
        .sysctl("net.ipv4.tcp_keepalive_intvl", .integer(1...32767), .networkNamespace),
        .sysctl("net.ipv4.tcp_keepalive_probes", .integer(1...127), .networkNamespace),
        // Buffers and latency.
        .sysctl("net.core.rmem_max", .integer(4096...intMax), .global),
        .sysctl("net.core.wmem_max", .integer(4096...intMax), .global),
        .sysctl("net.core.optmem_max", .integer(4096...intMax), .networkNamespace),
        .sysctl("net.ipv4.tcp_rmem", .triple(4096...intMax), .networkNamespace),
        .sysctl("net.ipv4.tcp_wmem", .triple(4096...intMax), .networkNamespace),
        .sysctl("net.ipv4.tcp_slow_start_after_idle", .boolean, .networkNamespace),
        .sysctl("net.ipv4.tcp_notsent_lowat", .integer(1...4_294_967_295), .networkNamespace),
        .sysctl("net.ipv4.tcp_fastopen", .choice([0, 1, 2, 3]), .networkNamespace),
        .sysctl("net.ipv4.tcp_mtu_probing", .choice([0, 1, 2]), .networkNamespace),
        .sysctl("net.core.busy_poll", .integer(0...intMax), .global),
        .sysctl("net.core.busy_read", .integer(0...intMax), .global),
        // Conntrack.
        .sysctl("net.netfilter.nf_conntrack_max", .integer(1024...intMax), .global, module: "nf_conntrack"),
        SysctlKey(name: "sys.module.nf_conntrack.parameters.hashsize",
                  path: "/sys/module/nf_conntrack/parameters/hashsize",
                  shape: .integer(1024...(1 << 28)), scope: .global, module: "nf_conntrack"),
        .sysctl("net.netfilter.nf_conntrack_tcp_timeout_established", .integer(60...intMax), .networkNamespace,
                module: "nf_conntrack"),
        .sysctl("net.netfilter.nf_conntrack_tcp_timeout_close_wait", .integer(1...intMax), .networkNamespace,
                module: "nf_conntrack"),
        .sysctl("net.netfilter.nf_conntrack_tcp_timeout_time_wait", .integer(1...intMax), .networkNamespace,
                module: "nf_conntrack"),
        .sysctl("net.netfilter.nf_conntrack_udp_timeout", .integer(1...intMax), .networkNamespace,
                module: "nf_conntrack"),
        .sysctl("net.netfilter.nf_conntrack_udp_timeout_stream", .integer(1...intMax), .networkNamespace,
                module: "nf_conntrack"),
    ]

    private static let byName: [String: SysctlKey] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    /// The key with this name, or nil.
    public static func key(named name: String) -> SysctlKey? { byName[name] }

    /// The conntrack maximum and hash size: the two keys a profile may mark `derived`.
    public static let conntrackMaxName = "net.netfilter.nf_conntrack_max"
    public static let hashSizeName = "sys.module.nf_conntrack.parameters.hashsize"
}
