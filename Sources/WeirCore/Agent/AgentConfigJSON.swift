/// `GET /config`: the effective configuration of `weir run` as JSON, every value as the agent uses it (validated,
/// sorted, defaults filled in), in a fixed member order so the same configuration always gives the same bytes.
public enum AgentConfigJSON {
    public static func render(capture c: CaptureConfig, proxy p: ProxyConfig, agent: [(String, JSONValue)])
        -> String {
        func ports(_ list: [UInt16]) -> JSONValue { .array(list.map { .int(Int64($0)) }) }
        func ids(_ list: [UInt32]) -> JSONValue { .array(list.map { .int(Int64($0)) }) }
        func strings(_ list: [String]) -> JSONValue { .array(list.map { .string($0) }) }
        let inbound: JSONValue = switch c.inboundPorts {
        case .none: .array([])
        case .all: .string("*")
        case .list(let l): ports(l)
        }
        let cidrs: JSONValue = switch c.outboundIncludeCIDRs {
        case .none: .array([])
        case .all: .string("*")
        case .list(let l): strings(l.map(\.description))
        }
        let capture: JSONValue = .object([
            ("mode", .string(c.mode.rawValue)),
            ("proxy_port", .int(Int64(c.proxyPort))),
            ("inbound_capture_port", .int(Int64(c.inboundCapturePort))),
            ("inbound_tunnel_port", .int(Int64(c.inboundTunnelPort))),
            ("proxy_uids", ids(c.proxyUIDs)),
            ("proxy_gids", ids(c.proxyGIDs)),
            ("tproxy_mark", .int(Int64(c.tproxyMark))),
            ("tproxy_route_table", .int(Int64(c.tproxyRouteTable))),
            ("inbound_ports", inbound),
            ("inbound_ports_exclude", ports(c.inboundPortsExclude)),
            ("outbound_ports_include", ports(c.outboundPortsInclude)),
            ("outbound_ports_exclude", ports(c.outboundPortsExclude)),
            ("outbound_include_cidrs", cidrs),
            ("outbound_exclude_cidrs", strings(c.outboundExcludeCIDRs.map(\.description))),
            ("kube_virt_interfaces", strings(c.virtualInterfaces)),
            ("exclude_interfaces", strings(c.excludeInterfaces)),
            ("outbound_owner_groups", c.ownerGroupsInclude.map(ids) ?? .string("*")),
            ("outbound_owner_groups_exclude", ids(c.ownerGroupsExclude)),
            ("ipv4_loopback_cidr", .string(c.ipv4LoopbackCIDR.description)),
            ("drop_invalid", .bool(c.dropInvalid)),
            ("ipv4_only", .bool(c.ipv4Only)),
        ])
        let proxy: JSONValue = .object([
            ("workers", .int(Int64(p.workers))),
            ("proxy_uid", .int(Int64(p.proxyUID))),
            ("proxy_gid", .int(Int64(p.proxyGID))),
            ("connect_timeout_ms", .int(p.connectTimeoutMs)),
            ("idle_timeout_ms", .int(p.idleTimeoutMs)),
            ("max_connections", .int(Int64(p.maxConnections))),
            ("buffer_limit", .int(Int64(p.bufferLimit))),
            ("drain_timeout_ms", .int(p.drainTimeoutMs)),
            ("splice", .bool(p.splice)),
        ])
        return JSONValue.object([("capture", capture), ("proxy", proxy), ("agent", .object(agent))]).rendered
    }
}
