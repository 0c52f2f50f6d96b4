// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Chorus",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "ChorusSampling", targets: ["ChorusSampling"]),
        .library(name: "ChorusCrypto", targets: ["ChorusCrypto"]),
        .library(name: "ChorusModel", targets: ["ChorusModel"]),
        .library(name: "ChorusWire", targets: ["ChorusWire"]),
        .library(name: "ChorusTransport", targets: ["ChorusTransport"]),
        .library(name: "ChorusCluster", targets: ["ChorusCluster"]),
        .executable(name: "chorus", targets: ["chorus"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // The HTTP face of the coordinator (ChorusServer). Hummingbird without its default traits: no
        // swift-configuration (nothing here reads it), FoundationEssentials for its URL form coding.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // `chorus bench serve`'s latency percentiles.
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // Pure → effectful (DESIGN.md "Modules").
        .target(name: "ChorusSampling"),
        // SHA-256 and HMAC-SHA256 (model and vocabulary hashes; the cluster key's message tags). No I/O.
        .target(name: "ChorusCrypto"),
        .systemLibrary(name: "CBLAS"),
        // The engine's kernels (one C file per family of tensor types), optimised even in debug builds:
        // tests run real models through them. No floating-point contraction: a row's arithmetic is fixed.
        .target(
            name: "CChorusEngine",
            cSettings: [.unsafeFlags(["-O2", "-ffp-contract=off"])]),
        .target(name: "ChorusModel", dependencies: ["ChorusSampling", "ChorusCrypto", "CBLAS", "CChorusEngine"]),
        .target(name: "ChorusWire", dependencies: ["ChorusSampling"]),
        .systemLibrary(name: "CNNG"),
        .target(name: "ChorusTransport", dependencies: ["CNNG", "ChorusCrypto"]),
        .target(
            name: "ChorusCluster",
            dependencies: [
                "ChorusSampling", "ChorusCrypto", "ChorusModel", "ChorusWire", "ChorusTransport",
                .product(name: "Yams", package: "Yams"),
            ]),
        // HTTP (OpenAI-compatible completions and chat, SSE), Prometheus /metrics, the live status page.
        .target(
            name: "ChorusServer",
            dependencies: [
                "ChorusCluster", "ChorusModel", "ChorusWire",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        // `chorus bench`: sweep plan, runner, local worker pool, statistics, SVG charts and reports.
        // `bench serve`: an HTTP/SSE load generator with HdrHistogram percentiles.
        .target(
            name: "ChorusBench",
            dependencies: ["ChorusCluster", .product(name: "Histogram", package: "hdrhistogram-swift")]),
        // A user-space TCP proxy adding one-way latency (emulated multi-host links).
        .target(name: "ChorusDelayProxy"),
        .executableTarget(
            name: "chorus",
            dependencies: [
                "ChorusBench",
                "ChorusDelayProxy",
                "ChorusSampling",
                "ChorusModel",
                "ChorusCluster",
                "ChorusServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Helpers shared by the test targets (paths, bounded waits, raw sockets, reference decoding).
        .target(
            name: "ChorusTestSupport", dependencies: ["ChorusModel", "ChorusSampling"], path: "Tests/ChorusTestSupport"),
        .testTarget(name: "ChorusCryptoTests", dependencies: ["ChorusCrypto"]),
        .testTarget(name: "ChorusSamplingTests", dependencies: ["ChorusSampling", "ChorusTestSupport"]),
        .testTarget(
            name: "ChorusModelTests", dependencies: ["ChorusModel", "CChorusEngine"], exclude: ["Fixtures"]),
        .testTarget(name: "ChorusWireTests", dependencies: ["ChorusWire"]),
        .testTarget(name: "ChorusTransportTests", dependencies: ["ChorusTransport", "ChorusTestSupport"]),
        .testTarget(name: "ChorusClusterTests", dependencies: ["ChorusCluster", "ChorusTestSupport"]),
        .testTarget(
            name: "ChorusServerTests",
            dependencies: [
                "ChorusServer", "ChorusCluster", "ChorusModel", "ChorusSampling", "ChorusTransport",
                "ChorusTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .testTarget(name: "ChorusBenchTests", dependencies: ["ChorusBench", "ChorusTestSupport"]),
        .testTarget(name: "ChorusDelayProxyTests", dependencies: ["ChorusDelayProxy", "ChorusTestSupport"]),
        .testTarget(name: "ChorusCLITests", dependencies: ["chorus", "ChorusTestSupport"]),
        // Separate processes (and network namespaces, TLS) with the real binary and shipped models.
        .testTarget(
            name: "ChorusE2ETests", dependencies: ["chorus", "ChorusTransport", "ChorusWire", "ChorusTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
