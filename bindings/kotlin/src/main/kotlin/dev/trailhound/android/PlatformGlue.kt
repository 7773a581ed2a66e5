package dev.trailhound.android

import dev.trailhound.Trailhound
import dev.trailhound.ffi.DeviceConditions
import dev.trailhound.ffi.Network
import dev.trailhound.ffi.TrailhoundException
import java.util.logging.Level
import java.util.logging.Logger
import kotlin.time.Duration
import kotlin.time.Duration.Companion.minutes
import kotlin.time.Duration.Companion.seconds

// The platform seams. Plain Kotlin, no Android types: the JVM tests drive them with fakes,
// and the Android implementations (BatteryManager, ConnectivityManager.NetworkCallback,
// ProcessLifecycleOwner, WorkManager) live in bindings/kotlin/android/, built by Gradle.
// Every decision (what a low battery or a metered network means) stays in Rust.

/** Battery level (0..1, null if unknown), charging, and battery-saver mode. */
data class PowerState(val batteryLevel: Float?, val charging: Boolean?, val powerSave: Boolean)

/** The current network, and whether it is metered. */
data class Connectivity(val network: Network, val metered: Boolean)

fun interface PowerSource {
    /** Calls [onChange] with the current state now and on every change, until closed. */
    fun observe(onChange: (PowerState) -> Unit): AutoCloseable
}

fun interface ConnectivitySource {
    /** Calls [onChange] with the current network now and on every change, until closed. */
    fun observe(onChange: (Connectivity) -> Unit): AutoCloseable
}

interface LifecycleSource {
    /** Calls back when the whole app (not one activity) comes to or leaves the foreground. */
    fun observe(onForeground: () -> Unit, onBackground: () -> Unit): AutoCloseable
}

interface FlushScheduler {
    /**
     * Runs [work] about every [interval] while the app is not running in the foreground,
     * when the network is up (Android: a unique periodic WorkManager job).
     */
    fun schedule(interval: Duration, work: () -> Unit)

    fun cancel()
}

/**
 * Forwards device state and lifecycle into the core and keeps a background flush
 * scheduled. Observer callbacks come from the OS: a failure in them (the client was
 * shut down) is logged, never thrown back into the platform.
 */
class PlatformGlue(
    private val trailhound: Trailhound,
    private val power: PowerSource,
    private val connectivity: ConnectivitySource,
    private val lifecycle: LifecycleSource,
    private val scheduler: FlushScheduler,
    private val flushInterval: Duration = 15.minutes,
) : AutoCloseable {
    private val log = Logger.getLogger("Trailhound")
    private val subscriptions = mutableListOf<AutoCloseable>()
    private var powerState = PowerState(null, null, false)
    private var connectivityState = Connectivity(Network.UNKNOWN, false)

    fun start(): PlatformGlue = apply {
        subscriptions += power.observe { synchronized(this) { powerState = it; push() } }
        subscriptions += connectivity.observe { synchronized(this) { connectivityState = it; push() } }
        subscriptions += lifecycle.observe(
            onForeground = { forward { trailhound.appForegrounded() } },
            onBackground = { forward { trailhound.appBackgrounded() } },
        )
        // Android's minimum periodic interval is 15 minutes, the core's max_delay default.
        scheduler.schedule(flushInterval) { forward { trailhound.flushBlocking(30.seconds) } }
    }

    private fun push() = forward {
        trailhound.setDeviceConditions(
            DeviceConditions(
                batteryLevel = powerState.batteryLevel,
                charging = powerState.charging,
                lowPowerMode = powerState.powerSave,
                network = connectivityState.network,
                metered = connectivityState.metered,
            ),
        )
    }

    private inline fun forward(call: () -> Unit) {
        try {
            call()
        } catch (e: TrailhoundException) {
            log.log(Level.WARNING, "Trailhound: could not forward a platform change", e)
        }
    }

    override fun close() {
        scheduler.cancel()
        subscriptions.forEach { it.close() }
        subscriptions.clear()
    }
}
