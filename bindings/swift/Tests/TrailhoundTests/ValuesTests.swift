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

final class SecurityTests: XCTestCase {
    let key = "sekrit-write-key-4711"

    func testWrapperConfigStringFormsHaveNoKey() {
        let c = TrailhoundConfig(writeKey: key, endpoint: "https://c.example", dataDir: "/d")
        var dumped = ""
        dump(c, to: &dumped)
        for text in [c.description, c.debugDescription, "\(c)", String(reflecting: c), dumped] {
            XCTAssertFalse(text.contains("sekrit"), text)
        }
        XCTAssertEqual(c.writeKey, key)
    }

    func testGeneratedConfigDescriptionIsRustsRedactedDisplay() {
        let c = Config(writeKey: key, endpoint: "https://c.example", dataDir: "/d",
                       policy: nil, context: nil, conditions: nil, jitterSeed: nil)
        for text in [c.description, c.debugDescription, "\(c)"] {
            XCTAssertFalse(text.contains("sekrit"), text)
            XCTAssertTrue(text.contains("https://c.example"), text)
        }
    }

    func testMillisNeverTraps() {
        XCTAssertEqual(ffiMillis(.nan), 0)
        XCTAssertEqual(ffiMillis(-1), 0)
        XCTAssertEqual(ffiMillis(.infinity), .max)
        XCTAssertEqual(ffiMillis(1e300), .max)
        XCTAssertEqual(ffiMillis(1.5), 1500)
    }

    func testRedirectDelegateRefuses() {
        let url = URL(string: "https://c.example/v1/batch")!
        let response = HTTPURLResponse(url: url, statusCode: 308, httpVersion: "HTTP/1.1",
                                       headerFields: ["Location": "https://elsewhere.example/"])!
        let task = URLSession.shared.dataTask(with: url)
        var handed: URLRequest? = URLRequest(url: url)
        RefuseRedirects.shared.urlSession(URLSession.shared, task: task, willPerformHTTPRedirection: response,
                                          newRequest: URLRequest(url: URL(string: "https://elsewhere.example/")!),
                                          completionHandler: { handed = $0 })
        XCTAssertNil(handed)
    }
}
