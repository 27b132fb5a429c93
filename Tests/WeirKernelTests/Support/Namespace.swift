import CWeirLinux
import Foundation

/// Result of a command run by the kernel tests.
struct CommandResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs a program to completion and captures its output. `input` is written to standard input.
@discardableResult
func runCommand(_ arguments: [String], input: String? = nil, environment: [String: String]? = nil) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    if let environment {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    }
    let out = Pipe(), err = Pipe(), inp = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = inp
    try process.run()
    if let input { inp.fileHandleForWriting.write(Data(input.utf8)) }
    try? inp.fileHandleForWriting.close()
    // Read both pipes before waiting so a large output cannot block the child.
    final class Box: @unchecked Sendable { var data = Data() }
    let errBox = Box()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { errBox.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    let errData = errBox.data
    process.waitUntilExit()
    return CommandResult(
        status: process.terminationStatus,
        stdout: String(decoding: outData, as: UTF8.self),
        stderr: String(decoding: errData, as: UTF8.self)
    )
}

struct CommandFailed: Error, CustomStringConvertible {
    let arguments: [String]
    let result: CommandResult
    var description: String { "\(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr)" }
}

/// Runs a program and throws if it fails.
@discardableResult
func mustRun(_ arguments: [String], input: String? = nil) throws -> String {
    let result = try runCommand(arguments, input: input)
    guard result.status == 0 else { throw CommandFailed(arguments: arguments, result: result) }
    return result.stdout
}

/// Path of the built `weir` executable (next to the test bundle in .build/<config>/).
var weirBinary: String {
    let bundle = Bundle.main.bundleURL.deletingLastPathComponent()
    let candidates = [
        bundle.appendingPathComponent("weir").path,
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("weir").path,
    ]
    for path in candidates where FileManager.default.isExecutableFile(atPath: path) { return path }
    // Swift Testing runs the bundle from .build/<triple>/debug; fall back to the package's debug symlink.
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    return root.appendingPathComponent(".build/debug/weir").path
}

/// True when the tests run as root and can create network namespaces.
var canUseNamespaces: Bool { getuid() == 0 }

/// A throwaway network namespace. Always call `delete()` (use `withNamespace`), also when a test fails.
///
/// Addresses used inside are from 198.18.0.0/15 and 2001:db8::/32 only.
final class TestNamespace {
    let name: String
    private(set) var deleted = false
    /// Where this namespace's test servers run when they live next door (see `withOutboundNamespace`).
    var serverSide: TestNamespace?

    init(prefix: String = "wt") throws {
        let unique = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        name = "\(prefix)-\(getpid())-\(unique)"
        try mustRun(["ip", "netns", "add", name])
        try exec(["ip", "link", "set", "lo", "up"])
    }

    /// Runs a command inside the namespace and throws if it fails.
    @discardableResult
    func exec(_ arguments: [String], input: String? = nil) throws -> String {
        try mustRun(["ip", "netns", "exec", name] + arguments, input: input)
    }

    /// Runs a command inside the namespace and returns its result whatever the status.
    func run(_ arguments: [String], input: String? = nil, environment: [String: String]? = nil) throws -> CommandResult {
        try runCommand(["ip", "netns", "exec", name] + arguments, input: input, environment: environment)
    }

    /// Runs the built `weir` binary inside the namespace (`weir run` with this namespace's own run directory unless
    /// the arguments name one).
    func weir(_ arguments: [String], environment: [String: String]? = nil) throws -> CommandResult {
        try run([weirBinary] + withOwnRunDirectory(arguments), environment: environment)
    }

    /// `weir run`'s run directory for this namespace: agents of tests that run at the same time in other namespaces
    /// would otherwise meet at /run/weir's agent lock (one agent per run directory). The data-plane locks stay in
    /// /run/weir, one per namespace.
    var runDirectory: String { "/run/weir-\(name)" }

    /// `arguments` of the weir binary, with `--run-dir` of this namespace added to a `run` that names none.
    func withOwnRunDirectory(_ arguments: [String]) -> [String] {
        guard arguments.first == "run", !arguments.contains("--run-dir") else { return arguments }
        return ["run", "--run-dir", runDirectory] + arguments.dropFirst()
    }

    /// Connects this namespace to `peer` with a veth pair and assigns addresses (CIDR notation, with `nodad` for IPv6).
    func link(
        to peer: TestNamespace, localName: String, peerName: String,
        localAddresses: [String], peerAddresses: [String]
    ) throws {
        try mustRun(["ip", "link", "add", localName, "netns", name, "type", "veth", "peer", "name", peerName,
                     "netns", peer.name])
        for (ns, dev, addrs) in [(self, localName, localAddresses), (peer, peerName, peerAddresses)] {
            for a in addrs {
                var args = ["ip", "addr", "add", a, "dev", dev]
                if a.contains(":") { args.append("nodad") }
                try ns.exec(args)
            }
            try ns.exec(["ip", "link", "set", dev, "up"])
        }
    }

    func delete() {
        guard !deleted else { return }
        deleted = true
        serverSide?.delete()
        // Kill anything still running in the namespace, then remove it.
        if let pids = try? runCommand(["ip", "netns", "pids", name]).stdout {
            for pid in pids.split(separator: "\n") { _ = try? runCommand(["kill", "-9", String(pid)]) }
        }
        _ = try? runCommand(["ip", "netns", "delete", name])
        try? FileManager.default.removeItem(atPath: runDirectory)
    }

    deinit { delete() }
}

/// Creates a namespace, runs `body`, and deletes the namespace whatever happens.
func withNamespace<T>(prefix: String = "wt", _ body: (TestNamespace) throws -> T) throws -> T {
    let ns = try TestNamespace(prefix: prefix)
    defer { ns.delete() }
    return try body(ns)
}

/// Runs `body` on a thread of its own that has entered the namespace, so the netlink sockets it opens live there;
/// for tests that drive weir's library code directly instead of the binary.
func inNamespace<T: Sendable>(_ ns: TestNamespace, _ body: @escaping @Sendable () throws -> T) throws -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    let path = "/var/run/netns/\(ns.name)"
    let thread = Thread {
        if weir_enter_netns(path) != 0 {
            box.result = .failure(HarnessError("setns \(path): errno \(errno)"))
        } else {
            box.result = Result { try body() }
        }
        done.signal()
    }
    thread.start()
    done.wait()
    return try box.result!.get()
}

private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, Error>?
}
