// swift-tools-version:5.9
// NOT BUILT ON THE PROJECT'S MACHINES (no Swift toolchain there): check on a Mac with
// `./build-xcframework.sh && swift build` and `xcodebuild test`. See bindings/README.md.
//
// Layout after build-xcframework.sh:
//   TrailhoundFFI.xcframework      the static library per platform + the C header/modulemap
//   Sources/TrailhoundFFI/         the UniFFI-generated Swift (TrailhoundFFI.swift)
//   Sources/Trailhound/            the idiomatic wrapper and the iOS glue (hand-written)
import PackageDescription

let package = Package(
    name: "Trailhound",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Trailhound", targets: ["Trailhound"]),
    ],
    targets: [
        .binaryTarget(name: "trailhound_ffiFFI", path: "TrailhoundFFI.xcframework"),
        .target(name: "TrailhoundFFI", dependencies: ["trailhound_ffiFFI"], path: "Sources/TrailhoundFFI"),
        .target(name: "Trailhound", dependencies: ["TrailhoundFFI"], path: "Sources/Trailhound"),
        .testTarget(name: "TrailhoundTests", dependencies: ["Trailhound"], path: "Tests/TrailhoundTests"),
    ]
)
