import Testing
import WeirCore

/// Every event in every phase, without sockets.
struct ProxyStateTests {
    static let allEvents: [ProxyEvent] = [
        .connected, .connectFailed, .connectTimeout, .idleTimeout, .endOfStream(from: .client),
        .endOfStream(from: .upstream), .flushed(toward: .client), .flushed(toward: .upstream), .failed(.client),
        .failed(.upstream), .drainStarted, .drainDeadline,
    ]

    func established() -> ProxyConnectionState {
        var s = ProxyConnectionState()
        #expect(s.handle(.connected) == .startForwarding)
        return s
    }

    @Test func startsConnecting() {
        let s = ProxyConnectionState()
        #expect(s.phase == .connecting)
        #expect(s.clientFlow == .open && s.upstreamFlow == .open)
    }

    @Test func connectedStartsForwardingOnce() {
        var s = established()
        #expect(s.phase == .established)
        #expect(s.handle(.connected) == [])
    }

    @Test(arguments: [ProxyEvent.connectFailed, .connectTimeout, .failed(.upstream)])
    func connectFailureResetsClient(event: ProxyEvent) {
        var s = ProxyConnectionState()
        #expect(s.handle(event) == [.resetClient, .close, .forgetUpstream])
        #expect(s.phase == .closed)
    }

    @Test func clientResetWhileConnectingResetsUpstream() {
        // The client's first bytes may already be upstream: they must not end with a FIN as if complete.
        var s = ProxyConnectionState()
        // Its SYN_SENT conntrack entry is deleted too: the reset sends nothing on an unconnected socket.
        #expect(s.handle(.failed(.client)) == [.resetUpstream, .close, .forgetUpstream])
        #expect(s.phase == .closed)
    }

    @Test func connectEventsAfterConnectedAreIgnored() {
        var s = established()
        #expect(s.handle(.connectFailed) == [])
        #expect(s.handle(.connectTimeout) == [])
        #expect(s.phase == .established)
    }

    @Test(arguments: ProxySide.allCases)
    func halfCloseIsForwardedAfterFlush(from side: ProxySide) {
        var s = established()
        #expect(s.handle(.endOfStream(from: side)) == [])
        #expect(s.flow(from: side) == .ending)
        // Flushing toward the sender itself does not forward its end of stream.
        #expect(s.handle(.flushed(toward: side)) == [])
        #expect(s.handle(.flushed(toward: side.other)) == .shutdownWrite(side.other))
        #expect(s.phase == .halfClosed(finished: side))
        // The other direction still flows; its end closes the connection.
        #expect(s.handle(.endOfStream(from: side.other)) == [])
        // The last end of stream is forwarded by close() itself (FIN).
        #expect(s.handle(.flushed(toward: side)) == .close)
        #expect(s.phase == .closed)
    }

    @Test func flushedWithoutEndOfStreamDoesNothing() {
        var s = established()
        #expect(s.handle(.flushed(toward: .client)) == [])
        #expect(s.handle(.flushed(toward: .upstream)) == [])
        #expect(s.phase == .established)
    }

    @Test func secondEndOfStreamIsIgnored() {
        var s = established()
        _ = s.handle(.endOfStream(from: .client))
        _ = s.handle(.flushed(toward: .upstream))
        #expect(s.handle(.endOfStream(from: .client)) == [])
        #expect(s.clientFlow == .shut)
    }

    @Test func endOfStreamWhileConnectingIsForwardedAfterConnect() {
        var s = ProxyConnectionState()
        #expect(s.handle(.endOfStream(from: .client)) == [])
        #expect(s.handle(.flushed(toward: .upstream)) == [])
        #expect(s.handle(.connected) == .startForwarding)
        #expect(s.handle(.flushed(toward: .upstream)) == .shutdownUpstreamWrite)
    }

    @Test(arguments: ProxySide.allCases)
    func resetPropagatesToTheOtherSide(side: ProxySide) {
        var s = established()
        // An upstream that failed leaves a conntrack entry the kernel would reuse: it is deleted. A reset the proxy
        // sends the upstream itself (the client failed) needs nothing more.
        let forget: ProxyActions = side == .upstream ? .forgetUpstream : []
        #expect(s.handle(.failed(side)) == ProxyActions([.reset(side.other), .close]).union(forget))
        #expect(s.phase == .closed)
    }

    @Test(arguments: ProxySide.allCases)
    func resetDuringHalfClosePropagates(side: ProxySide) {
        var s = established()
        _ = s.handle(.endOfStream(from: .client))
        _ = s.handle(.flushed(toward: .upstream))
        let forget: ProxyActions = side == .upstream ? .forgetUpstream : []
        #expect(s.handle(.failed(side)) == ProxyActions([.reset(side.other), .close]).union(forget))
    }

    @Test func idleTimeoutClosesBoth() {
        var s = established()
        #expect(s.handle(.idleTimeout) == .close)
        #expect(s.phase == .closed)
    }

