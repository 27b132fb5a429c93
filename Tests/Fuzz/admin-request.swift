// libFuzzer harness: the admin endpoint's request parsing (AdminRequest.parse), fed as the server feeds it: after
// each read of up to 2048 bytes, until it is answered.
//
// Input: the bytes a client sends.
@testable import WeirCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAdminRequest(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = fuzzBytes(data, size)
    let limit = 8192
    var received = 0
    while received < bytes.count {
        received = min(received + 2048, bytes.count)
        let result = AdminRequest.parse(Array(bytes[..<received]), maxBytes: limit)
        if case .get(let path, _) = result {
            fuzzCheck(!path.contains("?") && !path.contains(" "), "path '\(path)' keeps a query or a space")
        }
        if result != .incomplete { return 0 }
    }
    fuzzCheck(received < limit, "\(received) bytes without an answer")
    return 0
}
