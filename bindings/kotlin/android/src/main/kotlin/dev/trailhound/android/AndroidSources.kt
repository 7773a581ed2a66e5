// NOT COMPILED ON THE PROJECT'S MACHINES (no Android SDK): built by build.gradle.kts.
// Android implementations of the seams in PlatformGlue.kt, which the JVM tests cover.
package dev.trailhound.android

import android.content.BroadcastReceiver
import android.content.Context
import android.content.Intent
import android.content.IntentFilter
import android.net.ConnectivityManager
import android.net.Network as AndroidNetwork
import android.net.NetworkCapabilities
import android.os.BatteryManager
import android.os.Build
import android.os.PowerManager
import androidx.lifecycle.DefaultLifecycleObserver
import androidx.lifecycle.LifecycleOwner
import androidx.lifecycle.ProcessLifecycleOwner
import androidx.work.Constraints
import androidx.work.ExistingPeriodicWorkPolicy
import androidx.work.NetworkType
import androidx.work.PeriodicWorkRequestBuilder
import androidx.work.WorkManager
import androidx.work.Worker
import androidx.work.WorkerParameters
import dev.trailhound.Trailhound
import dev.trailhound.TrailhoundConfig
import dev.trailhound.UrlConnectionTransport
import dev.trailhound.ffi.ContextInfo
import dev.trailhound.ffi.Network
import java.util.concurrent.TimeUnit
import kotlin.time.Duration

class BatteryPowerSource(private val context: Context) : PowerSource {
    override fun observe(onChange: (PowerState) -> Unit): AutoCloseable {
        val power = context.getSystemService(PowerManager::class.java)
        fun read(battery: Intent?) {
            val level = battery?.getIntExtra(BatteryManager.EXTRA_LEVEL, -1) ?: -1
            val scale = battery?.getIntExtra(BatteryManager.EXTRA_SCALE, -1) ?: -1
            val status = battery?.getIntExtra(BatteryManager.EXTRA_STATUS, -1) ?: -1
            onChange(
                PowerState(
                    batteryLevel = if (level >= 0 && scale > 0) level.toFloat() / scale else null,
                    charging = if (status < 0) null else status == BatteryManager.BATTERY_STATUS_CHARGING ||
                        status == BatteryManager.BATTERY_STATUS_FULL,
                    powerSave = power.isPowerSaveMode,
                ),
            )
        }
        val receiver = object : BroadcastReceiver() {
            override fun onReceive(c: Context, intent: Intent) =
                read(if (intent.action == Intent.ACTION_BATTERY_CHANGED) intent else c.registerReceiver(null, IntentFilter(Intent.ACTION_BATTERY_CHANGED)))
        }
        val filter = IntentFilter().apply {
            addAction(Intent.ACTION_BATTERY_CHANGED)
            addAction(PowerManager.ACTION_POWER_SAVE_MODE_CHANGED)
        }
        // ACTION_BATTERY_CHANGED is sticky: registering returns the current state at once.
        read(context.registerReceiver(receiver, filter))
        return AutoCloseable { context.unregisterReceiver(receiver) }
    }
}

class NetworkCallbackConnectivitySource(context: Context) : ConnectivitySource {
    private val cm = context.getSystemService(ConnectivityManager::class.java)

    override fun observe(onChange: (Connectivity) -> Unit): AutoCloseable {
        val callback = object : ConnectivityManager.NetworkCallback() {
            override fun onCapabilitiesChanged(network: AndroidNetwork, caps: NetworkCapabilities) = onChange(map(caps))
            override fun onLost(network: AndroidNetwork) = onChange(Connectivity(Network.OFFLINE, false))
        }
        onChange(cm.activeNetwork?.let(cm::getNetworkCapabilities)?.let(::map) ?: Connectivity(Network.OFFLINE, false))
        cm.registerDefaultNetworkCallback(callback)
        return AutoCloseable { cm.unregisterNetworkCallback(callback) }
    }

    private fun map(caps: NetworkCapabilities): Connectivity {
        val network = when {
            !caps.hasCapability(NetworkCapabilities.NET_CAPABILITY_INTERNET) -> Network.OFFLINE
            caps.hasTransport(NetworkCapabilities.TRANSPORT_WIFI) -> Network.WIFI
            caps.hasTransport(NetworkCapabilities.TRANSPORT_CELLULAR) -> Network.CELLULAR
            caps.hasTransport(NetworkCapabilities.TRANSPORT_ETHERNET) -> Network.ETHERNET
            else -> Network.UNKNOWN
        }
        val metered = !caps.hasCapability(NetworkCapabilities.NET_CAPABILITY_NOT_METERED)
        return Connectivity(network, metered)
    }
}

class ProcessLifecycleSource : LifecycleSource {
    override fun observe(onForeground: () -> Unit, onBackground: () -> Unit): AutoCloseable {
        val observer = object : DefaultLifecycleObserver {
            override fun onStart(owner: LifecycleOwner) = onForeground()
            override fun onStop(owner: LifecycleOwner) = onBackground()
        }
        val lifecycle = ProcessLifecycleOwner.get().lifecycle
        lifecycle.addObserver(observer)
        return AutoCloseable { lifecycle.removeObserver(observer) }
    }
}

/** The WorkManager job calls this; set by [WorkManagerFlushScheduler.schedule]. */
internal object FlushWork {
    @Volatile var work: (() -> Unit)? = null
}

class TrailhoundFlushWorker(context: Context, params: WorkerParameters) : Worker(context, params) {
    override fun doWork(): Result {
        // The process may have been started just for this job, before setup ran.
        val work = FlushWork.work ?: return Result.success()
        work()
        return Result.success()
    }
}

class WorkManagerFlushScheduler(private val context: Context) : FlushScheduler {
    private val name = "dev.trailhound.flush"

    override fun schedule(interval: Duration, work: () -> Unit) {
        FlushWork.work = work
        val request = PeriodicWorkRequestBuilder<TrailhoundFlushWorker>(interval.inWholeMinutes, TimeUnit.MINUTES)
            .setConstraints(Constraints.Builder().setRequiredNetworkType(NetworkType.CONNECTED).build())
            .build()
        WorkManager.getInstance(context).enqueueUniquePeriodicWork(name, ExistingPeriodicWorkPolicy.UPDATE, request)
    }

    override fun cancel() {
        FlushWork.work = null
        WorkManager.getInstance(context).cancelUniqueWork(name)
    }
}

object TrailhoundAndroid {
    /** Call from Application.onCreate: starts the shared client and the glue. */
    fun start(context: Context, writeKey: String, endpoint: String): Trailhound {
        val app = context.applicationContext
        val info = ContextInfo(
            deviceManufacturer = Build.MANUFACTURER,
            deviceModel = Build.MODEL,
            deviceType = "android",
            osName = "Android",
            osVersion = Build.VERSION.RELEASE,
            locale = java.util.Locale.getDefault().toLanguageTag(),
            timezone = java.util.TimeZone.getDefault().id,
        )
        val th = Trailhound.setup(
            TrailhoundConfig(
                writeKey, endpoint, app.filesDir.resolve("trailhound").path, context = info,
                // The AAR is built without the Rust HTTP client; pass an OkHttp Transport here to use
                // OkHttp, built with followRedirects(false) and followSslRedirects(false).
                transport = UrlConnectionTransport(),
            ),
        )
        PlatformGlue(
            th,
            BatteryPowerSource(app),
            NetworkCallbackConnectivitySource(app),
            ProcessLifecycleSource(),
            WorkManagerFlushScheduler(app),
        ).start()
        return th
    }
}
