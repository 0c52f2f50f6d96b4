// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Chorus",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "ChorusSampling", targets: ["ChorusSampling"]),
        .executable(name: "chorus", targets: ["chorus"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2")
    ],
    targets: [
        .target(name: "ChorusSampling"),
        .executableTarget(
            name: "chorus",
            dependencies: [
                "ChorusSampling",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "ChorusSamplingTests", dependencies: ["ChorusSampling"]),
    ],
    swiftLanguageModes: [.v6]
)
