import Glibc
import Testing
import WeirSystem

/// Descriptors close themselves once, and only when they still own their number.
///
/// Whether a pipe's read end is closed is asked of its write end (POLLERR once the pipe has no reader), never of the
/// number itself: tests run in parallel, and another test may be given the number as soon as it is free.
@Suite struct DescriptorTests {
    private func readEndClosed(_ writeEnd: Int32) -> Bool {
        var p = pollfd(fd: writeEnd, events: Int16(POLLOUT), revents: 0)
        return poll(&p, 1, 0) == 1 && p.revents & Int16(POLLERR) != 0
    }

    private func pipe() throws -> (read: Int32, write: Int32) { try #require(makePipe(size: 0)) }

    @Test func theLastReferenceCloses() throws {
        let (r, w) = try pipe()
        defer { closeDescriptor(w) }
        do {
            let d = Descriptor(owning: r)
            #expect(d.isOpen && d.rawValue == r)
            #expect(!readEndClosed(w))
        }
        #expect(readEndClosed(w))
    }

    @Test func takeHandsTheNumberOnWithoutClosing() throws {
        let (r, w) = try pipe()
        defer { closeDescriptor(w) }
        var taken: Int32 = -1
        do {
            let d = Descriptor(owning: r)
            taken = d.take()
            #expect(!d.isOpen && d.rawValue == -1)
        }
        #expect(taken == r && !readEndClosed(w))
        closeDescriptor(taken)
        #expect(readEndClosed(w))
    }

    @Test func closeIsOnceAndEarly() throws {
        let (r, w) = try pipe()
        defer { closeDescriptor(w) }
        let d = Descriptor(owning: r)
        #expect(d.close() == nil)
        #expect(readEndClosed(w) && !d.isOpen)
        #expect(d.close() == nil)  // twice: nothing, and never a number reused meanwhile
    }

    @Test func closeDescriptorIgnoresMinusOne() {
        closeDescriptor(-1)
    }

    @Test func openedNamesTheCallThatFailed() {
        let error = #expect(throws: SystemError.self) {
            _ = try Descriptor.opened("open /nonexistent") { open("/nonexistent", O_RDONLY) }
        }
        #expect(error?.description == "open /nonexistent: ENOENT")
    }

    @Test func socketsCloseWithTheirLastReference() throws {
        var address = SocketAddress()
        do {
            let listener = try Socket.listener(on: SocketAddress(ip: "127.0.0.1", port: 0)!, backlog: 1)
            address = try #require(listener.localAddress)
        }
        // Nobody listens there any more: a blocking connect is refused at once.
        let client = try Socket(family: AddressFamily.ipv4, blocking: true)
        let error = #expect(throws: SystemError.self) { _ = try client.connect(address) }
        #expect(error?.errno == ECONNREFUSED)
    }

    @Test func aDuplicateKeepsTheFileOpen() throws {
        let (r, w) = try pipe()
        defer { closeDescriptor(w) }
        let d = Descriptor(owning: r)
        let copy = try d.duplicate()
        #expect(copy.rawValue != r)
        d.close()
        #expect(!readEndClosed(w))
        copy.close()
        #expect(readEndClosed(w))
    }
}
