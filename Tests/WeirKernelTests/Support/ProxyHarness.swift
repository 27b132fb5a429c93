import Foundation

/// A long-running program inside a namespace (the proxy, a test server), or in the test's own namespace (`ns` nil),
/// its output collected in a file.
final class BackgroundProcess {
    let process = Process()
    let outputPath: String
    /// Files and directories to remove with the output when the process is stopped.
    var cleanupPaths: [String] = []

    init(_ ns: TestNamespace?, _ arguments: [String], shellPrefix: String? = nil) throws {
        outputPath = NSTemporaryDirectory() + "wtp-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        let handle = FileHandle(forWritingAtPath: outputPath)!
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let inNamespace = ns.map { ["ip", "netns", "exec", $0.name] } ?? []
        if let shellPrefix {
            // e.g. `ulimit -n 64;` before exec'ing the program.
            let quoted = arguments.map { "'\($0)'" }.joined(separator: " ")
            process.arguments = inNamespace + ["sh", "-c", "\(shellPrefix) exec \(quoted)"]
        } else {
            process.arguments = inNamespace + arguments
        }
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// Waits until the output contains `text`; throws after `timeout` seconds.
    func waitFor(_ text: String, timeout: Double = 10) throws {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if output.contains(text) { return }
            if !process.isRunning { break }
            usleep(20_000)
        }
        throw HarnessError("waiting for '\(text)' in output of \(process.arguments ?? []):\n\(output)")
    }

    func signal(_ sig: Int32) { kill(pid, sig) }

    /// Waits for exit; kills it after `timeout` seconds. Returns the exit status, or nil when it had to be killed.
    @discardableResult
    func wait(timeout: Double = 10) -> Int32? {
        let end = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < end { usleep(20_000) }
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return process.terminationStatus
    }

    func stop() {
        if process.isRunning { kill(pid, SIGKILL); process.waitUntilExit() }
        for path in [outputPath] + cleanupPaths { try? FileManager.default.removeItem(atPath: path) }
    }

    deinit { stop() }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Path of the Python servers and clients the proxy tests use.
let proxyHelper: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("scripts/test-helpers/proxy_helper.py").path

/// The stress load generator (`scripts/stress/load.c`), compiled once per test run: many concurrent connections
/// with every byte checked, for tests that need more load than the Python helpers make.
func loadGenerator() throws -> String {
    let source = URL(fileURLWithPath: proxyHelper).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("stress/load.c").path
    let binary = NSTemporaryDirectory() + "weir-load-\(getpid())"
    if !FileManager.default.isExecutableFile(atPath: binary) {
        try mustRun(["gcc", "-O2", "-o", binary, source, "-lm"])
    }
    return binary
}

/// Starts `weir proxy` in the namespace and waits until it listens.
func startProxy(
    _ ns: TestNamespace, _ arguments: [String] = [], shellPrefix: String? = nil
) throws -> BackgroundProcess {
    let p = try BackgroundProcess(ns, [weirBinary, "proxy"] + arguments, shellPrefix: shellPrefix)
    try p.waitFor("event=started")
    return p
}

/// Sends SIGTERM, waits for a clean exit and returns the final counters.
func stopProxy(_ p: BackgroundProcess, timeout: Double = 10) throws -> [String: Int] {
    p.signal(SIGTERM)
    let status = p.wait(timeout: timeout)
    guard status == 0 else { throw HarnessError("proxy exited \(String(describing: status)):\n\(p.output)") }
    return counters(in: p.output)
}

/// Counters from the proxy's `event=stopped` line.
func counters(in output: String) -> [String: Int] {
    guard let line = output.split(separator: "\n").last(where: { $0.contains("event=stopped") }) else { return [:] }
    var result: [String: Int] = [:]
    for field in line.replacingOccurrences(of: "\"", with: "").split(separator: " ") {
        let kv = field.split(separator: "=")
        if kv.count >= 2, let n = Int(kv[kv.count - 1]) { result[String(kv[kv.count - 2])] = n }
    }
    return result
}

/// Starts the test server on `appPort` at the given addresses.
func startServer(_ ns: TestNamespace, addresses: [String], port: UInt16 = appPort) throws -> BackgroundProcess {
    let p = try BackgroundProcess(ns.serverSide ?? ns, ["python3", "-u", proxyHelper, "server", "\(port)"] + addresses)
    try p.waitFor("READY")
    return p
}

/// Runs one client scenario in the namespace and returns its result line.
func client(_ ns: TestNamespace, _ mode: String, _ host: String, port: UInt16 = appPort, _ arg: String? = nil,
            environment: [String: String]? = nil) throws -> String {
    let result = try ns.run(["python3", proxyHelper, "client", mode, host, "\(port)"] + (arg.map { [$0] } ?? []),
                            environment: environment)
    guard result.status == 0 else { throw HarnessError("client \(mode) \(host) failed: \(result.stderr)") }
    return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Number of open descriptors of a process.
func openDescriptors(_ pid: Int32) -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
}

/// Open descriptors of a process by kind.
func descriptors(_ pid: Int32) -> (sockets: Int, pipes: Int, other: Int) {
    let dir = "/proc/\(pid)/fd"
    var result = (sockets: 0, pipes: 0, other: 0)
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
        let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/" + entry)) ?? ""
        if target.hasPrefix("socket:") {
            result.sockets += 1
        } else if target.hasPrefix("pipe:") {
            result.pipes += 1
        } else {
            result.other += 1
        }
    }
    return result
}

