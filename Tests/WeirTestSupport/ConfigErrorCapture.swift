import WeirCore

/// The message of the `ConfigError` that `body` throws, nil if it throws nothing, or `unexpected ...` for another
/// error.
public func configError(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch let error as ConfigError {
        return error.message
    } catch {
        return "unexpected \(error)"
    }
}
