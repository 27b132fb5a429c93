// swift-tools-version:6.0
// weir: node-level traffic capture (nftables over netlink), sysctl tuning and an in-process transparent proxy.
// Licensed GPL-2.0-or-later because it links libnftnl.
import Foundation
import PackageDescription

// `weir --version` and weir_build_info: the VERSION file, and the commit `make` passes as WEIR_COMMIT.
let version = Context.environment["WEIR_VERSION"]
    ?? (try? String(contentsOfFile: Context.packageDirectory + "/VERSION", encoding: .utf8))?
        .trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown"
let commit = Context.environment["WEIR_COMMIT"] ?? "unknown"
func cString(_ s: String) -> String {
    "\"" + s.filter { $0.isLetter || $0.isNumber || ".-_+~".contains($0) } + "\""
}

// Code off the data path (the command line, the agent's control loop, netlink, tuning, and WeirCore's parsers and
// renderers) is optimised for size. The proxy's workers keep -O, and so do the few WeirCore functions they call per
// event (the connection state machine, the histogram slot), marked @_optimize(speed).
let coldPath: [SwiftSetting] = [.unsafeFlags(["-Osize"], .when(configuration: .release))]

// The order of the functions in the release binary's code (see the weir target).
let symbolOrder = Context.packageDirectory + "/Sources/weir/symbol-order.txt"

let package = Package(
    name: "weir",
    products: [
        .executable(name: "weir", targets: ["weir"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // libnftnl + libmnl, from Debian's -dev packages (conntrack statistics are read over ctnetlink with libmnl).
        .systemLibrary(
            name: "CNetfilter",
            pkgConfig: "libnftnl",
            providers: [.apt(["libnftnl-dev", "libmnl-dev"])]
        ),
        // libnetfilter_conntrack: the proxy's per-connection conntrack delete and the start-up clean-up of the
        // predecessor's upstream entries, through nfct_query (WeirSystem's Conntrack).
        .systemLibrary(
            name: "CConntrack",
            pkgConfig: "libnetfilter_conntrack",
            providers: [.apt(["libnetfilter-conntrack-dev"])]
        ),
        // Syscalls and constants Glibc does not expose to Swift (epoll, splice, SO_ORIGINAL_DST, ...).
        .target(name: "CWeirLinux", cSettings: [
            .define("_GNU_SOURCE"), .define("WEIR_VERSION", to: cString(version)),
            .define("WEIR_COMMIT", to: cString(commit)),
        ]),
        // The one place Swift meets Glibc for errno names, socket addresses and threads.
        .target(name: "WeirSystem", dependencies: ["CWeirLinux", "CConntrack"], swiftSettings: coldPath),
        // Pure model: no Glibc, no C, no syscalls.
        .target(name: "WeirCore", swiftSettings: coldPath),
        .target(name: "WeirNetfilter", dependencies: ["WeirCore", "WeirSystem", "CNetfilter"],
                swiftSettings: coldPath),
        .target(name: "WeirTuning", dependencies: ["WeirCore", "WeirSystem"], swiftSettings: coldPath),
        .target(name: "WeirProxy", dependencies: ["WeirCore", "WeirSystem"]),
        // `weir run`: capture + tuning + proxy as one node service, admin HTTP, sd_notify.
        .target(name: "WeirAgent", dependencies: ["WeirCore", "WeirNetfilter", "WeirTuning", "WeirProxy", "WeirSystem"],
                swiftSettings: coldPath),
        .executableTarget(
            name: "weir",
            dependencies: [
                "WeirCore", "WeirNetfilter", "WeirTuning", "WeirProxy", "WeirAgent", "WeirSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // The layout of the release link (below): symbol-order.txt, written by `make symbol-order`.
            exclude: ["symbol-order.txt"],
            swiftSettings: coldPath,
            // lld (shipped with the Swift toolchain) packs the ~38,000 relative relocations of a PIE with the Swift
            // runtime linked in into 7 KiB of DT_RELR instead of 900 KiB of RELA that every start reads: faster start
            // and about 0.8 MB less resident memory (glibc >= 2.36 understands RELR).
            // The release binary exports no symbols: SwiftPM links executables with --export-dynamic (so tests can
            // link against them), which put 3,300 public symbols of weir's own modules into a dynamic symbol table
            // nothing looks up (270 KB of the binary).
            // The release link lays out first the functions `weir proxy` and `weir run` execute, in the order of
            // symbol-order.txt (scripts/symbol-order.sh): the code they touch then fills few contiguous pages instead
            // of 64 KiB fault-around windows all over the binary. Names lld does not find are skipped, so a stale
            // list only loses effect.
            linkerSettings: [
                .unsafeFlags(["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs", "-Xlinker", "--icf=all"]),
                .unsafeFlags(["-Xlinker", "--no-export-dynamic", "-Xlinker", "--symbol-ordering-file=" + symbolOrder,
                              "-Xlinker", "--no-warn-symbol-ordering"], .when(configuration: .release)),
            ]
        ),
        // Scenario table shared by the golden-text tests and the kernel tests.
        .target(name: "WeirTestSupport", dependencies: ["WeirCore"], path: "Tests/WeirTestSupport"),
        .testTarget(name: "WeirCoreTests", dependencies: ["WeirCore", "WeirTestSupport"], exclude: ["Golden"]),
        // In-memory nftables and routing backends for the agent's tests; never part of the binary.
        .target(name: "WeirNetfilterFakes", dependencies: ["WeirCore", "WeirNetfilter"], path: "Tests/WeirNetfilterFakes"),
        .testTarget(name: "WeirAgentTests", dependencies: ["WeirAgent", "WeirCore", "WeirNetfilter", "WeirNetfilterFakes"]),
        .testTarget(name: "WeirKernelTests", dependencies: ["WeirCore", "WeirTestSupport", "WeirNetfilter", "CWeirLinux"],
                    exclude: ["Support/probe.py", "Support/dns.py", "Support/freeze_workers.py"]),
        .testTarget(name: "WeirTuningTests", dependencies: ["WeirCore", "WeirTuning", "WeirTestSupport"]),
        // WeirSystem without root: sockets, poller and descriptors over loopback in the test's own namespace; the
        // netlink codec on bytes.
        .testTarget(name: "WeirSystemTests", dependencies: ["WeirSystem"]),
    ],
    swiftLanguageModes: [.v5]
)
