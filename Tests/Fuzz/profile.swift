// libFuzzer harness: tuning profiles (Profile), then the plan against the node for what parses.
//
// Input: records separated by 0xFF: the profile text; optionally the node's current values as `key value...` lines
// (what /proc/sys would hold); optionally a cgroup v2 `cpu.max` line and a cpuset list, one per line, for the CPU
// budget the derived conntrack sizing follows; optionally a tune-state.json (JSONValue.parse and TuneState).
@testable import WeirCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProfile(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let records = fuzzRecords(data, size)
    if records.count > 3 { fuzzState(Array(records[3])) }
    let text = fuzzText(records[0])
    let profile: Profile
    do {
        profile = try Profile(name: "fuzz", text: text, file: "fuzz.profile")
    } catch let e as ConfigError {
        fuzzCheck(!e.message.isEmpty, "empty error message")
        return 0
    } catch {
        fuzzCheck(false, "unexpected error \(error)")
        return 0
    }
    fuzzCheck(profile.entries.map(\.key.name) == profile.entries.map(\.key.name).sorted(), "entries not sorted")
    var current: [String: String] = [:]
    if records.count > 1 {
        for line in fuzzText(records[1]).split(separator: "\n") {
            let words = line.split(separator: " ", maxSplits: 1)
            if words.count == 2 { current[String(words[0])] = String(words[1]) }
        }
    }
    var quota: Double?, cpuset: Int?
    if records.count > 2 {
        let lines = fuzzText(records[2]).split(separator: "\n", omittingEmptySubsequences: false)
        quota = CPUBudget.parseCPUMax(String(lines[0]))
        if lines.count > 1 { cpuset = CPUList(parsing: String(lines[1]))?.count }
    }
    let environment = TuneEnvironment(initialNetworkNamespace: size % 2 == 0, loadedModules: ["nf_conntrack"],
                                      cpu: CPUBudget(host: 64, quota: quota, cpuset: cpuset))
    do {
        let plan = try TunePlan.make(profile: profile, environment: environment) { current[$0.name] }
        _ = plan.table()
        // What weir writes fits the key, whenever what the node holds does (raise-only keeps a higher node value).
        for item in plan.items where item.action == .set && item.current.map(item.key.shape.accepts) ?? true {
            fuzzCheck(item.desired.map(item.key.shape.accepts) ?? false,
                      "plan sets \(item.key.name) to \(item.desired?.description ?? "nothing")")
        }
    } catch let e as ConfigError {
        fuzzCheck(!e.message.isEmpty, "empty error message")
    } catch {
        fuzzCheck(false, "unexpected error \(error)")
    }
    return 0
}

/// The state file reader: whatever parses renders and reads back as the same value, and so does a state.
func fuzzState(_ bytes: [UInt8]) {
    guard let value = try? JSONValue.parse(bytes) else { return }
    fuzzCheck((try? JSONValue.parse(Array(value.rendered.utf8))) == value, "JSON does not read back")
    if let state = TuneState(json: bytes) {
        fuzzCheck(TuneState(json: Array(state.json.utf8)) == state, "state does not read back")
    }
}
