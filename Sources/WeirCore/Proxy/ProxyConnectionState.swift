/// One end of a proxied connection: the client that was captured, or the upstream weir opened.
public enum ProxySide: UInt8, Sendable, CaseIterable {
    case client, upstream

    public var other: ProxySide { self == .client ? .upstream : .client }
}

/// What happened to a connection, as seen by the event loop.
public enum ProxyEvent: Equatable, Sendable {
    /// The upstream non-blocking connect completed.
    case connected
    /// The upstream connect failed (refused, unreachable, reset).
    case connectFailed
    case connectTimeout
    case idleTimeout
    /// A read from `side` returned end of stream: that peer will send nothing more.
    case endOfStream(from: ProxySide)
    /// Nothing the proxy holds is waiting to be written to `side`.
    case flushed(toward: ProxySide)
    /// `side` was reset or failed (ECONNRESET, EPIPE, ETIMEDOUT, ...).
    case failed(ProxySide)
    /// SIGTERM: the proxy stopped accepting; this connection may finish until the drain deadline.
    case drainStarted
    case drainDeadline
}

/// What the event loop must do after an event, in this order: start, shut down, reset, close.
public struct ProxyActions: OptionSet, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Register both sockets and start moving bytes.
    public static let startForwarding = ProxyActions(rawValue: 1 << 0)
    /// shutdown(SHUT_WR) on the client socket: forward the upstream's end of stream.
    public static let shutdownClientWrite = ProxyActions(rawValue: 1 << 1)
    /// shutdown(SHUT_WR) on the upstream socket: forward the client's end of stream.
    public static let shutdownUpstreamWrite = ProxyActions(rawValue: 1 << 2)
    /// Close the client with a RST (SO_LINGER 0).
    public static let resetClient = ProxyActions(rawValue: 1 << 3)
    /// Close the upstream with a RST (SO_LINGER 0).
    public static let resetUpstream = ProxyActions(rawValue: 1 << 4)
    /// Close both sockets and free everything the connection holds. Without a reset, close() sends a FIN.
    public static let close = ProxyActions(rawValue: 1 << 5)
    /// Before closing, delete the kernel's conntrack entry of the upstream flow. It is set when that flow did not
    /// end with the proxy's own FIN or RST on an established connection: the upstream was never connected (the
    /// entry is SYN_SENT, or CLOSE after a refusal) or it failed (reset by its peer, timed out). Such an entry
    /// outlives the socket (10 s in CLOSE, 120 s in SYN_SENT, days when ESTABLISHED) and the kernel reuses it, NAT
    /// decision and all, for a new SYN on the same 4-tuple: an application on this host that happens to pick the
    /// port the proxy's upstream used would reach the destination directly, around the capture. A FIN or RST the
    /// proxy sent itself makes the kernel drop the old entry on such a SYN and start a new one. The worker skips the
    /// delete where only the proxy makes those 4-tuples (`Worker.ownsUpstreamTuples`).
    public static let forgetUpstream = ProxyActions(rawValue: 1 << 6)

    public static func shutdownWrite(_ side: ProxySide) -> ProxyActions {
        side == .client ? .shutdownClientWrite : .shutdownUpstreamWrite
    }

    public static func reset(_ side: ProxySide) -> ProxyActions { side == .client ? .resetClient : .resetUpstream }

    public var description: String {
        let names: [(ProxyActions, String)] = [
            (.startForwarding, "startForwarding"), (.shutdownClientWrite, "shutdownClientWrite"),
            (.shutdownUpstreamWrite, "shutdownUpstreamWrite"), (.resetClient, "resetClient"),
            (.resetUpstream, "resetUpstream"), (.close, "close"), (.forgetUpstream, "forgetUpstream"),
        ]
        return "[" + names.filter { contains($0.0) }.map(\.1).joined(separator: ",") + "]"
    }
}

