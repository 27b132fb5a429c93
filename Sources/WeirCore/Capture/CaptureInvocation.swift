/// istio-iptables' flags that say what to do rather than which rules to build: dry run, validation, cleanup, the
/// target network namespace, and the flags that have no work to do in weir (each one accepted, with its meaning
/// written in the README).
public struct CaptureInvocation: Hashable, Sendable {
    /// `-n` / `--dry-run` / `DRY_RUN`: print the ruleset as nft text, change nothing.
    public var dryRun = false
    /// `--skip-rule-apply` / `SKIP_RULE_APPLY`: apply nothing (with `--run-validation`: only validate).
    public var skipRuleApply = false
    /// `--cleanup-only` / `CLEANUP_ONLY`: remove weir's capture, as `weir clean`, and install nothing.
    public var cleanupOnly = false
    /// `--run-validation` / `RUN_VALIDATION`: after applying, prove a connection is really redirected.
    public var runValidation = false
    /// `--iptables-probe-port` / `IPTABLES_PROBE_PORT`: the port the validation connects to.
    public var probePort: UInt16 = 15002
    /// `--probe-timeout` / `PROBE_TIMEOUT` (a Go duration): how long validation waits, in milliseconds.
    public var probeTimeoutMs = 5000
    /// `--force-apply` / `FORCE_APPLY`: send the batch even when the kernel already holds the same table.
    public var forceApply = false
    /// `--reconcile` / `RECONCILE`: accepted; weir always replaces its own table with the desired one.
    public var reconcile = false
    /// `--cni-mode` / `CNI_MODE`: accepted; weir takes no xtables lock and needs no host file system.
    public var cniMode = false
    /// `--native-nftables` / `NATIVE_NFTABLES`: accepted; weir always programs nftables.
    public var nativeNftables = false
    /// `--force-iptables-binary` / `FORCE_IPTABLES_BINARY`: `legacy` or `nft` accepted and unused.
    public var forceIptablesBinary: String?
    /// `--network-namespace` / `NETWORK_NAMESPACE`: act inside this namespace (`/var/run/netns/NAME`,
    /// `/proc/PID/ns/net`).
    public var networkNamespace: String?

    public init() {}

    /// Reads the invocation flags with the same sources and precedence as the capture flags.
    public static func parse(flags: [String: [String]], environment: [String: String] = [:],
                             environmentSource: @escaping (String) -> ValueSource = { .variable($0) }) throws -> CaptureInvocation {
        let reader = FlagReader(flags: flags, environment: environment, environmentSource: environmentSource,
                                readFile: { _ in .failure(.missing) })
        var i = CaptureInvocation()
        if let v = try reader.bool(.dryRun) { i.dryRun = v }
        if let v = try reader.bool(.skipRuleApply) { i.skipRuleApply = v }
        if let v = try reader.bool(.cleanupOnly) { i.cleanupOnly = v }
        if let v = try reader.bool(.runValidation) { i.runValidation = v }
        if let v = try reader.single(.probePort) { i.probePort = try v.parse(ValueKinds.port) }
        if let v = try reader.single(.probeTimeout) { i.probeTimeoutMs = try v.parse(ValueKinds.positiveGoDuration) }
        if let v = try reader.bool(.forceApply) { i.forceApply = v }
        if let v = try reader.bool(.reconcile) { i.reconcile = v }
        if let v = try reader.bool(.cniMode) { i.cniMode = v }
        if let v = try reader.bool(.nativeNftables) { i.nativeNftables = v }
        if let v = try reader.single(.forceIptablesBinary), !v.text.isEmpty {
            guard v.text == "legacy" || v.text == "nft" else {
                throw v.error("is not an iptables binary: expected legacy or nft (weir programs nftables over "
                    + "netlink either way)")
            }
            i.forceIptablesBinary = String(v.text)
        }
        if let v = try reader.single(.networkNamespace), !v.text.isEmpty {
            guard v.text.hasPrefix("/") else {
                throw v.error("is not a path: expected /var/run/netns/NAME or /proc/PID/ns/net")
            }
            i.networkNamespace = String(v.text)
        }
        if i.cleanupOnly && i.dryRun {
            throw ConfigError("--cleanup-only and --dry-run are both set: expected one of them",
                              source: .flag("--cleanup-only"))
        }
        return i
    }
}

extension CaptureFlag {
    public static let dryRun = CaptureFlag(
        short: "n", long: "dry-run", environments: ["DRY_RUN"], kind: .bool,
        summary: "Print the ruleset as nft text and change nothing.")
    public static let skipRuleApply = CaptureFlag(
        long: "skip-rule-apply", environments: ["SKIP_RULE_APPLY"], kind: .bool,
        summary: "Apply nothing (with --run-validation: only validate).")
    public static let cleanupOnly = CaptureFlag(
        long: "cleanup-only", environments: ["CLEANUP_ONLY"], kind: .bool,
        summary: "Remove weir's capture, as 'weir clean' does, and install nothing.")
    public static let runValidation = CaptureFlag(
        long: "run-validation", environments: ["RUN_VALIDATION"], kind: .bool,
        summary: "After applying, check that a connection to 127.0.0.6:<probe port> is really redirected; exit 126 "
            + "if not within --probe-timeout.")
    public static let probePort = CaptureFlag(
        long: "iptables-probe-port", environments: ["IPTABLES_PROBE_PORT"],
        summary: "Port --run-validation connects to.", default: "15002")
    public static let probeTimeout = CaptureFlag(
        long: "probe-timeout", environments: ["PROBE_TIMEOUT"],
        summary: "How long --run-validation waits (a Go duration).", default: "5s")
    public static let forceApply = CaptureFlag(
        long: "force-apply", environments: ["FORCE_APPLY"], kind: .bool,
        summary: "Replace the table even if the kernel already holds the same one.")
    public static let reconcile = CaptureFlag(
        long: "reconcile", environments: ["RECONCILE"], kind: .bool,
        summary: "Accepted: weir always replaces its own table with the desired one, so drift is always reconciled.")
    public static let cniMode = CaptureFlag(
        long: "cni-mode", environments: ["CNI_MODE"], kind: .bool,
        summary: "Accepted: weir takes no xtables lock and needs no host file system.")
    public static let nativeNftables = CaptureFlag(
        long: "native-nftables", environments: ["NATIVE_NFTABLES"], kind: .bool,
        summary: "Accepted: weir always programs nftables, over netlink.")
    public static let forceIptablesBinary = CaptureFlag(
        long: "force-iptables-binary", environments: ["FORCE_IPTABLES_BINARY"],
        summary: "Accepted (legacy or nft) and unused: weir runs no iptables binary.")
    public static let networkNamespace = CaptureFlag(
        long: "network-namespace", environments: ["NETWORK_NAMESPACE"],
        summary: "Act inside this network namespace (/var/run/netns/NAME or /proc/PID/ns/net) instead of weir's own.")

    /// Flags that say what to do, not which rules to build.
    public static let invocation: [CaptureFlag] = [
        dryRun, skipRuleApply, cleanupOnly, runValidation, probePort, probeTimeout, forceApply, reconcile, cniMode,
        nativeNftables, forceIptablesBinary, networkNamespace,
    ]
}
