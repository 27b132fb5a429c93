import WeirSystem

/// Version and git commit of this build, as `weir --version` prints them and `weir_build_info` labels them.
public enum BuildInfo {
    public static let version = BuildStamp.version
    public static let commit = BuildStamp.commit
    public static var line: String { "weir \(version) (commit \(commit))" }
}
