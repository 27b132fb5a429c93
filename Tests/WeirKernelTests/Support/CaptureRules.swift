// Capture rules for the proxy tests: weir's own, installed with `weir rules` (the table persists after it exits).

/// Port the test applications listen on.
let appPort: UInt16 = 8080

/// Outbound capture, installed by `weir rules` itself: TCP to 198.18.0.0/15 and 2001:db8::/32 from any UID but the
/// proxy's goes to 15001.
func installOutboundCapture(_ ns: TestNamespace, proxyUID: Int = 1337) throws {
    let r = try ns.weir(["rules", "-i", "198.18.0.0/15,2001:db8::/32", "-u", "\(proxyUID)"])
    guard r.status == 0 else { throw HarnessError("weir rules -i: \(r.stderr)") }
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
