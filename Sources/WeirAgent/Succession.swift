import WeirCore
import WeirProxy
import WeirSystem

/// What this process got from the one it replaces, from systemd's file-descriptor store or from a live takeover:
/// listening sockets by kind (and pod), pods' namespaces, live connections with their descriptors, counters.
final class HandedOver {
    /// Where it came from, for the log: "systemd" or "pid N".
    let source: String
    var listeners: [InheritedListener] = []
    /// Pods' namespaces by pod key (live takeover only; after a restart they are opened by path).
    var namespaces: [String: Descriptor] = [:]
    var connections: [HandoverConnection] = []
    var descriptors: [DescriptorKey: Descriptor] = [:]
    var counters: [Int64] = []
    /// The live takeover still under way (connections follow once this process serves).
    var session: TakeoverSession?
    /// The names systemd's store holds capture listeners under (forgotten once this process keeps its own).
    var storeNames: Set<String> = []

    init(source: String) { self.source = source }

    /// The first inherited socket of `kind` (admin, metrics, cni, handover), taken out of the list.
    func take(_ kind: HandoverListener.Kind) -> Socket? {
        guard let i = listeners.firstIndex(where: { $0.record.kind == kind }) else { return nil }
        let l = listeners.remove(at: i)
        return Socket(owning: l.descriptor.take(), family: Int32(l.record.family))
    }

    /// The first inherited descriptor of `kind`, as a plain descriptor (the unix sockets: cni, handover).
    func takeDescriptor(_ kind: HandoverListener.Kind) -> Descriptor? {
        take(kind).map { Descriptor(owning: $0.take()) }
    }

    /// The capture listeners of the node ("") or of one pod, taken out of the list.
    func takeCapture(pod: String) -> [InheritedListener] {
        var out: [InheritedListener] = []
        listeners.removeAll { l in
            guard l.record.kind == .outbound || l.record.kind == .inbound, l.record.pod == pod else { return false }
            out.append(l)
            return true
        }
        return out
    }
}

/// systemd's file-descriptor store (`FileDescriptorStoreMax=` in the unit, `$FDSTORE` in the environment, as systemd
/// 254 sets it and weir.service sets it for older ones): every listening socket is kept there from the moment it is
/// opened, so that a restart, a watchdog abort or a `kill -9` finds it and no connection is refused while weir is
/// replaced; on a restart, the live connections and their state go there too.
enum FDStore {
    static var enabled: Bool {
        ProcessEnvironment.get("NOTIFY_SOCKET") != nil && (ProcessEnvironment.get("FDSTORE").flatMap { Int($0) } ?? 0) > 0
    }

    static func keep(_ name: String, _ fds: [Int32]) -> Bool {
        guard enabled, !fds.isEmpty else { return false }
        return Inheritance.notify("FDSTORE=1\nFDNAME=\(name)", descriptors: fds)
    }

    static func forget(_ name: String) {
        guard enabled else { return }
        _ = Inheritance.notify("FDSTOREREMOVE=1\nFDNAME=\(name)", descriptors: [])
    }

