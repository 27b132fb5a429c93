// libFuzzer harness: the `weir run --config` file (ConfigFile.parse), then what `weir run` reads from it: the
// booleans, the capture settings (istio's variables, as the environment of CaptureConfig.parse), the proxy limits and
// the reconcile interval.
//
// Input: the file's bytes.
@testable import WeirCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfigFile(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = fuzzText(fuzzBytes(data, size))
    do {
        let file = try ConfigFile.parse(text, path: "/etc/weir/weir.conf")
        for (key, value) in file.values {
            fuzzCheck(!value.unicodeScalars.contains { $0.value < 0x20 && $0 != "\t" }, "control character in \(key)")
            fuzzCheck(file.lines[key] != nil, "no line for \(key)")
        }
        let ipv4Only = try file.bool("WEIR_IPV4_ONLY") ?? false
        _ = try? file.bool("WEIR_CLEANUP_ON_EXIT")
        let environment = file.values.filter { !$0.key.hasPrefix("WEIR_") }
        let capture = try CaptureConfig.parse(flags: [:], environment: environment, ipv4Only: ipv4Only)
        var flags = ProxyConfig.Flags()
        flags.connectTimeout = file.values["WEIR_CONNECT_TIMEOUT"]
        flags.idleTimeout = file.values["WEIR_IDLE_TIMEOUT"]
        flags.maxConnections = file.values["WEIR_MAX_CONNECTIONS"]
        flags.bufferLimit = file.values["WEIR_BUFFER_LIMIT"]
        flags.drainTimeout = file.values["WEIR_DRAIN_TIMEOUT"]
        flags.workers = file.values["WEIR_WORKERS"]
        let proxy = try ProxyConfig.parse(flags, base: ProxyConfig(capture: capture))
        _ = try file.values["WEIR_RECONCILE_INTERVAL"].map {
            try ProxyConfig.duration($0, flag: "--reconcile-interval")
        }
        _ = AgentConfigJSON.render(capture: capture, proxy: proxy, agent: file.values.sorted { $0.key < $1.key }
            .map { ($0.key, .string($0.value)) })
    } catch let e as ConfigError {
        fuzzCheck(!e.message.isEmpty, "empty error message")
    } catch {
        fuzzCheck(false, "unexpected error \(error)")
    }
    return 0
}
