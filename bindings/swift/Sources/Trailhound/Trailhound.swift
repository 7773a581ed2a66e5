// The idiomatic Swift API over the UniFFI-generated TrailhoundFFI module.
// NOT COMPILED ON THE PROJECT'S MACHINES (no Swift toolchain): see bindings/README.md.
//
//     Trailhound.setup(TrailhoundConfig(writeKey: "KEY", endpoint: "https://collector.example.com",
//                                       dataDir: appSupport.path))
//     Trailhound.shared.track("Song Played", properties: ["title": "Nachtmusik", "seconds": 215])
import Foundation
import TrailhoundFFI

/// A property value that has no JSON form (a Date, a custom object, NaN), with its path.
public struct TrailhoundValueError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}

/// Converts `[String: Any]` and its nested values to the FFI's `Value`.
public enum Values {
    public static func toValue(_ x: Any?, path: String) throws -> Value {
        guard let x = x else { return .null }
        switch x {
        case is NSNull: return .null
        // NSNumber first: Objective-C booleans and numbers arrive boxed, and only the
        // objCType tells a Bool from an integer from a double.
        case let n as NSNumber where !(x is String):
            if CFGetTypeID(n) == CFBooleanGetTypeID() { return .bool(v: n.boolValue) }
            switch String(cString: n.objCType) {
            case "f", "d":
                let d = n.doubleValue
                guard d.isFinite else { throw TrailhoundValueError(path: path, reason: "\(d) is not a finite number") }
                return .double(v: d)
            case "Q":
                guard n.uint64Value <= UInt64(Int64.max) else {
                    throw TrailhoundValueError(path: path, reason: "\(n) does not fit in 64 bits")
                }
                return .int(v: n.int64Value)
            default: return .int(v: n.int64Value)
            }
        case let s as String: return .text(v: s)
        case let m as [String: Any?]: return .object(v: try toMap(m, path: path))
        case let m as [AnyHashable: Any?]:
            var out: [String: Any?] = [:]
            for (k, v) in m {
                guard let key = k.base as? String else {
                    throw TrailhoundValueError(path: path, reason: "key \(k) is not a String")
                }
                out[key] = v
            }
            return .object(v: try toMap(out, path: path))
        case let a as [Any?]:
            return .array(v: try a.enumerated().map { try toValue($0.element, path: "\(path)[\($0.offset)]") })
        default:
            throw TrailhoundValueError(path: path, reason: "unsupported type \(type(of: x))")
        }
    }

    public static func toMap(_ m: [String: Any?], path: String) throws -> [String: Value] {
        var out: [String: Value] = [:]
        for (k, v) in m { out[k] = try toValue(v, path: "\(path).\(k)") }
        return out
    }

    public static func fromValue(_ v: Value) -> Any? {
        switch v {
        case .null: return nil
        case .bool(let b): return b
        case .int(let i): return i
        case .double(let d): return d
        case .text(let s): return s
        case .array(let a): return a.map { fromValue($0) }
        case .object(let o): return o.mapValues { fromValue($0) }
        }
    }
}

/// Start-up settings; no UIKit objects (IOSGlue forwards device state separately).
public struct TrailhoundConfig {
    public var writeKey: String
    public var endpoint: String
    public var dataDir: String
    public var policy: PolicyOverrides? = nil
    public var context: ContextInfo? = nil
    /// The app's HTTP stack; required, as the iOS build leaves the Rust HTTP client out.
    public var transport: HttpTransport? = URLSessionTransport()
    public var plugins: [EventPlugin] = []
    public var listeners: [DeliveryListener] = []
    /// A tracking plan's JSON text (bundled with the app); at most one of `plan` and `planFile`.
    public var plan: String? = nil
    /// The path of a tracking plan file (`Bundle.main.path(forResource: "plan", ofType: "json")`).
    public var planFile: String? = nil
    /// What the plan does to an event that breaks it; `.report` when nil.
    public var planMode: PlanMode? = nil
    /// Endpoints to fall back on, in order, after `endpoint` (at most 3 with the default
    /// `maxEndpoints` of 4). Each endpoint has a circuit breaker: a batch that fails on one
    /// goes to the next at once; `stats().endpoints` has each one's state.
    public var fallbackEndpoints: [String] = []

