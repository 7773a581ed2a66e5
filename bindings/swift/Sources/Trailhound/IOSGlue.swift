// Forwards iOS device state and app lifecycle into the core, and schedules a background
// flush. Thin on purpose: what a low battery or a cellular link means is decided in Rust.
// NOT COMPILED ON THE PROJECT'S MACHINES (no Swift toolchain): see bindings/README.md.
#if canImport(UIKit)
import BackgroundTasks
import Foundation
import Network
import TrailhoundFFI
import UIKit

public final class IOSGlue {
    /// Register this identifier under BGTaskSchedulerPermittedIdentifiers in Info.plist.
    public static let refreshTaskId = "dev.trailhound.flush"

    private let trailhound: Trailhound
    private let monitor = NWPathMonitor()
    private let queue = DispatchQueue(label: "dev.trailhound.glue")
    private var observers: [NSObjectProtocol] = []
    private var network: Network = .unknown
    private var metered = false

    public init(_ trailhound: Trailhound) { self.trailhound = trailhound }

    /// Call from `application(_:didFinishLaunchingWithOptions:)`, before it returns
    /// (BGTaskScheduler requires registration during launch).
    public func start() {
        UIDevice.current.isBatteryMonitoringEnabled = true
        let nc = NotificationCenter.default
        for name in [UIDevice.batteryLevelDidChangeNotification,
                     UIDevice.batteryStateDidChangeNotification,
                     Notification.Name.NSProcessInfoPowerStateDidChange] {
            observers.append(nc.addObserver(forName: name, object: nil, queue: nil) { [weak self] _ in
                self?.queue.async { self?.push() }
            })
        }
        observers.append(nc.addObserver(forName: UIApplication.didEnterBackgroundNotification, object: nil, queue: nil) { [weak self] _ in
            try? self?.trailhound.appBackgrounded()
            self?.scheduleRefresh()
        })
        observers.append(nc.addObserver(forName: UIApplication.willEnterForegroundNotification, object: nil, queue: nil) { [weak self] _ in
            try? self?.trailhound.appForegrounded()
        })
        monitor.pathUpdateHandler = { [weak self] path in
            guard let self = self else { return }
            if path.status != .satisfied {
                self.network = .offline
            } else if path.usesInterfaceType(.wifi) {
                self.network = .wifi
            } else if path.usesInterfaceType(.cellular) {
                self.network = .cellular
            } else if path.usesInterfaceType(.wiredEthernet) {
                self.network = .ethernet
            } else {
                self.network = .unknown
            }
            self.metered = path.isExpensive || path.isConstrained
            self.push()
        }
        monitor.start(queue: queue)
        BGTaskScheduler.shared.register(forTaskWithIdentifier: Self.refreshTaskId, using: nil) { [weak self] task in
            self?.runRefresh(task as! BGAppRefreshTask)
        }
        queue.async { self.push() }
    }

    private func push() {
        let device = UIDevice.current
        let level = device.batteryLevel  // -1 when unknown (simulator)
        let charging: Bool?
        switch device.batteryState {
        case .charging, .full: charging = true
        case .unplugged: charging = false
        default: charging = nil
        }
        try? trailhound.setDeviceConditions(DeviceConditions(
            batteryLevel: level < 0 ? nil : level,
            charging: charging,
            lowPowerMode: ProcessInfo.processInfo.isLowPowerModeEnabled,
            network: network,
            metered: metered))
    }

    private func scheduleRefresh() {
        let req = BGAppRefreshTaskRequest(identifier: Self.refreshTaskId)
        req.earliestBeginDate = Date(timeIntervalSinceNow: 15 * 60)
        try? BGTaskScheduler.shared.submit(req)
    }

    private func runRefresh(_ task: BGAppRefreshTask) {
        scheduleRefresh()
        let work = DispatchWorkItem { [trailhound] in
            let ok = (try? trailhound.flushBlocking(timeout: 25)) != nil
            task.setTaskCompleted(success: ok)
        }
        task.expirationHandler = { work.cancel() }
        DispatchQueue.global(qos: .utility).async(execute: work)
    }

    deinit {
        monitor.cancel()
        observers.forEach { NotificationCenter.default.removeObserver($0) }
    }
}
#endif
