// Compiled into every fuzz harness (see scripts/fuzz.sh): how the harnesses read libFuzzer's bytes.

/// The fuzz input as records: split on 0xFF, a byte that never occurs in UTF-8 text, so every text can be a record.
func fuzzRecords(_ data: UnsafePointer<UInt8>, _ size: Int) -> [ArraySlice<UInt8>] {
    Array(UnsafeBufferPointer(start: data, count: size)).split(separator: 0xff, omittingEmptySubsequences: false)
}

func fuzzBytes(_ data: UnsafePointer<UInt8>, _ size: Int) -> [UInt8] {
    Array(UnsafeBufferPointer(start: data, count: size))
}

/// Text as weir reads files and arguments: invalid UTF-8 becomes U+FFFD.
func fuzzText<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    String(decoding: bytes, as: UTF8.self)
}

/// A property every accepted input must have; a failure is a crash libFuzzer keeps.
func fuzzCheck(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("fuzz check failed: \(message())") }
}