    @Test func drainKeepsForwardingUntilDeadline() {
        var s = established()
        #expect(s.handle(.drainStarted) == [])
        #expect(s.phase == .draining)
        #expect(s.handle(.endOfStream(from: .upstream)) == [])
        #expect(s.handle(.flushed(toward: .client)) == .shutdownClientWrite)
        #expect(s.handle(.drainDeadline) == .close)
    }

    @Test func drainingConnectionCanFinishByItself() {
        var s = established()
        _ = s.handle(.drainStarted)
        _ = s.handle(.endOfStream(from: .client))
        _ = s.handle(.endOfStream(from: .upstream))
        #expect(s.handle(.flushed(toward: .upstream)) == .shutdownUpstreamWrite)
        #expect(s.handle(.flushed(toward: .client)) == .close)
    }

    @Test func drainWhileConnecting() {
        var s = ProxyConnectionState()
        _ = s.handle(.drainStarted)
        #expect(s.handle(.connected) == .startForwarding)
        #expect(s.handle(.drainDeadline) == .close)
    }

    @Test(arguments: [ProxyEvent.idleTimeout, .drainDeadline])
    func closingWhileConnectingForgetsTheUpstreamFlow(event: ProxyEvent) {
        // close() on a SYN_SENT socket sends nothing: its conntrack entry would stay SYN_SENT for 120 s.
        var s = ProxyConnectionState()
        #expect(s.handle(event) == [.close, .forgetUpstream])
    }

    /// The upstream flow is forgotten exactly when it did not end with the proxy's own FIN or RST on an established
    /// connection, whatever came before.
    @Test func forgetUpstreamOnlyWhenTheProxyDidNotEndTheFlow() {
        for a in Self.allEvents {
            for b in Self.allEvents {
                var s = ProxyConnectionState()
                for e in [a, b] {
                    let wasConnected = s.connected
                    let actions = s.handle(e)
                    guard actions.contains(.close) else {
                        #expect(!actions.contains(.forgetUpstream))
                        continue
                    }
                    #expect(actions.contains(.forgetUpstream) == (!wasConnected || e == .failed(.upstream)))
                }
            }
        }
    }

    @Test(arguments: allEvents)
    func closedIgnoresEverything(event: ProxyEvent) {
        var s = established()
        _ = s.handle(.idleTimeout)
        let before = s
        #expect(s.handle(event) == [])
        #expect(s == before)
    }

    /// Every event sequence of length 3 from every reachable state: close happens at most once, a reset is always
    /// accompanied by close, and shutdowns of one side are never issued twice.
    @Test func exhaustiveSequencesKeepInvariants() {
        for a in Self.allEvents {
            for b in Self.allEvents {
                for c in Self.allEvents {
                    var s = ProxyConnectionState()
                    var closes = 0, clientShut = 0, upstreamShut = 0, starts = 0
                    for e in [a, b, c] {
                        let actions = s.handle(e)
                        if actions.contains(.close) { closes += 1 }
                        if actions.contains(.startForwarding) { starts += 1 }
                        if actions.contains(.shutdownClientWrite) { clientShut += 1 }
                        if actions.contains(.shutdownUpstreamWrite) { upstreamShut += 1 }
                        if !actions.isDisjoint(with: [.resetClient, .resetUpstream]) {
                            #expect(actions.contains(.close))
                        }
                        if actions.contains(.close) { #expect(s.phase == .closed) }
                    }
                    #expect(closes <= 1 && starts <= 1 && clientShut <= 1 && upstreamShut <= 1)
                }
            }
        }
    }

    @Test func actionsDescribeThemselves() {
        #expect(ProxyActions([.resetClient, .close]).description == "[resetClient,close]")
        #expect(ProxyActions([.close, .forgetUpstream]).description == "[close,forgetUpstream]")
    }
}

/// When a proxy gives memory back after a burst of connections.
struct MemoryHousekeepingTests {
    @Test func onlyOnceTheOpenConnectionsHalvedByAtLeastTheMinimumDrop() {
        var h = MemoryHousekeeping()
        // Open connections, one per second, and whether memory goes back then:
        // a small proxy never (16 come and go); a burst of 1,600, down to 900 (not half), 800 (half, 800 fewer);
        // from 800 the mark starts again: 500 (300 fewer, not half), 0; then 400 and 100 (half, 300 fewer).
        let open = [16, 0, 1_600, 900, 800, 500, 0, 0, 400, 100]
        let due = open.map { h.due(open: $0) }
        #expect(due == [false, false, false, false, true, false, true, false, false, true])
        #expect(h.highWater == 100)
    }
}

/// `SourcePortCursor`: ports in turn round the range, and after a refused port a jump that takes one connection's
/// attempts across the whole range.
struct SourcePortCursorTests {
    /// Tries `attempts` ports for one connection; the first not in `busy`, or nil.
    func take(_ cursor: inout SourcePortCursor, busy: Set<UInt16>, attempts: Int) -> UInt16? {
        for tries in 0..<attempts {
            let port = cursor.next(tries: tries)
            if !busy.contains(port) { return port }
        }
        return nil
    }

