import ArgumentParser
import WeirAgent
import WeirCore
import WeirSystem

/// Root command. Subcommands live in one file each.
struct Weir: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weir",
        abstract: "Node-level traffic capture, kernel tuning and transparent proxy.",
        version: BuildInfo.line,
        subcommands: [RulesCommand.self, CleanCommand.self, ProxyCommand.self, TuneCommand.self, StatusCommand.self,
                      RunCommand.self, CNIInstallCommand.self, HandoverVersionCommand.self]
    )
}

/// Writes one line to standard error: control characters escaped (`oneLineMessage`), so no value can split it or
/// cut it short (fputs would stop at a NUL), and bounded.
func printError(_ line: String) {
    var text = line
    while text.hasSuffix("\n") { text.removeLast() }
    // The line that ends weir: an error for journald (SyslogLevelPrefix=) when stderr is the journal.
    let prefix = JournalStream.isStandardError ? "<\(LogLevel.error.rawValue)>" : ""
    let bytes = Array((prefix + oneLineMessage(text) + "\n").utf8)
    ProcessEnvironment.writeStandardError(bytes: bytes)
}

/// Exit statuses: 0 success, 1 runtime failure (kernel refused, I/O), 2 bad input.
enum ExitStatus {
    static let failure: Int32 = 1
    static let badInput: Int32 = 2
    /// istio's `ValidationErrorCode`: `--run-validation` found the capture not in place.
    static let validationFailed: Int32 = 126
}

/// A runtime failure that has already been described; carries only the exit status.
struct RuntimeFailure: Error {
    let message: String
}

/// The one value of an option that may be given several times: nil when it was not given. The same value repeated
/// is fine; two different values are refused, as `weir rules` refuses them, instead of the last silently winning.
func oneValue(_ values: [String], _ flag: String) throws -> String? {
    guard let first = values.first else { return nil }
    if let other = values.first(where: { $0 != first }) {
        throw ConfigError("\(flag) given twice with different values \(quotedValue(first)) and "
            + "\(quotedValue(other)): expected one value")
    }
    return first
}

/// The entry point: every error becomes one line and an exit status (2 for bad input).
///
/// Commands check what ArgumentParser cannot in `run()`, never in `validate()`: ArgumentParser calls `validate()`
/// before it reports an unknown option, so `weir tune --state-dir D --bogus` would complain about the missing
/// --profile and never name --bogus.
@main
enum Main {
    static func main() {
        // A container runtime runs the CNI plugin with no arguments and CNI_COMMAND set (conflist "type": "weir").
        if CommandLine.arguments.count == 1, ProcessEnvironment.get("CNI_COMMAND") != nil {
            CNIPlugin.run()
        }
        let arguments = attachingNegativeValues(Array(CommandLine.arguments.dropFirst()))
        do {
            var command = try Weir.parseAsRoot(try IstioArguments.normalize(arguments))
            try command.run()
        } catch let error as ConfigError {
            printError("weir: \(error.message)")
            ProcessEnvironment.exit(ExitStatus.badInput)
        } catch let error as RuntimeFailure {
            printError("weir: \(error.message)")
            ProcessEnvironment.exit(ExitStatus.failure)
        } catch {
            let code = Weir.exitCode(for: error)
            if code == .success {
                Weir.exit(withError: error)
            }
            if error is ExitCode {
                ProcessEnvironment.exit(code.rawValue)
            }
            // Parse errors from ArgumentParser: one line in weir's grammar, exit 2 like every other bad input.
            printError("weir: " + usageError(Weir.message(for: error), command: commandName(arguments)))
            ProcessEnvironment.exit(ExitStatus.badInput)
        }
    }