    public init(writeKey: String, endpoint: String, dataDir: String) {
        self.writeKey = writeKey
        self.endpoint = endpoint
        self.dataDir = dataDir
    }
}

/// The write key stays out of every string form (`print`, `"\(config)"`, `debugPrint`,
/// `dump`), so that logging a config never logs the key.
extension TrailhoundConfig: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        "TrailhoundConfig(writeKey: <redacted>, endpoint: \(endpoint), dataDir: \(dataDir), "
            + "plan: \(plan == nil ? "nil" : "<set>"), planFile: \(planFile ?? "nil"), "
            + "planMode: \(planMode.map { "\($0)" } ?? "nil"), fallbackEndpoints: \(fallbackEndpoints))"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(self, children: ["writeKey": "<redacted>", "endpoint": endpoint, "dataDir": dataDir,
                                "policy": policy as Any, "context": context as Any,
                                "plan": plan == nil ? "nil" : "<set>", "planFile": planFile as Any,
                                "planMode": planMode as Any, "fallbackEndpoints": fallbackEndpoints],
               displayStyle: .struct)
    }
}

/// Seconds as FFI milliseconds without trapping (`Int64(x)` traps on NaN and overflow):
/// NaN or negative is 0, beyond 64 bits (or infinity) is the maximum, which Rust clamps
/// to its longest timeout.
func ffiMillis(_ seconds: TimeInterval) -> Int64 {
    let ms = seconds * 1000
    if ms.isNaN || ms <= 0 { return 0 }
    // Double(Int64.max) rounds up to 2^63, itself out of range: `>=` keeps Int64(ms) safe.
    if ms >= Double(Int64.max) { return .max }
    return Int64(ms)
}

public final class Trailhound {
    private static var instance: Trailhound?
    private static let lock = NSLock()

    /// The client started by `setup`.
    public static var shared: Trailhound {
        lock.lock(); defer { lock.unlock() }
        guard let i = instance else { preconditionFailure("call Trailhound.setup first") }
        return i
    }

    let client: TrailhoundClient

    init(client: TrailhoundClient) { self.client = client }

    /// Starts the app-wide client (in `application(_:didFinishLaunchingWithOptions:)`).
    @discardableResult
    public static func setup(_ config: TrailhoundConfig) throws -> Trailhound {
        let ffi = Config(writeKey: config.writeKey, endpoint: config.endpoint, dataDir: config.dataDir,
                         policy: config.policy, context: config.context, conditions: nil, jitterSeed: nil,
                         planJson: config.plan, planFile: config.planFile, planMode: config.planMode,
                         fallbackEndpoints: config.fallbackEndpoints)
        let t = Trailhound(client: try TrailhoundClient(config: ffi, transport: config.transport,
                                                       plugins: config.plugins, listeners: config.listeners))
        lock.lock(); instance = t; lock.unlock()
        return t
    }

    public func track(_ event: String, properties: [String: Any?] = [:]) throws {
        try client.track(event: event, properties: Values.toMap(properties, path: "properties"))
    }

    public func identify(_ userId: String?, traits: [String: Any?] = [:]) throws {
        try client.identify(userId: userId, traits: Values.toMap(traits, path: "traits"))
    }

    public func screen(_ name: String, properties: [String: Any?] = [:]) throws {
        try client.screen(name: name, properties: Values.toMap(properties, path: "properties"))
    }

    public func page(_ name: String, properties: [String: Any?] = [:]) throws {
        try client.page(name: name, properties: Values.toMap(properties, path: "properties"))
    }