    /// What systemd passed at this start; nil when nothing. Capture listeners are recognised by their port
    /// (`proxyPort`, `inboundPort`): one of a port no longer configured is closed.
    static func inherited(proxyPort: UInt16, inboundPort: UInt16) -> HandedOver? {
        let passed = Inheritance.takeListenDescriptors()
        guard !passed.isEmpty else { return nil }
        let out = HandedOver(source: "systemd")
        var seenNames: Set<String> = []
        var state: [UInt8]?
        var unknown: [String] = []
        for (name, descriptor) in passed {
            guard let k = Inheritance.key(of: descriptor.rawValue) else { continue }
            let key = DescriptorKey(inode: k.inode, accessMode: k.accessMode)
            if name == "weir-state" {
                state = try? Inheritance.contents(of: descriptor, limit: 1 << 30)
                continue
            }
            if name == "weir-conn" {
                out.descriptors[key] = descriptor
                continue
            }
            let kind: HandoverListener.Kind?
            var pod = ""
            let local = SocketAddress.local(of: descriptor.rawValue)
            switch name {
            case "weir-admin": kind = .admin
            case "weir-metrics": kind = .metrics
            case "weir-cni": kind = .cni
            case "weir-handover": kind = .handover
            default:
                // weir-listen.GEN (the node's) and weir-pod.GEN.KEY (a pod's): GEN is the server that opened it.
                if name.hasPrefix("weir-listen.") || name.hasPrefix("weir-pod.") {
                    seenNames.insert(name)
                    let parts = name.split(separator: ".", maxSplits: 2)
                    pod = parts.count == 3 ? String(parts[2]) : ""
                    kind = local?.port == proxyPort ? .outbound : local?.port == inboundPort ? .inbound : nil
                } else {
                    kind = nil
                }
            }
            guard let kind else {
                unknown.append(name)
                continue  // closes with `descriptor`
            }
            let family = UInt8(truncatingIfNeeded: local?.family ?? AddressFamily.ipv4)
            out.listeners.append(InheritedListener(
                record: HandoverListener(kind: kind, port: local?.port ?? 0, family: family, pod: pod, key: key),
                descriptor: descriptor))
        }
        out.storeNames = seenNames
        if !unknown.isEmpty {
            agentLog("warning", ["reason": "descriptors from systemd not used (closed)", "names": unknown.joined(separator: ",")])
        }
        if let state {
            do {
                let decoded = try HandoverState.decode(state)
                out.connections = decoded.connections
                out.counters = decoded.counters
            } catch {
                // Another version's state: its connections cannot be served here and close with their descriptors.
                agentLog("handover_refused", ["from": "systemd", "reason": "\(error)",
                                              "connections": "closed (their descriptors are not usable)"])
            }
        }
        return out
    }
}

/// Whether to hand the live connections to the next process on SIGTERM, under systemd: only when a restart of this
/// unit is queued (a plain stop releases the store, and would close them: then the drain is right) and the binary
/// that will start next reads this version's state (else it could not serve them: drain, and say so).
enum SystemdSuccession {
    /// The unit this process runs in (`weir.service`), from its cgroup.
    static var unit: String? {
        guard case .success(let bytes) = readSmallFile("/proc/self/cgroup", limit: 1 << 16) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        for line in text.split(separator: "\n") {
            guard let last = line.split(separator: "/").last, last.hasSuffix(".service") else { continue }
            return String(last)
        }
        return nil
    }

    /// A restart job of `unit` is queued or running (`systemctl list-jobs`).
    static func restartQueued(_ unit: String) -> Bool {
        for systemctl in ["/usr/bin/systemctl", "/bin/systemctl"] where FileSystem.exists(systemctl) {
            guard let out = Subprocess.output([systemctl, "list-jobs", "--no-legend", "--no-pager", "--full"])
            else { return false }
            return out.split(separator: "\n").contains { line in
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                return f.count >= 3 && f[1] == Substring(unit) && f[2].contains("restart")
            }
        }
        return false
    }

    /// The handover version the binary at this process's path speaks now (after an upgrade: the new one).
    static func successorVersion() -> UInt16? {
        guard var path = FileSystem.readLink("/proc/self/exe") else { return nil }
        if path.hasSuffix(" (deleted)") { path.removeLast(" (deleted)".count) }
        guard let out = Subprocess.output([path, "handover-version"], timeoutMs: 5000) else { return nil }
        return UInt16(out.split(separator: "\n").first.map(String.init) ?? "")
    }

    /// Why not to hand over to systemd, or nil when it should.
    static func refusal() -> String? {
        guard FDStore.enabled else { return "no file-descriptor store" }
        guard let unit else { return "unit unknown" }
        guard restartQueued(unit) else { return "no restart queued: a stop" }
        guard let v = successorVersion() else { return "the binary to start next does not say its handover version" }
        guard v == spokenHandoverVersion else {
            return "the binary to start next reads handover version \(v), this one writes \(spokenHandoverVersion)"
        }
        return nil
    }
}