    /// `-p -1` as `-p=-1`. ArgumentParser reads any argument that starts with `-` as an option, so a negative number
    /// after an option that takes a value became "Missing value for '-p'", and the value was never named. No weir
    /// option starts with a digit, so `-` and a digit is always a value: attached to the option before it, it
    /// reaches the option's own check (`-p '-1' is not a port: expected 1 to 65535`); after a flag that takes no
    /// value it is refused as a value the flag does not take.
    static func attachingNegativeValues(_ arguments: [String]) -> [String] {
        func isOptionName(_ a: String) -> Bool {
            let scalars = Array(a.unicodeScalars)
            if scalars.count == 2 { return scalars[0] == "-" && scalars[1].properties.isAlphabetic }
            return a.hasPrefix("--") && a.count > 2 && !a.contains("=")
        }
        func isNegativeNumber(_ a: String) -> Bool {
            let scalars = Array(a.unicodeScalars)
            return scalars.count >= 2 && scalars[0] == "-" && ("0"..."9").contains(scalars[1])
        }
        var out: [String] = []
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a == "--" { return out + arguments[i...] }
            if i + 1 < arguments.count, isOptionName(a), isNegativeNumber(arguments[i + 1]) {
                out.append(a + "=" + arguments[i + 1])
                i += 2
            } else {
                out.append(a)
                i += 1
            }
        }
        return out
    }

    /// `weir tune` when the arguments name a subcommand, else `weir`.
    static func commandName(_ arguments: [String]) -> String {
        let names = Weir.configuration.subcommands.map { $0._commandName }
        return arguments.first.flatMap { names.contains($0) ? "weir \($0)" : nil } ?? "weir"
    }

    /// ArgumentParser's message (`Unknown option '--bogus'`, `Missing value for '-p <proxy-port>'`, ...) reworded to
    /// weir's one-line grammar: the option or value quoted with `quotedValue`, then what was expected.
    static func usageError(_ message: String, command: String) -> String {
        let help = "(see '\(command) --help')"
        func between(_ text: String, _ prefix: String, _ suffix: String) -> String? {
            guard text.hasPrefix(prefix), text.hasSuffix(suffix), text.count >= prefix.count + suffix.count else {
                return nil
            }
            return String(text.dropFirst(prefix.count).dropLast(suffix.count))
        }
        var text = message
        while let last = text.last, last.isWhitespace { text.removeLast() }
        if text.hasPrefix("Unknown option '") {
            var name = String(text.dropFirst("Unknown option '".count))
            var suggestion = ""
            // `-pz 1`: either an unknown -pz, or -p followed by -z without its value.
            if let range = name.firstRange(of: "'\n   or: Missing value for '") {
                let other = name[range.upperBound...].prefix { $0 != "'" }
                suggestion = ", or a value after \(other.split(separator: " ").first ?? other)"
                name = String(name[..<range.lowerBound])
            } else if name.hasSuffix("'?"), let range = lastRange(of: "'. Did you mean '", in: name) {
                suggestion = ", such as '" + name[range.upperBound...].dropLast(2) + "'"
                name = String(name[..<range.lowerBound])
            } else if name.hasSuffix("'") {
                name.removeLast()
            }
            return "option \(quotedValue(name)) is not known: expected an option of \(command)\(suggestion) \(help)"
        }
        if let synopsis = between(text, "Missing value for '", "'") {
            let name = synopsis.split(separator: " ", maxSplits: 1).first.map(String.init) ?? synopsis
            return "\(name) has no value: expected \(synopsis) \(help)"
        }
        if let rest = between(text, "The option '", " was specified."),
           let range = rest.firstRange(of: "' does not take any value, but '") {
            let name = String(rest[..<range.lowerBound])
            let value = String(rest[range.upperBound...].dropLast())
            return "\(name) \(quotedValue(value)) is not expected: expected \(name) alone, it takes no value \(help)"
        }
        if let value = between(text, "Unexpected argument '", "'") {
            return "argument \(quotedValue(value)) is not expected: expected options only \(help)"
        }
        if let range = text.firstRange(of: " unexpected arguments: '"), text.hasSuffix("'") {
            let values = text[range.upperBound...].dropLast()
            let first = values.firstRange(of: "', '").map { values[..<$0.lowerBound] } ?? values
            return "argument \(quotedValue(first)) is not expected: expected options only \(help)"
        }
        if text.hasPrefix("The value '"), let range = text.firstRange(of: "' is invalid for '") {
            let value = String(text[text.index(text.startIndex, offsetBy: "The value '".count)..<range.lowerBound])
            let synopsis = text[range.upperBound...].prefix { $0 != "'" }
            let name = synopsis.split(separator: " ", maxSplits: 1).first.map(String.init) ?? String(synopsis)
            return "\(name) \(quotedValue(value)) is not valid: expected \(synopsis) \(help)"
        }
        return "\(quotedValue(text)) is not valid usage: expected what \(command) --help shows"
    }

    /// The last occurrence of `needle` in `text`.
    static func lastRange(of needle: String, in text: String) -> Range<String.Index>? {
        var found: Range<String.Index>?
        var rest = text[...]
        while let r = rest.firstRange(of: needle) {
            found = r
            rest = text[r.upperBound...]
        }
        return found
    }
}
