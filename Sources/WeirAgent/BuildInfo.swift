import CWeirLinux

/// Version and git commit of this build, as `weir --version` prints them and `weir_build_info` labels them.
public enum BuildInfo {
    public static let version = String(cString: weir_build_version())
    public static let commit = String(cString: weir_build_commit())
    public static var line: String { "weir \(version) (commit \(commit))" }
}
