import CWeirLinux
import Glibc

/// Readiness flags of a poller event (epoll's values; checked against the C constants when a poller is made).
public struct PollEvents: OptionSet, Sendable {
    public let rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }

    // Literals, not the C constants: the data path tests these per event and a literal costs no load.
    @inlinable public static var readable: PollEvents { PollEvents(rawValue: 0x001) }
    /// Urgent (out-of-band) data arrived (EPOLLPRI).
    @inlinable public static var urgent: PollEvents { PollEvents(rawValue: 0x002) }
    @inlinable public static var writable: PollEvents { PollEvents(rawValue: 0x004) }
    @inlinable public static var error: PollEvents { PollEvents(rawValue: 0x008) }
    @inlinable public static var hangup: PollEvents { PollEvents(rawValue: 0x010) }
    /// The peer sent its FIN (EPOLLRDHUP).
    @inlinable public static var readHangup: PollEvents { PollEvents(rawValue: 0x2000) }
    /// Edge-triggered: reported once per change; the owner reads or writes until it would block.
    @inlinable public static var edgeTriggered: PollEvents { PollEvents(rawValue: 1 << 31) }
}

/// One event: what happened, and the token the descriptor was registered with.
public struct PollEvent {
    public let events: PollEvents
    public let token: UInt64

    @inlinable init(events: PollEvents, token: UInt64) {
        self.events = events
        self.token = token
    }
}

/// An epoll instance with a wake handle (an eventfd another thread writes to interrupt the wait) and room for
/// `capacity` events per wait: the one event loop primitive of the admin server and the proxy's workers (swift-nio's
/// `SelectableEventLoop` over its `Selector` is the model). Tokens are the owner's; `Poller.wakeToken` is reserved.
///
/// `add`, `modify`, `remove` and `wait` return raw results and never throw: the workers call them per connection.
public final class Poller: @unchecked Sendable {
    /// The token of the wake handle's events.
    public static let wakeToken = UInt64.max

    @usableFromInline let epoll: Descriptor
    private let wakeHandle: Descriptor
    @usableFromInline let events: UnsafeMutablePointer<weir_event>
    public let capacity: Int

    public init(capacity: Int = 256) throws {
        precondition(PollEvents.readable.rawValue == WEIR_EPOLLIN && PollEvents.writable.rawValue == WEIR_EPOLLOUT
            && PollEvents.error.rawValue == WEIR_EPOLLERR && PollEvents.hangup.rawValue == WEIR_EPOLLHUP
            && PollEvents.readHangup.rawValue == WEIR_EPOLLRDHUP && PollEvents.urgent.rawValue == WEIR_EPOLLPRI && PollEvents.edgeTriggered.rawValue == WEIR_EPOLLET)
        epoll = try Descriptor.opened("epoll_create1") { weir_epoll_create() }
        wakeHandle = try Descriptor.opened("eventfd") { weir_eventfd() }
        self.capacity = min(capacity, 256)  // weir_epoll_wait's own buffer
        events = .allocate(capacity: self.capacity)
        guard weir_epoll_add(epoll.rawValue, wakeHandle.rawValue, WEIR_EPOLLIN, Self.wakeToken) == 0 else {
            let e = errno
            events.deallocate()
            throw SystemError("epoll_ctl", errno: e)
        }
    }

    deinit { events.deallocate() }

    /// Watches `fd`: 0, or errno (ENOMEM, or fs.epoll.max_user_watches reached).
    @discardableResult @inlinable @inline(__always)
    public func add(_ fd: Int32, _ interest: PollEvents, token: UInt64) -> Int32 {
        weir_epoll_add(epoll.rawValue, fd, interest.rawValue, token) == 0 ? 0 : errno
    }

    /// Changes what `fd` is watched for: 0, or errno.
    @discardableResult @inlinable @inline(__always)
    public func modify(_ fd: Int32, _ interest: PollEvents, token: UInt64) -> Int32 {
        weir_epoll_mod(epoll.rawValue, fd, interest.rawValue, token) == 0 ? 0 : errno
    }

