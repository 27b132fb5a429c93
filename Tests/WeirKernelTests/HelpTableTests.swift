import Testing
import WeirCore

/// `--help` is built from `CaptureFlag`'s table: every flag of it, with its letter, names, variables and default,
/// appears in the help of the commands that take it. Needs no root: only --help runs.
struct HelpTableTests {
    @Test(arguments: ["rules", "run"])
    func everyCaptureFlagIsInTheHelp(command: String) throws {
        let r = try runCommand([weirBinary, command, "--help"])
        #expect(r.status == 0)
        // ArgumentParser wraps help lines: compare with every run of whitespace as one space.
        let help = r.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        let flags = CaptureFlag.all + (command == "rules" ? CaptureFlag.invocation : [.networkNamespace])
        for flag in flags {
            let names = (flag.short.map { ["-\($0)"] } ?? []) + flag.longNames().map { "--" + $0 }
            for name in names { #expect(help.contains(name), "\(command): \(name)") }
            for variable in flag.environments { #expect(help.contains(variable), "\(command): \(variable)") }
            if let d = flag.defaultText {
                #expect(help.contains("(default: \(d))"), "\(command): \(flag.long) default \(d)")
            }
        }
    }
}
