import ArgumentParser
import WeirSystem
import WeirCore

/// istio's logging flags (`pkg/log` options of `pilot-agent istio-iptables`), mapped onto weir's output: the
/// informational lines (`table inet weir: created`, the dry-run text) go to --log_target (stdout by default) unless
/// --log_output_level is above info; --log_as_json writes them as `{"level":"info","msg":"..."}` lines. Errors
/// always go to stderr as weir's one line, and set the exit status. --log_caller and --log_stacktrace_level are
/// accepted (the level is checked) and have nothing to add.
struct IstioLogOptions: ParsableArguments {
    @Option(name: .customLong("log_output_level"),
            help: "Minimum level of informational output: debug, info, warn, error, fatal, none (or SCOPE:LEVEL,...).")
    var outputLevel: String?

    @Flag(name: .customLong("log_as_json"), inversion: .prefixedNo, help: "Write informational lines as JSON.")
    var asJSON: Bool?

    @Option(name: .customLong("log_target"), help: "Where informational lines go: stdout, stderr or a file path.")
    var targets: [String] = []

    @Option(name: .customLong("log_caller"), help: "Accepted for istio; weir's lines carry no caller.")
    var caller: String?

    @Option(name: .customLong("log_stacktrace_level"), help: "Accepted for istio; weir writes no stack traces.")
    var stacktraceLevel: String?

    static let levels = ["debug", "info", "warn", "error", "fatal", "none"]

    /// The level for the default scope of istio's `SCOPE:LEVEL,...` syntax (a bare level is the default scope's).
    static func level(_ text: String, flag: String) throws -> Int {
        var level = "info"
        for item in text.split(separator: ",") {
            let parts = item.split(separator: ":", maxSplits: 1).map(String.init)
            let (scope, value) = parts.count == 2 ? (parts[0], parts[1]) : ("default", parts[0])
            guard levels.contains(value) else {
                throw ConfigError("\(flag) \(quotedValue(text)) is not a level: expected one of "
                    + "\(levels.joined(separator: ", ")), optionally as SCOPE:LEVEL")
            }
            if scope == "default" || scope == "all" { level = value }
        }
        return levels.firstIndex(of: level)!
    }

    func log() throws -> OutputLog {
        var log = OutputLog()
        if let outputLevel { log.level = try Self.level(outputLevel, flag: "--log_output_level") }
        if let stacktraceLevel { _ = try Self.level(stacktraceLevel, flag: "--log_stacktrace_level") }
        log.json = asJSON ?? false
        if !targets.isEmpty { log.targets = targets }
        return log
    }
}

/// Informational output of a command: plain lines to stdout unless istio's logging flags say otherwise.
struct OutputLog {
    var level = 1
    var json = false
    var targets = ["stdout"]

    func info(_ text: String, raw: Bool = false) { write(1, "info", text, raw: raw) }

    /// A warning goes to stderr (never into `--dry-run`'s nft text on stdout), unless the level hides it.
    func warn(_ text: String) {
        guard level <= 2 else { return }
        ProcessEnvironment.writeStandardError("weir: warning: \(text)\n")
    }

    private func write(_ severity: Int, _ name: String, _ text: String, raw: Bool) {
        guard severity >= level else { return }
        var body: String
        if json {
            body = "{\"level\":\"\(name)\",\"msg\":" + JSONValue.quote(text) + "}\n"
        } else {
            body = text
            if !raw { body += "\n" }
        }
        for target in targets {
            switch target {
            case "stdout": ProcessEnvironment.writeStandardOutput(body)
            case "stderr": ProcessEnvironment.writeStandardError(body)
            default:
                if !ProcessEnvironment.append(body, toFile: target) {
                    ProcessEnvironment.writeStandardError("weir: --log_target \(quotedValue(target)) cannot be opened: \(body)")
                }
            }
        }
    }
}

/// Rewrites the command line so Go's spelling of booleans parses: `--flag=true|false` (and `t`, `1`, `F`, ...) for
/// istio's boolean flags. (A negative number after an option, `-p -1`, is joined by `attachingNegativeValues`.)
enum IstioArguments {
    static let booleans: Set<String> = Set((CaptureFlag.all + CaptureFlag.invocation).filter { $0.kind == .bool }
        .map(\.long)).union(["log_as_json"])

    static func normalize(_ arguments: [String]) throws -> [String] {
        var out: [String] = []
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a == "--" { out += arguments[i...]; break }
            if a.hasPrefix("--"), let eq = a.firstIndex(of: "=") {
                let name = String(a[a.index(a.startIndex, offsetBy: 2)..<eq])
                if booleans.contains(name) {
                    let value = String(a[a.index(after: eq)...])
                    guard let b = parseGoBool(value) else {
                        throw ConfigError("--\(name) \(quotedValue(value)) is not a boolean: expected true or "
                            + "false (or 1, 0, t, f)")
                    }
                    out.append(b ? "--\(name)" : "--no-\(name)")
                    i += 1
                    continue
                }
            }
            out.append(a)
            i += 1
        }
        return out
    }
}

/// `--network-namespace` for the commands outside istio's flag set (`clean`, `status`), with istio's variable.
struct NamespaceOption: ParsableArguments {
    @Option(name: CaptureFlag.networkNamespace.names(), help: CaptureFlag.networkNamespace.argumentHelp)
    var networkNamespace: String?

    /// Enters the namespace, if one is named; bad paths exit 2 before anything is read or changed.
    func enter() throws {
        let flags = networkNamespace.map { [CaptureFlag.networkNamespace.long: [$0]] } ?? [:]
        let invocation = try CaptureInvocation.parse(
            flags: flags, environment: ProcessEnvironment.get("NETWORK_NAMESPACE").map { ["NETWORK_NAMESPACE": $0] } ?? [:])
        try enterNetworkNamespace(invocation.networkNamespace)
    }
}
