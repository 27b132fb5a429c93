// Capture rules for the proxy tests. Inbound capture is weir's own (`weir rules`). Outbound capture stays a minimal
// hand-written rule: those tests keep client, proxy and server in one namespace on local addresses, which istio's
// semantics (and so weir's rules) never capture; the agent tests cover outbound with weir's rules across namespaces.

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

/// Inbound capture with REDIRECT, installed by `weir rules` itself: port 8080 goes to 15006, and weir adds the ::6
/// hand-off address on lo.
func installInboundRedirect(_ ns: TestNamespace) throws {
    let r = try ns.weir(["rules", "-b", "\(appPort)"])
    guard r.status == 0 else { throw HarnessError("weir rules -b \(appPort): \(r.stderr)") }
}

/// Inbound capture with TPROXY, installed by `weir rules -m TPROXY` itself: port 8080 goes to 15006 with the mark,
/// and weir adds the policy routing (fwmark -> table 133 -> local) for both families.
func installInboundTPROXY(_ ns: TestNamespace, mark: Int = 1337) throws {
    let r = try ns.weir(["rules", "-m", "TPROXY", "-b", "\(appPort)", "-t", "\(mark)"])
    guard r.status == 0 else { throw HarnessError("weir rules -m TPROXY: \(r.stderr)") }
}