    @Test func portsComeInTurnRoundTheRangeFromTheWorkersStart() {
        var cursor = SourcePortCursor(ports: 61000...61003, start: 2, attempts: 64)
        #expect((0..<6).map { _ in cursor.next(tries: 0) } == [61002, 61003, 61000, 61001, 61002, 61003])
    }

    @Test func aRunOfBusyPortsLongerThanTheAttemptsIsLeftInOneConnection() {
        // Linux's default auto range above 60999, the 64 attempts of Worker, and 300 long-lived connections holding
        // the ports right after the worker's start.
        let ports: ClosedRange<UInt16> = 61000...65535
        let busy = Set((0..<300).map { ports.lowerBound + UInt16($0) })
        var cursor = SourcePortCursor(ports: ports, start: 0, attempts: 64)
        let port = take(&cursor, busy: busy, attempts: 64)
        #expect(port != nil && !busy.contains(port!))
        // The next connection goes on from there, not back into the run.
        let next = take(&cursor, busy: busy, attempts: 1)
        #expect(next == port.map { $0 + 1 })
        // Every attempt of a connection that finds everything busy lands on a different port.
        var all = SourcePortCursor(ports: ports, start: 0, attempts: 64)
        let tried = Set((0..<64).map { all.next(tries: $0) })
        #expect(tried.count == 64)
    }

    @Test func aOnePortRangeAlwaysGivesThatPort() {
        var cursor = SourcePortCursor(ports: 65000...65000, start: 7, attempts: 64)
        #expect((0..<3).map { cursor.next(tries: $0) } == [65000, 65000, 65000])
    }
}

/// `ConnectionRate`: the per-pod rate ceiling as a cell rate algorithm over one shared arrival time.
struct ConnectionRateTests {
    /// Takes connections at `times` (us) while allowed; returns the times taken.
    func taken(_ rate: ConnectionRate, at times: [Int64]) -> [Int64] {
        var tat: Int64 = 0
        var out: [Int64] = []
        for t in times where !rate.limited(tat: tat, nowUs: t) {
            tat = rate.taking(tat: tat, nowUs: t)
            out.append(t)
        }
        return out
    }

    @Test func aQuietPodTakesABurstOfATenthOfASecondThenTheRate() {
        let rate = ConnectionRate(perSecond: 100)  // burst 10, one every 10 ms after it
        #expect(rate.burst == 10 && rate.intervalUs == 10_000)
        let start: Int64 = 5_000_000
        // 50 at once: the burst only.
        #expect(taken(rate, at: Array(repeating: start, count: 50)).count == 10)
        // A storm of one attempt per millisecond for a second: the burst plus the rate, not the storm.
        let storm = (0..<1000).map { start + Int64($0) * 1000 }
        let got = taken(rate, at: storm).count
        #expect(got >= 100 && got <= 110, "\(got)")
        // After the storm, the next is allowed at allowedAt and not before.
        var tat: Int64 = 0
        for t in storm where !rate.limited(tat: tat, nowUs: t) { tat = rate.taking(tat: tat, nowUs: t) }
        let at = rate.allowedAt(tat: tat)
        #expect(rate.limited(tat: tat, nowUs: at - 1) && !rate.limited(tat: tat, nowUs: at))
    }

    @Test func aLowRateHasABurstOfOneAndNoCeilingIsNeverLimited() {
        let one = ConnectionRate(perSecond: 1)
        #expect(one.burst == 1 && one.toleranceUs == 0)
        #expect(taken(one, at: [0, 1, 999_999, 1_000_000, 1_500_000, 2_000_000]) == [0, 1_000_000, 2_000_000])
        let none = ConnectionRate(perSecond: 0)
        #expect(!none.enabled && none.burst == 0)
        #expect(taken(none, at: Array(repeating: 7, count: 1000)).count == 1000)
        // Past the most the flag takes: clamped, never a zero interval.
        #expect(ConnectionRate(perSecond: 5_000_000).intervalUs == 1)
    }

    @Test func aPodThatWasQuietForLongGetsOnlyOneBurstNotItsSavings() {
        let rate = ConnectionRate(perSecond: 1000)  // burst 100
        var tat: Int64 = 0
        tat = rate.taking(tat: tat, nowUs: 1_000)
        // An hour later: the arrival time starts from now again.
        let later: Int64 = 3_600_000_000
        let burst = taken(rate, at: Array(repeating: later, count: 1000)).count
        #expect(burst == 100)
        #expect(rate.taking(tat: tat, nowUs: later) == later + 1000)
    }
}
