// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Chorus",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "ChorusSampling", targets: ["ChorusSampling"]),
        .library(name: "ChorusModel", targets: ["ChorusModel"]),
        .library(name: "ChorusTransport", targets: ["ChorusTransport"]),
        .executable(name: "chorus", targets: ["chorus"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2")
    ],
    targets: [
        .target(name: "ChorusSampling"),
        .systemLibrary(name: "CBLAS"),
        .target(name: "ChorusModel", dependencies: ["ChorusSampling", "CBLAS"]),
        .systemLibrary(name: "CNNG"),
        .target(name: "ChorusTransport", dependencies: ["CNNG"]),
        .executableTarget(
            name: "chorus",
            dependencies: [
                "ChorusSampling",
                "ChorusModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "ChorusSamplingTests", dependencies: ["ChorusSampling"]),
        .testTarget(name: "ChorusModelTests", dependencies: ["ChorusModel"]),
        .testTarget(name: "ChorusTransportTests", dependencies: ["ChorusTransport"]),
    ],
    swiftLanguageModes: [.v6]
)
