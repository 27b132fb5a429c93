/// How inbound connections are captured, and so how the proxy finds their original destination: NAT REDIRECT
/// (`SO_ORIGINAL_DST`) or TPROXY (the accepted socket's local address; the client's source address is kept upstream).
/// Outbound capture always uses REDIRECT, as in istio.
public enum InterceptionMode: String, Hashable, Sendable, CaseIterable {
    case redirect = "REDIRECT"
    case tproxy = "TPROXY"
}

/// `-b`: no inbound capture, every port (`*`), or a list of ports.
public enum InboundPorts: Hashable, Sendable {
    case none
    case all
    case list([UInt16])
}

/// `-i`: no outbound capture by address, every address (`*`), or a list of prefixes.
public enum OutboundCIDRs: Hashable, Sendable {
    case none
    case all
    case list([CIDR])
}

/// The capture configuration: istio-iptables' flags as typed, validated, sorted and de-duplicated values.
///
/// Build it with `CaptureConfig.parse(...)`; the defaults are istio's.
public struct CaptureConfig: Hashable, Sendable {
    /// `-p`: where outbound TCP is redirected.
    public var proxyPort: UInt16 = 15001
    /// `-z`: where inbound TCP is redirected.
    public var inboundCapturePort: UInt16 = 15006
    /// `-e`: inbound tunnel (HBONE) port, never captured.
    public var inboundTunnelPort: UInt16 = 15008
    /// `-u`: UIDs whose traffic is never captured (the proxy itself).
    public var proxyUIDs: [UInt32] = [1337]
    /// `-g`: GIDs whose traffic is never captured.
    public var proxyGIDs: [UInt32] = [1337]
    /// `-m`
    public var mode: InterceptionMode = .redirect
    /// `-t`: packet mark for TPROXY policy routing.
    public var tproxyMark: UInt32 = 1337
    /// `-r`: routing table for TPROXY.
    public var tproxyRouteTable: UInt32 = 133
    /// `-b`
    public var inboundPorts: InboundPorts = .none
    /// `-d`: only used when `-b` is `*`.
    public var inboundPortsExclude: [UInt16] = []
    /// `-o`: outbound ports never captured, TCP and UDP.
    public var outboundPortsExclude: [UInt16] = []
    /// `-q`: outbound ports always captured.
    public var outboundPortsInclude: [UInt16] = []
    /// `-i`
    public var outboundIncludeCIDRs: OutboundCIDRs = .none
    /// `-x`: wins over `-i` and `-q`.
    public var outboundExcludeCIDRs: [CIDR] = []
    /// `-k`: interfaces whose inbound traffic is treated as outbound.
    public var virtualInterfaces: [String] = []
    /// `-c`: interfaces never captured.
    public var excludeInterfaces: [String] = []
    /// `ISTIO_OUTBOUND_OWNER_GROUPS`: nil means `*` (every group is captured).
    public var ownerGroupsInclude: [UInt32]? = nil
    /// `ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE`
    public var ownerGroupsExclude: [UInt32] = []
    /// `ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR`
    public var ipv4LoopbackCIDR = CIDR(address: IPAddress(family: .ipv4, bytes: [127, 0, 0, 1]), prefixLength: 32)
    /// `--drop-invalid` / `INVALID_DROP`
    public var dropInvalid = false
    /// `--ipv4-only`: the explicit choice to leave IPv6 uncaptured.
    public var ipv4Only = false
    /// `--redirect-dns` / `ISTIO_META_DNS_CAPTURE` / `REDIRECT_DNS`: send DNS (TCP and UDP port 53) to the agent.
    public var redirectDNS = false
    /// `--capture-all-dns` / `CAPTURE_ALL_DNS`: every server, not only `dnsServers` (with `redirectDNS` only).
    public var captureAllDNS = false
    /// The DNS servers whose queries are captured: `--dns-servers`, else /etc/resolv.conf's (as istio reads them).
    public var dnsServers: [IPAddress] = []
    /// `--dns-proxy-port`: the agent's DNS listener (istio's constant 15053).
    public var dnsProxyPort: UInt16 = 15053
    /// `--dual-stack` / `ISTIO_DUAL_STACK`: accepted; weir captures both families unless `--ipv4-only`.
    public var dualStack = false

    /// Whether DNS is captured: istio turns `--redirect-dns` off when it has neither servers nor `--capture-all-dns`.
    public var capturesDNS: Bool { redirectDNS && (captureAllDNS || !dnsServers.isEmpty) }

    public init() {}

    /// Address families the ruleset captures.
    public var families: [IPFamily] { ipv4Only ? [.ipv4] : [.ipv4, .ipv6] }
}
