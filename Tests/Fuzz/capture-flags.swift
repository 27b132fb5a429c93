// libFuzzer harness: istio-iptables flags and environment, `@file` lists included, through CaptureConfig.parse, then
// the ruleset and its nft text for what parses.
//
// Input: records separated by 0xFF. `-p=VALUE` (a flag letter) or `--NAME=VALUE` is a flag (repeatable, any name),
// `--ipv4-only` sets that switch, `@PATH=CONTENT` is a file a `@PATH` list value can name, `NAME=VALUE` is an
// environment variable. A file whose content is not UTF-8 cannot be read, as with the CLI.
@testable import WeirCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCaptureFlags(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    var flags: [String: [String]] = [:]
    var environment: [String: String] = [:]
    var files: [String: [UInt8]] = [:]
    var ipv4Only = false
    for record in fuzzRecords(data, size) {
        let text = fuzzText(record)
        if text == "--ipv4-only" { ipv4Only = true; continue }
        guard let eq = text.firstIndex(of: "=") else { continue }
        let name = String(text[..<eq]), value = String(text[text.index(after: eq)...])
        if name.hasPrefix("--") {
            flags[String(name.dropFirst(2)), default: []].append(value)
        } else if name.count == 2, name.hasPrefix("-"),
                  let flag = CaptureFlag.all.first(where: { $0.short == name.last }) {
            flags[flag.long, default: []].append(value)
        } else if name.hasPrefix("@") {
            let cut = record.firstIndex(of: UInt8(ascii: "="))!  // the text's first "=" is this byte
            files[String(name.dropFirst())] = Array(record[(cut + 1)...])
        } else {
            environment[name] = value
        }
    }
    func parse(_ flags: [String: [String]]) throws -> CaptureConfig {
        try CaptureConfig.parse(
            flags: flags, environment: environment, ipv4Only: ipv4Only,
            readFile: { path in
                files[path].flatMap { String(validating: $0, as: UTF8.self) }.map { .success($0) } ?? .failure(.missing)
            },
            resolveGroup: { name in ["daemon": 1, "mail": 8, "istio-proxy": 1337][name] })
    }
    do {
        let config = try parse(flags)
        let text = NftText.render(CaptureRuleset.build(config))
        _ = AgentConfigJSON.render(capture: config, proxy: ProxyConfig(), agent: [])
        // Deterministic: the entries of every list in the opposite order give the same configuration and
        // byte-identical rules (lists are sets, sorted). The DNS servers keep their order, as resolv.conf's do.
        var reversed = flags
        for flag in CaptureFlag.all where flag.isList && flag != .dnsServers {
            reversed[flag.long] = flags[flag.long]?.map { $0.split(separator: ",", omittingEmptySubsequences: false)
                .reversed().joined(separator: ",") }
        }
        guard let again = try? parse(reversed) else {
            fuzzCheck(false, "list order made a valid input invalid")
            return 0
        }
        fuzzCheck(again == config, "list order changed the configuration")
        fuzzCheck(NftText.render(CaptureRuleset.build(again)) == text, "list order changed the nft text")
    } catch let e as ConfigError {
        fuzzCheck(!e.message.isEmpty, "empty error message")
    } catch {
        fuzzCheck(false, "unexpected error \(error)")
    }
    return 0
}