    public func group(_ groupId: String, traits: [String: Any?] = [:]) throws {
        try client.group(groupId: groupId, traits: Values.toMap(traits, path: "traits"))
    }

    public func alias(_ newUserId: String) throws { try client.alias(newUserId: newUserId) }
    public func flush() throws { try client.flush() }
    /// Blocks; never call it on the main thread.
    public func flushBlocking(timeout: TimeInterval = 5) throws -> Stats {
        try client.flushBlocking(timeoutMs: ffiMillis(timeout))
    }
    public func reset() throws { try client.reset() }
    public func optOut() throws { try client.optOut() }
    public func optIn() throws { try client.optIn() }
    public var isOptedOut: Bool { client.isOptedOut() }
    public func setDeviceConditions(_ c: DeviceConditions) throws { try client.setDeviceConditions(conditions: c) }
    public func appForegrounded() throws { try client.appForegrounded() }
    public func appBackgrounded() throws { try client.appBackgrounded() }
    public var anonymousId: String { client.anonymousId() }
    public var userId: String? { client.userId() }
    public func stats() -> Stats { client.stats() }
    public func shutdown(timeout: TimeInterval = 2) throws { try client.shutdown(timeoutMs: ffiMillis(timeout)) }
}

/// Refuses every HTTP redirect: the task completes with the 3xx response itself, which the
/// core takes for a misconfigured endpoint (uploads pause; nothing is marked delivered).
/// Following one would send the write key and the events wherever `Location` points.
final class RefuseRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
    static let shared = RefuseRedirects()

    // `@Sendable` as in the iOS 18 / macOS 15 SDKs; a signature that does not match the
    // protocol's would silently never be called (the method is optional).
    func urlSession(_ session: URLSession, task: URLSessionTask,
                    willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest,
                    completionHandler: @escaping @Sendable (URLRequest?) -> Void) {
        completionHandler(nil)
    }
}

/// Uploads through URLSession, so the app's proxy settings, ATS and pinning delegate
/// apply. Called on the SDK's upload thread, which may block. Never follows a redirect:
/// every task gets `RefuseRedirects` as its own delegate (iOS 15+, macOS 12+), which is
/// asked before the session's, so this holds for `.shared` and for an app's session too.
public final class URLSessionTransport: HttpTransport, @unchecked Sendable {
    private let session: URLSession

    /// A session of its own, with `configuration` (proxies, timeouts) and redirects refused.
    public init(configuration: URLSessionConfiguration = .default) {
        self.session = URLSession(configuration: configuration, delegate: RefuseRedirects.shared,
                                  delegateQueue: nil)
    }

    /// The app's session (certificate pinning in its delegate); redirects are refused per task.
    public init(session: URLSession) { self.session = session }

    public func send(request: HttpRequest) throws -> HttpResponse {
        guard let url = URL(string: request.url) else {
            throw TrailhoundError.Callback(detail: "bad URL \(request.url)")
        }
        var req = URLRequest(url: url)
        req.httpMethod = "POST"
        req.httpBody = request.body
        for (k, v) in request.headers { req.setValue(v, forHTTPHeaderField: k) }
        let done = DispatchSemaphore(value: 0)
        var result: Result<HttpResponse, Error> = .failure(TrailhoundError.Callback(detail: "no response"))
        let task = session.dataTask(with: req) { _, response, error in
            if let error = error {
                result = .failure(TrailhoundError.Callback(detail: error.localizedDescription))
            } else if let http = response as? HTTPURLResponse {
                // With the redirect refused, a 3xx arrives here as the answer.
                result = .success(HttpResponse(status: Int32(clamping: http.statusCode),
                                               retryAfter: http.value(forHTTPHeaderField: "Retry-After")))
            }
            done.signal()
        }
        task.delegate = RefuseRedirects.shared
        task.resume()
        done.wait()
        return try result.get()
    }
}
