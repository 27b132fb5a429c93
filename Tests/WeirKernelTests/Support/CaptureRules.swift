// Minimal capture rules for the proxy tests, installed with `nft -f -` inside a test namespace.
// Stand-ins until `weir rules` lands: the lead can swap each function for `weir rules` with the matching flags.

/// Port the test applications listen on; captured by every ruleset here.
let appPort: UInt16 = 8080

/// Outbound capture: connections to port 8080 from any UID but the proxy's (1337) go to 15001.
func installOutboundCapture(_ ns: TestNamespace, proxyUID: Int = 1337) throws {
    try ns.exec(["nft", "-f", "-"], input: """
    table inet wtout {
      chain output {
        type nat hook output priority -100; policy accept;
        meta skuid != \(proxyUID) tcp dport \(appPort) redirect to :15001
      }
    }

    """)
}

/// Inbound capture with REDIRECT: connections arriving for port 8080 go to 15006. The proxy hands them to the
/// application from 127.0.0.6 / ::6; ::6 is put on lo as the capture issue does (replies must route back to it).
func installInboundRedirect(_ ns: TestNamespace) throws {
    try ns.exec(["nft", "-f", "-"], input: """
    table inet wtin {
      chain prerouting {
        type nat hook prerouting priority -100; policy accept;
        tcp dport \(appPort) redirect to :15006
      }
    }

    """)
    try ns.exec(["ip", "-6", "addr", "add", "::6/128", "dev", "lo", "nodad"])
}

/// Inbound capture with TPROXY: port 8080 goes to 15006 with mark 1337; packets marked 1337 are delivered locally
/// (policy table 133), and replies of connections the proxy opened (SO_MARK 1337) get the mark back via conntrack.
func installInboundTPROXY(_ ns: TestNamespace, mark: Int = 1337) throws {
    try ns.exec(["nft", "-f", "-"], input: """
    table inet wttp {
      chain prerouting {
        type filter hook prerouting priority mangle; policy accept;
        meta mark \(mark) accept
        meta l4proto tcp tcp dport \(appPort) tproxy ip to :15006 meta mark set \(mark) accept
        meta l4proto tcp tcp dport \(appPort) tproxy ip6 to :15006 meta mark set \(mark) accept
      }
      chain output {
        type route hook output priority mangle; policy accept;
        meta mark \(mark) ct mark set \(mark)
        ct mark \(mark) meta mark set \(mark)
      }
    }

    """)
    for family in ["-4", "-6"] {
        try ns.exec(["ip", family, "rule", "add", "fwmark", "\(mark)", "lookup", "133"])
        try ns.exec(["ip", family, "route", "add", "local", "default", "dev", "lo", "table", "133"])
    }
}
