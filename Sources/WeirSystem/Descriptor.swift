import Glibc

/// A file descriptor that closes itself (swift-system's `FileDescriptor` and swift-nio's `BaseSocket` are the models).
///
/// Control-plane code (the agent, netlink, the admin server, listeners while they are built) holds descriptors as
/// `Descriptor` and never calls `close` by hand: the last reference closes it, once, and `take()` hands the number to a
/// new owner (the proxy's per-connection tables, which keep raw numbers on purpose: see WeirProxy's Worker) without
/// closing it. A closed or taken descriptor reads as -1.
public final class Descriptor: @unchecked Sendable, CustomStringConvertible {
    public private(set) var rawValue: Int32

    /// Takes ownership of `fd` (>= 0).
    public init(owning fd: Int32) {
        precondition(fd >= 0, "Descriptor(owning: \(fd))")
        rawValue = fd
    }

    /// Wraps the result of a call that returns a descriptor or -1 with errno: the error names `call`.
    public static func opened(_ call: @autoclosure () -> String, _ body: () -> Int32) throws -> Descriptor {
        while true {
            let fd = body()
            if fd >= 0 { return Descriptor(owning: fd) }
            let e = errno
            if e == EINTR { continue }
            throw SystemError(call(), errno: e)
        }
    }

    deinit {
        if rawValue >= 0 { Glibc.close(rawValue) }
    }

    public var isOpen: Bool { rawValue >= 0 }

    /// Gives the descriptor to a new owner: this value no longer closes it.
    public func take() -> Int32 {
        let fd = rawValue
        rawValue = -1
        return fd
    }

    /// Closes now (for a caller that must know the descriptor is gone before it goes on, as a listener retired while
    /// its replacement binds the same port). Closing twice does nothing. Linux releases the descriptor even when
    /// close reports an error, so there is nothing to retry; the error is returned for the caller to log.
    @discardableResult
    public func close() -> SystemError? {
        guard rawValue >= 0 else { return nil }
        let fd = rawValue
        rawValue = -1
        return Glibc.close(fd) == 0 || errno == EINTR ? nil : SystemError("close", errno: errno)
    }

    public var description: String { "fd \(rawValue)" }
}

/// Closes a raw descriptor this code owns (the proxy's per-connection sockets and pipes, which are kept as numbers in
/// flat tables: a class per descriptor would cost an allocation and reference counting per connection on the hot
/// path). The one place raw descriptors are closed outside `Descriptor`.
@inline(__always)
public func closeDescriptor(_ fd: Int32) {
    if fd >= 0 { _ = Glibc.close(fd) }
}

extension Descriptor {
    /// A second descriptor of the same open file (F_DUPFD_CLOEXEC): it keeps the file open until it is closed too.
    public func duplicate() throws -> Descriptor {
        try Descriptor.opened("fcntl(F_DUPFD_CLOEXEC)") { fcntl(rawValue, F_DUPFD_CLOEXEC, 0) }
    }
}

extension Descriptor {
    /// A close-on-exec duplicate of a raw descriptor this code does not own.
    public static func duplicating(_ fd: Int32) throws -> Descriptor {
        try Descriptor.opened("fcntl(F_DUPFD_CLOEXEC)") { fcntl(fd, F_DUPFD_CLOEXEC, 0) }
    }
}
