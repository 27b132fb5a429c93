import WeirAgent
import WeirCore

/// Applies the capture table, TPROXY routing and the `::6` hand-off address, printing what changed (or that nothing
/// did). Returns the installer: keep it alive to keep owning the table.
func installCapture(_ config: CaptureConfig, _ table: Table, claim: Bool, force: Bool = false,
                    log: OutputLog = OutputLog()) throws -> CaptureInstaller {
    do {
        let installer = try CaptureInstaller()
        let changes = try installer.apply(config, table, claim: claim, force: force)
        if !changes.contains(where: { $0.kind == .table }) {
            log.info("table \(table.family.rawValue) \(table.name): unchanged")
        }
        if config.mode == .tproxy && !changes.contains(where: { $0.kind == .rule || $0.kind == .route }) {
            log.info("tproxy routing: unchanged")
        }
        changes.forEach { log.info($0.description) }
        if installer.ownershipUnsupported {
            log.info("note: this kernel has no nftables persist flag (needs >= 6.9); the table is not owned")
        }
        return installer
    } catch let error as AgentError {
        throw RuntimeFailure(message: error.description)
    }
}
