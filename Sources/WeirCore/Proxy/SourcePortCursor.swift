/// Where a worker takes the next port of `--tproxy-source-ports` for an inbound TPROXY upstream.
///
/// Ports are taken in turn round the range, from a start of the worker's own, so the ports of short connections come
/// back into use as late as possible (their TIME_WAIT ends first). A port is refused when its 4-tuple is taken, and
/// long-lived connections hold runs of neighbouring ports: the connections a process takes over from its
/// predecessor (or the first ones after a start) were given ports in a row from the same start, where the
/// successor's workers start too. Walking such a run one port at a time could spend the whole attempt budget inside
/// it: the stress takeover fault refused an inbound IPv6 connection now and then with EADDRNOTAVAIL (16 of ~70,000
/// in one full run, 3 in one of three runs of the fault alone; 0 in seven runs with the jump). After a refused port
/// the next try therefore jumps by `stride`, so the attempts of one connection spread over the whole range.
public struct SourcePortCursor: Equatable, Sendable {
    public let ports: ClosedRange<UInt16>
    /// The offset in `ports` of the next port.
    public private(set) var offset: Int
    /// How far a try after a refused port jumps: the range over the attempts of one connection, so `attempts` tries
    /// reach all of it.
    public let stride: Int

    public init(ports: ClosedRange<UInt16>, start: Int, attempts: Int) {
        self.ports = ports
        offset = ports.isEmpty ? 0 : start % ports.count
        stride = max(1, ports.count / max(1, attempts))
    }

    /// The port for try number `tries` (0: the first of a connection) of one connection.
    public mutating func next(tries: Int) -> UInt16 {
        if tries > 0 { offset = (offset + stride - 1) % ports.count }
        let port = ports.lowerBound + UInt16(offset)
        offset = (offset + 1) % ports.count
        return port
    }
}
