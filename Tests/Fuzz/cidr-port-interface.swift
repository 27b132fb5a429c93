// libFuzzer harness: IP addresses, CIDRs and CIDR merging (IPAddress, CIDR, IPRange), and the port, ID, mark,
// routing table and interface values of CaptureConfig.parse, each flag on its own.
//
// Input: one value. Commas make it a list where the flag takes one.
@testable import WeirCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCIDRPortInterface(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = fuzzText(fuzzBytes(data, size))
    if let address = IPAddress(text) {
        // Canonical text parses back to the same address.
        fuzzCheck(IPAddress(address.description) == address, "\(address) does not parse back")
        if let next = address.successor { fuzzCheck(address < next, "successor of \(address) is not above it") }
    }
    for allowHostBits in [false, true] {
        guard case .success(let cidr) = CIDR.parse(text, allowHostBits: allowHostBits) else { continue }
        fuzzCheck(try! CIDR.parse(cidr.description).get() == cidr, "\(cidr) does not parse back")
        fuzzCheck(cidr.address <= cidr.last, "\(cidr) ends before it starts")
        fuzzCheck(IPRange(cidr).asCIDR == cidr, "\(cidr) is not its own range")
    }
    var cidrs: [CIDR] = []
    for item in text.split(separator: ",") {
        if case .success(let c) = CIDR.parse(String(item), allowHostBits: true) { cidrs.append(c) }
    }
    // Merged ranges are sorted, disjoint and not adjacent, per family.
    let ranges = IPRange.merge(cidrs)
    for (a, b) in zip(ranges, ranges.dropFirst()) where a.first.family == b.first.family {
        fuzzCheck(a.last < b.first && a.last.successor != b.first, "\(a) and \(b) overlap or touch")
    }
    _ = ranges.map(\.description)
    for flag in CaptureFlag.all where flag != .ownerGroupsInclude && flag != .ownerGroupsExclude {
        _ = try? CaptureConfig.parse(flags: [flag.long: [text]])
    }
    _ = try? ValueKinds.port.parse(text, from: .flag("--proxy-port"))
    _ = try? ValueKinds.id("UID").parse(text, from: .flag("--proxy-uid"))
    _ = try? ValueKinds.duration.parse(text, from: .flag("--idle-timeout"))
    _ = try? ValueKinds.size.parse(text, from: .flag("--buffer-limit"))
    return 0
}
