import WeirCore
import WeirSystem

/// Why the CNI plugin could not get an answer from the agent.
public enum PodClientError: Error, CustomStringConvertible {
    /// No agent listens at the socket (missing, refused): the agent is not running.
    case unreachable(String)
    /// Anything else: the namespace cannot be opened, a timeout, a malformed reply.
    case failed(String)

    public var description: String {
        switch self {
        case .unreachable(let m), .failed(let m): m
        }
    }
}

/// The plugin's side of `<run-dir>/cni.sock`: one request, one reply (see `PodWire`).
public enum PodClient {
    /// Sends `request` to the agent at `socket` and waits at most `timeoutMs` for the reply. For `.add` it opens
    /// `request.netns` and passes the descriptor, so the agent holds the very namespace the runtime named.
    public static func send(_ request: PodRequest, socket: String, timeoutMs: Int) throws -> PodReply {
        var namespace: NetworkNamespace.Handle?
        if request.operation == .add {
            do {
                namespace = try NetworkNamespace.Handle(path: request.netns)
            } catch {
                throw PodClientError.failed("CNI_NETNS \(quotedValue(request.netns)): \(error)")
            }
        }
        let connection: Descriptor
        do {
            connection = try UnixSeqpacket.connect(to: socket, timeoutMs: timeoutMs)
        } catch let e as SystemError {
            let why = "weir agent at \(socket) is not reachable (\(errnoName(e.errno))): is weir run --pod-mode running?"
            if e.errno == Errno.ENOENT || e.errno == Errno.ECONNREFUSED { throw PodClientError.unreachable(why) }
            throw PodClientError.failed(why)
        }
        do {
            try UnixSeqpacket.send(request.encoded, descriptors: namespace.map { [$0.rawDescriptor] } ?? [],
                                   on: connection)
            let message = try UnixSeqpacket.receive(on: connection, limit: PodWire.maxMessage, maxDescriptors: 0)
            guard !message.bytes.isEmpty else {
                throw PodClientError.failed("weir agent at \(socket) closed the connection without a reply")
            }
            return try PodReply.decode(message.bytes)
        } catch let e as SystemError {
            let what = e.errno == Errno.EAGAIN ? "no reply within \(timeoutMs) ms" : "\(e)"
            throw PodClientError.failed("weir agent at \(socket): \(what)")
        } catch let e as PodWireError {
            throw PodClientError.failed("weir agent at \(socket): \(e)")
        }
    }
}