    /// Stops watching `fd` (closing a descriptor does this by itself): 0, or errno.
    @discardableResult @inlinable @inline(__always)
    public func remove(_ fd: Int32) -> Int32 { weir_epoll_del(epoll.rawValue, fd) == 0 ? 0 : errno }

    /// Waits up to `timeoutMs` (-1: forever) and returns how many events are ready (0 on timeout or when a signal
    /// interrupted the wait); read them with `self[i]`. Throws only for a broken poller (EBADF, EINVAL).
    @inlinable @inline(__always)
    public func wait(timeoutMs: Int32) throws -> Int {
        let n = weir_epoll_wait(epoll.rawValue, events, Int32(capacity), timeoutMs)
        if n >= 0 { return Int(n) }
        let e = errno
        if e == EINTR { return 0 }
        throw SystemError("epoll_wait", errno: e)
    }

    @inlinable @inline(__always)
    public subscript(i: Int) -> PollEvent {
        PollEvent(events: PollEvents(rawValue: events[i].events), token: events[i].data)
    }

    /// Interrupts a wait from any thread: the waiting thread sees an event with `wakeToken`.
    public func wake() {
        var one: UInt64 = 1
        _ = Glibc.write(wakeHandle.rawValue, &one, 8)
    }

    /// Takes the wake-ups so far (call on `wakeToken`): the handle stays quiet until the next `wake()`.
    public func acknowledgeWake() {
        var value: UInt64 = 0
        _ = Glibc.read(wakeHandle.rawValue, &value, 8)
    }

    /// The wait for a loop whose next deadline is `deadline` (CLOCK_MONOTONIC ms, as `Clock.nowMs()`): the time
    /// left, never negative and at most `maxMs` (a loop that beats a heartbeat wakes at least that often).
    @inlinable @inline(__always)
    public static func timeout(until deadline: Int64, now: Int64, maxMs: Int64) -> Int32 {
        Int32(max(0, min(maxMs, deadline - now)))
    }
}

/// The listening sockets of an event loop, which it stops watching for a while when descriptors run out: accept
/// would fail again at once and the loop would spin on the listener's readiness. The admin server and the proxy's
/// workers share this one pause (each decides what else to do about the shortage first).
public struct AcceptGate {
    /// How long accepting pauses.
    public static let pauseMs: Int64 = 100

    /// The listeners are watched: the loop may accept.
    public private(set) var isOpen = false
    /// When a pause ends (CLOCK_MONOTONIC ms); 0 when not paused.
    public private(set) var pausedUntil: Int64 = 0

    public init() {}

    /// Watches every listener: 0, or the errno of the first the kernel refused (the others stay watched).
    @discardableResult
    public mutating func open(_ poller: Poller, _ listeners: [(fd: Int32, token: UInt64)]) -> Int32 {
        var failure: Int32 = 0
        for l in listeners {
            let e = poller.add(l.fd, .readable, token: l.token)
            if failure == 0 { failure = e }
        }
        isOpen = true
        pausedUntil = 0
        return failure
    }

    /// Stops watching the listeners for `pauseMs`. True when they were watched until now (the caller logs it once
    /// per pause).
    @discardableResult
    public mutating func pause(_ poller: Poller, _ listeners: [(fd: Int32, token: UInt64)], now: Int64) -> Bool {
        pausedUntil = now + Self.pauseMs
        guard isOpen else { return false }
        for l in listeners { poller.remove(l.fd) }
        isOpen = false
        return true
    }

    /// The listeners are closed (a drain): nothing to watch or resume any more.
    public mutating func close() {
        isOpen = false
        pausedUntil = 0
    }

    /// A pause is on and ends at `pausedUntil`.
    public var isPaused: Bool { !isOpen && pausedUntil > 0 }

    /// True once a pause is over: call `open` to watch the listeners again.
    public func pauseEnded(now: Int64) -> Bool { isPaused && now >= pausedUntil }
}
