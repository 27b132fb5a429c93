import ArgumentParser
import Glibc
import WeirCore
import WeirNetfilter
import WeirSystem

struct RulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Install the capture rules (istio-iptables semantics) as one nftables table, over netlink.",
        discussion: """
            Computes weir's table (inet weir; ip weir with --ipv4-only) from istio-iptables' flags and applies it in \
            one atomic netlink batch, replacing weir's previous table. Re-applying an unchanged configuration sends \
            nothing and prints 'unchanged'. The table carries the owner and persist flags (kernel >= 6.9): no other \
            process can edit it while weir holds it, and it stays in place when weir exits. In TPROXY mode the policy \
            routing (ip rule fwmark <-t> lookup <-r>, local default route in table <-r>) is installed too. List \
            flags take comma lists and '@PATH' (one entry per line, '#' comments).
            """
    )

    @OptionGroup var capture: CaptureOptions

    @Flag(name: [.customShort("n"), .long], help: "Print the ruleset as nft text and change nothing.")
    var dryRun = false

    @Flag(help: "Stay running and keep owning the table (no other process can change it) until SIGTERM or SIGINT.")
    var hold = false

    func run() throws {
        let config = try capture.config()
        let table = CaptureRuleset.build(config)
        if dryRun {
            print(NftText.render(table, header: ["weir capture ruleset (weir rules --dry-run)"]), terminator: "")
            return
        }
        let nft = try installCapture(config, table, claim: hold)
        guard hold else { return }
        print("holding table \(table.family.rawValue) \(table.name) until SIGTERM")
        fflush(stdout)
        Signals.block()
        _ = Signals.waitForTermination()
        // Exiting closes the netlink socket: the persistent table stays, unowned, until weir claims it again.
        withExtendedLifetime(nft) {}
    }
}
