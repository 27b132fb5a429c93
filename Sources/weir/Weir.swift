import ArgumentParser
import WeirAgent
import WeirCore

#if canImport(Glibc)
import Glibc
#endif

/// Root command. Subcommands live in one file each.
struct Weir: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weir",
        abstract: "Node-level traffic capture, kernel tuning and transparent proxy.",
        version: BuildInfo.line,
        subcommands: [RulesCommand.self, CleanCommand.self, ProxyCommand.self, TuneCommand.self, StatusCommand.self,
                      RunCommand.self]
    )
}

/// Writes one line to standard error: control characters escaped (`oneLineMessage`), so no value can split it or
/// cut it short (fputs would stop at a NUL), and bounded.
func printError(_ line: String) {
    var text = line
    while text.hasSuffix("\n") { text.removeLast() }
    let bytes = Array((oneLineMessage(text) + "\n").utf8)
    _ = bytes.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, stderr) }
}

/// Exit statuses: 0 success, 1 runtime failure (kernel refused, I/O), 2 bad input.
enum ExitStatus {
    static let failure: Int32 = 1
    static let badInput: Int32 = 2
}

/// A runtime failure that has already been described; carries only the exit status.
struct RuntimeFailure: Error {
    let message: String
}

@main
enum Main {
    static func main() {
        do {
            var command = try Weir.parseAsRoot()
            try command.run()
        } catch let error as ConfigError {
            printError("weir: \(error.message)")
            exit(ExitStatus.badInput)
        } catch let error as RuntimeFailure {
            printError("weir: \(error.message)")
            exit(ExitStatus.failure)
        } catch {
            let code = Weir.exitCode(for: error)
            if code == .success {
                Weir.exit(withError: error)
            }
            if error is ExitCode {
                exit(code.rawValue)
            }
            // Parse errors from ArgumentParser: keep them to one line and exit 2 like every other bad input.
            let message = Weir.message(for: error).split(separator: "\n").first.map(String.init) ?? "bad usage"
            printError("weir: \(message) (see 'weir --help')")
            exit(ExitStatus.badInput)
        }
    }
}
