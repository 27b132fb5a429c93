import ArgumentParser
import WeirAgent
import WeirCore
import WeirNetfilter
import WeirSystem

struct CleanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clean",
        abstract: "Remove everything weir installed, whatever flags installed it, and nothing else.",
        discussion: """
            Deletes the tables inet weir and ip weir, and the ip rules, routes and the ::6/128 address on lo that \
            carry weir's protocol number (\(RouteClient.weirProtocol)). Foreign tables, rules and routes stay. \
            With --pods, does the same inside every pod namespace of pod mode's registry (--run-dir/pods.json) that \
            still exists, then removes the registry: run it after the agent is gone (uninstall), or the pods' \
            persistent tables keep sending their traffic to a proxy that is not there.
            """
    )

    @Flag(help: ArgumentHelp("Also clean every pod namespace of pod mode's registry (needs CAP_SYS_ADMIN: setns), and "
        + "remove the registry."))
    var pods = false
    @Option(help: ArgumentHelp("Pod mode's run directory, with the registry pods.json (default /run/weir).",
                               valueName: "path"))
    var runDir = "/run/weir"

    @OptionGroup var namespace: NamespaceOption

    @Flag(help: ArgumentHelp("After cleaning, wait for SIGTERM or SIGINT and exit 0: the container of a clean-up "
        + "DaemonSet, whose pod on each node is ready once that node is clean (docs/kubernetes.md)."))
    var wait = false

    func run() throws {
        if wait { Signals.block() }
        try namespace.enter()
        try removeCapture(OutputLog())
        if pods { try cleanPods(OutputLog()) }
        if wait {
            OutputLog().info("clean; waiting for SIGTERM")
            _ = Signals.waitForTermination()
        }
    }
}

extension CleanCommand {
    /// Every pod of the registry whose namespace still exists (same device and inode): weir's capture out of it.
    /// The registry goes last, so a failure leaves it for another try.
    func cleanPods(_ log: OutputLog) throws {
        let path = runDir + "/pods.json"
        let records: [PodRecord]
        switch readSmallFile(path, limit: 16 << 20) {
        case .success(let bytes):
            do { records = try PodRegistryFile.parse(bytes) } catch {
                throw RuntimeFailure(message: "\(path) cannot be read: \(error)")
            }
        case .failure:
            log.info("no pod registry at \(path): no pods to clean")
            return
        }
        var failed = 0
        for r in records {
            guard let handle = try? NetworkNamespace.Handle(path: r.netns),
                  handle.identity.map({ "\($0)" }) == r.netnsIdentity else {
                log.info("pod \(r.label): namespace \(r.netns) is gone, nothing to clean")
                continue
            }
            do {
                let removed = try handle.perform { try CaptureInstaller().removeAll() }
                log.info("pod \(r.label): " + (removed.isEmpty ? "nothing to remove" : removed.joined(separator: "; ")))
            } catch {
                failed += 1
                log.info("pod \(r.label): not cleaned: \(error)")
            }
        }
        guard failed == 0 else {
            throw RuntimeFailure(message: "\(failed) of \(records.count) pods not cleaned; \(path) kept for another try")
        }
        try? FileSystem.remove(path)
    }
}
