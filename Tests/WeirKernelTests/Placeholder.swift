import Testing
@Test func kernelPlaceholder() { #expect(Bool(true)) }
