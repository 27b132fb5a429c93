// libFuzzer harness: the CNI plugin's side and cni-install's edits, on one input read both ways.
//
// Input: the network config on standard input (every verb, every kind of answer of the agent), and the same bytes as
// a file of the CNI config directory (as NAME.conf and as NAME.conflist). What must hold: every output is JSON (the
// spec's error object when the exit status is not 0; ADD's result in the request's version); an installed config
// reads back with weir last, exactly once, and installing again changes nothing; uninstalling leaves no weir and the
// other plugins as they were.
@testable import WeirCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCNIConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = fuzzBytes(data, size)
    let environment = ["CNI_CONTAINERID": "c", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0",
                       "CNI_ARGS": "K8S_POD_NAMESPACE=n;K8S_POD_NAME=p"]
    let answers: [CNIAgentAnswer] = [.reply(ok: true, state: "up", message: ""),
                                     .reply(ok: false, state: "absent", message: "m"), .unreachable("u"), .failed("f")]
    for command in CNICommand.allCases {
        var env = environment
        env["CNI_COMMAND"] = command.rawValue
        switch CNIStart.start(environment: env, stdin: bytes) {
        case .answered(let output):
            checkOutput(output)
        case .ask(let request):
            fuzzCheck(command != .version, "VERSION asked the agent")
            for answer in answers {
                let output = request.output(for: answer)
                checkOutput(output)
                if command == .add, output.exitStatus == 0 {
                    let result = try? JSONValue.parse(Array(output.stdout.utf8))
                    fuzzCheck(result?[member: "cniVersion"]?.stringValue == request.config.cniVersion,
                              "ADD's result is not in the request's version")
                }
            }
        }
    }
    for name in ["10-x.conf", "10-x.conflist"] {
        guard let file = CNIConfFile(name: name, bytes: bytes) else { continue }
        let entry = CNIEntry(agentSocket: "/run/weir/cni.sock", failOpen: size % 2 == 0)
        let others = file.plugins.filter { !Conflist.isWeir($0) }
        if case .edit(let edit) = Conflist.install(entry, files: [file]) {
            guard let written = CNIConfFile(name: edit.write, bytes: Array(edit.text.utf8)) else {
                fuzzCheck(false, "weir cannot read back what it wrote")
                return 0
            }
            fuzzCheck(written.kind == .conflist && written.plugins.last == entry.json
                      && written.plugins.filter(Conflist.isWeir).count == 1, "weir is not last, once")
            fuzzCheck(Array(written.plugins.dropLast()) == others, "the other plugins changed")
            fuzzCheck(Conflist.install(entry, files: [written]) == .unchanged(file: edit.write), "install twice")
            let removed = Conflist.uninstall(files: [written])
            fuzzCheck(removed.count == 1, "uninstall found nothing")
            let restored = CNIConfFile(name: edit.write, bytes: Array(removed[0].text.utf8))
            fuzzCheck(restored.map { !$0.hasWeir && $0.plugins == others } ?? others.isEmpty,
                      "uninstall did not restore the plugins")
        }
    }
    return 0
}

private func checkOutput(_ output: CNIOutput) {
    if output.stdout.isEmpty {
        fuzzCheck(output.exitStatus == 0, "an error without its object")
        return
    }
    guard let value = try? JSONValue.parse(Array(output.stdout.utf8)) else {
        fuzzCheck(false, "output is not JSON")
        return
    }
    if output.exitStatus != 0 {
        fuzzCheck(value[member: "code"]?.intValue != nil && value[member: "msg"]?.stringValue != nil
                  && value[member: "cniVersion"]?.stringValue != nil, "not the spec's error object")
    }
}
