// Written for `swift test` on a Mac; never run on the project's machines.
import XCTest
@testable import Trailhound
import TrailhoundFFI

final class ValuesTests: XCTestCase {
    func testRoundTripKeepsKinds() throws {
        let v = try Values.toMap(["title": "Nachtmusik", "seconds": 215, "ratio": 0.5,
                                  "live": true, "nothing": nil, "tags": ["a", 1]], path: "properties")
        XCTAssertEqual(v["seconds"], .int(v: 215))
        XCTAssertEqual(v["ratio"], .double(v: 0.5))
        XCTAssertEqual(v["live"], .bool(v: true))
        XCTAssertEqual(v["nothing"], .null)
        XCTAssertEqual(v["tags"], .array(v: [.text(v: "a"), .int(v: 1)]))
    }

    func testUnsupportedValueThrowsWithPath() {
        XCTAssertThrowsError(try Values.toMap(["when": Date()], path: "properties")) { error in
            XCTAssertTrue("\(error)".hasPrefix("properties.when"))
        }
    }
}