/// Where the bytes from one side stand.
public enum ProxyFlow: UInt8, Sendable {
    /// The side may still send.
    case open
    /// The side sent its end of stream; bytes it sent before may still wait to be written to the other side.
    case ending
    /// The end of stream was forwarded with shutdown(SHUT_WR) on the other side.
    case shut
}

/// Phase of a connection, derived from its state.
public enum ProxyPhase: Equatable, Sendable {
    case connecting
    case established
    /// `side` has finished sending and that was forwarded; the other direction still flows.
    case halfClosed(finished: ProxySide)
    /// The proxy is draining; the connection may finish until the drain deadline.
    case draining
    case closed
}

/// The per-connection state machine the event loop drives. A value type with no I/O: the loop feeds it events and
/// performs the actions it returns. Once closed it ignores every event.
public struct ProxyConnectionState: Equatable, Sendable {
    public private(set) var connected = false
    public private(set) var isClosed = false
    public private(set) var draining = false
    /// Bytes from the client toward the upstream.
    public private(set) var clientFlow = ProxyFlow.open
    /// Bytes from the upstream toward the client.
    public private(set) var upstreamFlow = ProxyFlow.open

    public init() {}

    /// A state from its fields (a handed-over connection: `init?(packed:)`).
    public init(connected: Bool, isClosed: Bool, draining: Bool, clientFlow: ProxyFlow, upstreamFlow: ProxyFlow) {
        self.connected = connected
        self.isClosed = isClosed
        self.draining = draining
        self.clientFlow = clientFlow
        self.upstreamFlow = upstreamFlow
    }

    public var phase: ProxyPhase {
        if isClosed { return .closed }
        if draining { return .draining }
        if !connected { return .connecting }
        if clientFlow == .shut { return .halfClosed(finished: .client) }
        if upstreamFlow == .shut { return .halfClosed(finished: .upstream) }
        return .established
    }

    @_optimize(speed)
    public func flow(from side: ProxySide) -> ProxyFlow { side == .client ? clientFlow : upstreamFlow }

    @_optimize(speed)
    private mutating func setFlow(from side: ProxySide, _ flow: ProxyFlow) {
        if side == .client { clientFlow = flow } else { upstreamFlow = flow }
    }

    @_optimize(speed)
    private mutating func close(_ actions: ProxyActions) -> ProxyActions {
        isClosed = true
        return actions.union(.close)
    }

    /// Applies one event and returns what the loop must do. Runs per I/O event: optimized for speed even though
    /// the rest of WeirCore is built for size.
    @_optimize(speed)
    public mutating func handle(_ event: ProxyEvent) -> ProxyActions {
        if isClosed { return [] }
        switch event {
        case .connected:
            guard !connected else { return [] }
            connected = true
            return .startForwarding
        case .connectFailed, .connectTimeout:
            guard !connected else { return [] }
            return close([.resetClient, .forgetUpstream])
        case .idleTimeout, .drainDeadline:
            return close(connected ? [] : .forgetUpstream)
        case .drainStarted:
            draining = true
            return []
        case .failed(let side):
            // A reset on one side resets the other, also while connecting: the client's first bytes may already
            // have gone out with the handshake, and a plain close would end them as if the request were complete.
            // (On an upstream still in SYN_SENT the reset sends nothing.)
            let forget: ProxyActions = side == .upstream || !connected ? .forgetUpstream : []
            return close(ProxyActions.reset(side.other).union(forget))
        case .endOfStream(let side):
            guard flow(from: side) == .open else { return [] }
            setFlow(from: side, .ending)
            return []
        case .flushed(let toward):
            let from = toward.other
            guard connected, flow(from: from) == .ending else { return [] }
            setFlow(from: from, .shut)
            // Both ends finished: close() sends the last FIN, no shutdown needed (the receive queue is empty).
            if clientFlow == .shut && upstreamFlow == .shut { return close([]) }
            return .shutdownWrite(toward)
        }
    }
}