/// Anonymous resident memory of a process (RssAnon: heap, stacks, buffers), in KiB. What connections and buffers
/// cost; the binary's file pages come and go with the code a test happens to run (weir releases them once started).
func anonymousKiB(_ pid: Int32) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("RssAnon:") }) else { return -1 }
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
}

/// User + system CPU time of a process, in clock ticks.
func cpuTicks(_ pid: Int32) -> Int {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return -1 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // After the command name: state is field 3, utime 14, stime 15 (1-based in proc(5)).
    return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
}

/// A pod namespace (198.18.0.2, 2001:db8::2) with weir's own outbound capture of 198.18.0.0/15 and 2001:db8::/32,
/// wired to a server namespace next door (198.18.0.1, 2001:db8::1) where `startServer` puts the test servers. The
/// clients and the proxy run in the pod; servers see the proxy's upstream from the pod's address.
func withOutboundNamespace<T>(proxyUID: Int = 1337, _ body: (TestNamespace) throws -> T) throws -> T {
    try withNamespace(prefix: "wtp") { ns in
        let servers = try TestNamespace(prefix: "wtp")
        ns.serverSide = servers
        let tag = String(UInt32.random(in: 0...0xffff), radix: 16)
        try ns.link(to: servers, localName: "wo\(tag)", peerName: "ws\(tag)",
                    localAddresses: ["198.18.0.2/24", "2001:db8::2/64"],
                    peerAddresses: ["198.18.0.1/24", "2001:db8::1/64"])
        try installOutboundCapture(ns, proxyUID: proxyUID)
        return try body(ns)
    }
}

/// An application namespace and a client namespace joined by a veth pair (198.18.1.0/24, 2001:db8:1::/64).
func withInboundNamespaces<T>(_ body: (_ app: TestNamespace, _ client: TestNamespace) throws -> T) throws -> T {
    try withNamespace(prefix: "wtp") { app in
        try withNamespace(prefix: "wtp") { cl in
            let tag = String(UInt32.random(in: 0...0xffff), radix: 16)
            try app.link(to: cl, localName: "wa\(tag)", peerName: "wc\(tag)",
                         localAddresses: ["198.18.1.1/24", "2001:db8:1::1/64"],
                         peerAddresses: ["198.18.1.2/24", "2001:db8:1::2/64"])
            return try body(app, cl)
        }
    }
}
