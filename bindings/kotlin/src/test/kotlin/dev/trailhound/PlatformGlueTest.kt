package dev.trailhound

import dev.trailhound.android.Connectivity
import dev.trailhound.android.ConnectivitySource
import dev.trailhound.android.FlushScheduler
import dev.trailhound.android.LifecycleSource
import dev.trailhound.android.PlatformGlue
import dev.trailhound.android.PowerSource
import dev.trailhound.android.PowerState
import dev.trailhound.ffi.Network
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import java.nio.file.Path
import kotlin.time.Duration

/** The Android glue's seams driven by plain-JVM fakes, through the real core. */
class PlatformGlueTest {
    @TempDir
    lateinit var dir: Path
    private val collector = TestCollector()
    private lateinit var th: Trailhound

    private class FakeSource<T> {
        var observer: ((T) -> Unit)? = null
        var closed = false
        fun emit(v: T) = observer!!(v)
        fun observe(initial: T, onChange: (T) -> Unit): AutoCloseable {
            observer = onChange
            onChange(initial)
            return AutoCloseable { closed = true; observer = null }
        }
    }

    private val power = FakeSource<PowerState>()
    private val net = FakeSource<Connectivity>()
    private var foreground: (() -> Unit)? = null
    private var background: (() -> Unit)? = null
    private var scheduled: (() -> Unit)? = null
    private var interval: Duration? = null

    private fun glue(): PlatformGlue {
        // Default policy: one event waits 30 s or more before an upload on its own, so
        // what reaches the collector within a test was caused by the glue.
        th = Trailhound.create(TrailhoundConfig("k", collector.url, dir.toString()))
        return PlatformGlue(
            th,
            PowerSource { power.observe(PowerState(0.9f, false, false), it) },
            ConnectivitySource { net.observe(Connectivity(Network.WIFI, false), it) },
            object : LifecycleSource {
                override fun observe(onForeground: () -> Unit, onBackground: () -> Unit): AutoCloseable {
                    foreground = onForeground
                    background = onBackground
                    return AutoCloseable { foreground = null; background = null }
                }
            },
            object : FlushScheduler {
                override fun schedule(interval: Duration, work: () -> Unit) {
                    this@PlatformGlueTest.interval = interval
                    scheduled = work
                }
                override fun cancel() { scheduled = null }
            },
        ).start()
    }

    @AfterEach
    fun tearDown() {
        runCatching { th.close() }
        collector.close()
    }

    /** Network changes reach the core: offline holds uploads, back online they go. */
    @Test
    fun connectivityIsForwarded() {
        val g = glue()
        // stats() lags the background thread; a flush round-trip orders it after the change.
        assertEquals(Network.WIFI, th.flushBlocking().network)
        net.emit(Connectivity(Network.OFFLINE, false))
        th.track("while offline")
        val held = th.flushBlocking()
        assertEquals(Network.OFFLINE, held.network)
        assertEquals(0L, held.requests)
        net.emit(Connectivity(Network.CELLULAR, true))
        assertEquals(1L, th.flushBlocking().delivered)
        g.close()
    }

    /** Going to the background commits and flushes once; the scheduled job flushes too. */
    @Test
    fun lifecycleAndScheduledFlushDeliver() {
        val g = glue()
        th.track("a")
        background!!()
        assertTrue(collector.waitFor(1), "backgrounding flushed")
        foreground!!()
        th.track("b")
        assertNotNull(interval)
        scheduled!!()
        assertEquals(listOf("a", "b"), collector.names())
        g.close()
        assertNull(scheduled, "close cancels the job")
        assertTrue(power.closed && net.closed)
    }

    /** Battery and power-save changes are forwarded; a change after shutdown is harmless. */
    @Test
    fun powerIsForwardedAndLateCallbacksAreHarmless() {
        val g = glue()
        power.emit(PowerState(0.05f, false, true))
        th.track("x")
        th.shutdown()
        // The OS may still deliver a callback: the glue must not throw into it.
        power.emit(PowerState(0.5f, true, false))
        net.emit(Connectivity(Network.OFFLINE, false))
        background!!()
        scheduled!!()
        assertFalse(th.isOptedOut)
        g.close()
    }
}
