import ArgumentParser
import WeirCore
import WeirTuning

struct TuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tune",
        abstract: "Apply a sysctl profile (with a dry run), or revert the last apply.",
        // Each option once: the same option twice with different values is refused.
        usage: """
            weir tune --profile NAME [--dry-run] [--profiles-dir DIR] [--state-dir DIR]
            weir tune --revert [--state-dir DIR]
            weir tune --list-keys
            """,
        discussion: """
            Profiles are NAME.profile files, looked up in --profiles-dir, else /etc/weir/profiles (never the \
            working directory). \
            Before the first write, the values weir is about to change are saved to tune-state.json in \
            --state-dir; --revert writes them back and removes the file. Inside a non-initial network \
            namespace, global keys (conntrack max, hash size, netdev_max_backlog, ...) are skipped and listed. \
            Exit status 2 for bad input (unknown profile or key, bad value, missing kernel module), with nothing \
            changed (an unknown option, a --state-dir or --profiles-dir that is a file, a profile that is a \
            directory, unreadable or over 1 MiB); 1 when a write fails.
            """
    )

    @Option(name: .long, help: "Profile to apply (default, ingress, low-latency, throughput, or your own).")
    var profile: [String] = []

    @Flag(name: .long, help: "Print key, current, desired and action for each key, and change nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Put back the values saved by the last apply, then remove the state file.")
    var revert = false

    @Flag(name: .long, help: "List the keys a profile may set, with their scope and shape, and exit.")
    var listKeys = false

    @Option(name: .long, help: "Directory holding the state file tune-state.json (default /var/lib/weir).")
    var stateDir: [String] = []

    @Option(name: .long,
            help: "Directory with NAME.profile files (default /etc/weir/profiles; never the working directory).")
    var profilesDir: [String] = []

    func run() throws {
        // Checked here, not in validate(): see Main.
        let profile = try oneValue(self.profile, "--profile")
        let modes = [profile != nil, revert, listKeys].filter { $0 }.count
        if modes != 1 {
            let given = [profile.map { "--profile \(quotedValue($0))" }, revert ? "--revert" : nil,
                         listKeys ? "--list-keys" : nil].compactMap { $0 }
            throw ConfigError((given.isEmpty ? "no mode given" : given.joined(separator: " and ") + " given together")
                + ": expected exactly one of --profile NAME, --revert or --list-keys")
        }
        if dryRun && profile == nil {
            throw ConfigError("--dry-run without --profile: expected --dry-run together with --profile NAME")
        }
        let stateDir = try oneValue(self.stateDir, "--state-dir") ?? "/var/lib/weir"
        let profilesDir = try oneValue(self.profilesDir, "--profiles-dir")
        if listKeys {
            var rows = [["KEY", "SCOPE", "MODULE", "VALUE"]]
            for key in KeyRegistry.all.sorted(by: { $0.name < $1.name }) {
                rows.append([key.name, key.scope.rawValue, key.module ?? "-", key.shape.description])
            }
            print(TextTable.render(rows), terminator: "")
            return
        }
        try Tuner.checkDirectory(stateDir, source: "--state-dir", purpose: "for \(Tuner.stateFileName)")
        if let profilesDir {
            try Tuner.checkDirectory(profilesDir, source: "--profiles-dir", purpose: "of NAME.profile files")
        }
        let probe = NodeProbe()
        let tuner = Tuner(files: probe.files, stateDirectory: stateDir, environment: probe.environment())
        if revert {
            try runRevert(tuner)
            return
        }
        let directories = profilesDir.map { [$0] } ?? defaultProfileDirectories
        let loaded = try Tuner.loadProfile(named: profile!, directories: directories)
        let plan = try tuner.plan(loaded)
        print("profile \(plan.profile); \(tuner.environment.cpu)")
        print(plan.table(), terminator: "")
        let skipped = plan.items.filter { $0.action == .skipGlobal }.map(\.key.name)
        if !skipped.isEmpty {
            print("non-initial network namespace: skipped global keys \(skipped.joined(separator: ", ")) "
                + "(only the initial namespace can change them)")
        }
        if dryRun {
            print("dry run: nothing changed")
            return
        }
        let results: [KeyResult]
        do {
            results = try tuner.apply(plan)
        } catch {
            throw RuntimeFailure(message: "applying profile \(plan.profile): \(error)")
        }
        if results.isEmpty {
            print("nothing to change")
            return
        }
        print("")
        print(Tuner.report(results), terminator: "")
        print("previous values saved in \(tuner.statePath)")
        let failed = results.filter { $0.failure != nil }
        if !failed.isEmpty {
            throw RuntimeFailure(message: "applying profile \(plan.profile): \(failed.count) of \(results.count) "
                + "writes failed: " + failed.map(\.key).joined(separator: ", "))
        }
    }

    private func runRevert(_ tuner: Tuner) throws {
        let results: [KeyResult]?
        do {
            results = try tuner.revert()
        } catch {
            throw RuntimeFailure(message: "reverting: \(error)")
        }
        guard let results else {
            print("nothing to revert: no \(tuner.statePath)")
            return
        }
        print(Tuner.report(results), terminator: "")
        let failed = results.filter { $0.failure != nil }
        if !failed.isEmpty {
            throw RuntimeFailure(message: "reverting: \(failed.count) of \(results.count) writes failed ("
                + failed.map(\.key).joined(separator: ", ") + "); state file kept at \(tuner.statePath)")
        }
        print("reverted; removed \(tuner.statePath)")
    }
}
