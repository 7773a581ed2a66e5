package dev.trailhound

import dev.trailhound.ffi.ContextInfo
import dev.trailhound.ffi.HttpResponse
import dev.trailhound.ffi.PolicyOverrides
import dev.trailhound.ffi.TrailhoundException
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir
import java.nio.file.Path
import kotlin.time.Duration
import kotlin.time.Duration.Companion.seconds

/** Hostile numbers from Kotlin: error values or sane results, never a crash or a hang. */
class HostileInputTest {
    @TempDir
    lateinit var dir: Path

    private fun config(policy: PolicyOverrides? = null) = TrailhoundConfig(
        writeKey = "test-key",
        endpoint = "https://c.example",
        dataDir = dir.toString(),
        policy = policy,
        transport = Transport { HttpResponse(200, null) },
    )

    /** Negative and infinite durations are clamped: flush and shutdown return normally. */
    @Test
    fun negativeAndInfiniteDurations() {
        val th = Trailhound.create(config())
        th.track("a")
        try {
            th.flushBlocking((-5).seconds)
        } catch (_: TrailhoundException.Timeout) {
            // a zero timeout may pass before the flush is over
        }
        assertEquals(1L, th.flushBlocking(Duration.INFINITE).delivered)
        th.shutdown(Duration.INFINITE)
        th.close()
    }

    /**
     * Long.MAX durations, negative values (the FFI's integers are signed, usable from Java) and
     * a NaN fraction are configuration errors naming the setting.
     */
    @Test
    fun extremeOverridesAreConfigErrors() {
        for ((setting, policy) in listOf(
            "backoff_max_ms" to PolicyOverrides(backoffMaxMs = Long.MAX_VALUE),
            "max_event_bytes" to PolicyOverrides(maxEventBytes = Long.MAX_VALUE),
            "call_queue_capacity" to PolicyOverrides(callQueueCapacity = Int.MAX_VALUE),
            "near_cap_fraction" to PolicyOverrides(nearCapFraction = Double.NaN),
            "policy.flush_at: -1 is negative" to PolicyOverrides(flushAt = -1L),
            "policy.max_batch_events: -5 is negative" to PolicyOverrides(maxBatchEvents = -5),
            "policy.max_delay_ms: -1 is negative" to PolicyOverrides(maxDelayMs = -1L),
        )) {
            val e = assertThrows<TrailhoundException.Config> { Trailhound.create(config(policy)) }
            assertTrue(e.detail.contains(setting), e.detail)
        }
    }

    /** A negative screen size in the context is a configuration error naming it. */
    @Test
    fun negativeContextSizeIsConfigError() {
        val e = assertThrows<TrailhoundException.Config> {
            Trailhound.create(config().copy(context = ContextInfo(screenWidth = -1)))
        }
        assertTrue(e.detail.contains("context.screen_width: -1 is negative"), e.detail)
    }
}
