import Glibc

/// A failed system call: which call, on what, and errno.
public struct SystemError: Error, CustomStringConvertible, Equatable {
    public let call: String
    public let errno: Int32

    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(call): \(errnoName(errno))" }
}

/// What a non-blocking call did: a result, or "would block" (EAGAIN), which is not an error.
public enum IOResult<T: Equatable>: Equatable {
    case done(T)
    case wouldBlock
}

/// Runs a call that returns -1 with errno on failure: retries EINTR, reports EAGAIN/EWOULDBLOCK as `.wouldBlock`,
/// and throws `SystemError` naming the call for anything else (swift-nio's `syscall` works this way).
@inline(__always)
public func syscall<T: FixedWidthInteger>(_ name: @autoclosure () -> String, _ body: () -> T) throws -> IOResult<T> {
    while true {
        let r = body()
        if r >= 0 { return .done(r) }
        let e = errno
        if e == EINTR { continue }
        if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
        throw SystemError(name(), errno: e)
    }
}

/// A call on a path or a blocking descriptor, which returns -1 with errno on failure: EINTR is retried, and anything
/// else, EAGAIN included (it cannot mean "try later" here), throws `SystemError` naming the call. Returns the result.
@inline(__always) @discardableResult
func blockingCall<T: FixedWidthInteger>(_ name: String, _ body: () -> T) throws -> T {
    guard case .done(let r) = try syscall(name, body) else { throw SystemError(name, errno: EAGAIN) }
    return r
}

/// Writes every byte to a blocking descriptor (EINTR and short writes handled).
public func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
    var written = 0
    while written < bytes.count {
        written += try blockingCall("write") {
            bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        }
    }
}

/// Reads a blocking descriptor to its end, or until it has read more than `limit` bytes (the caller sees the count
/// and refuses the input: a pipe that never ends cannot fill memory).
public func readAll(_ fd: Int32, limit: Int = .max) throws -> [UInt8] {
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while bytes.count <= limit {
        let n = try blockingCall("read") { buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) } }
        if n == 0 { return bytes }
        bytes.append(contentsOf: buffer[0..<n])
    }
    return bytes
}
