package dev.trailhound

import dev.trailhound.ffi.Notification
import dev.trailhound.ffi.PolicyOverrides
import dev.trailhound.ffi.TrailhoundException
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import java.util.Collections
import kotlin.time.Duration.Companion.seconds

/** Fallback endpoints through the Kotlin wrapper (issue 12). */
class FailoverTest : CollectorTest() {
    /** A dead primary (connection refused) and a live fallback: every event arrives once, the primary is open. */
    @Test
    fun deadPrimaryDeliversThroughTheFallback() {
        val dead = "http://127.0.0.1:${TestCollector.freePort()}"
        val heard = Collections.synchronizedList(mutableListOf<Notification>())
        val th = Trailhound.create(
            TrailhoundConfig(
                writeKey = "test-key",
                endpoint = dead,
                dataDir = dir.toString(),
                // Open far longer than the test: the flush's first request is the primary's only one.
                policy = PolicyOverrides(backoffBaseMs = 600_000L),
                listeners = listOf(Listener { heard += it }),
                fallbackEndpoints = listOf(collector.url),
            ),
        ).also { clients += it }
        repeat(5) { th.track("Failover", mapOf("i" to it)) }
        val stats = th.flushBlocking(20.seconds)
        assertEquals(5L, stats.delivered)
        assertTrue(collector.waitFor(5))
        assertEquals((0L until 5L).toSet(), collector.events.map { (it["properties"] as Map<*, *>)["i"] }.toSet())
        assertEquals(5, collector.events.size, "each event once")
        val (primary, fallback) = stats.endpoints
        assertEquals(dead, primary.url)
        assertEquals("open", primary.state)
        assertEquals("network", primary.reason)
        assertEquals(1L, primary.failures)
        assertEquals(collector.url, fallback.url)
        assertEquals("closed", fallback.state)
        assertTrue(
            heard.any { it is Notification.EndpointOpened && it.url == dead && it.reason == "network" },
            "$heard",
        )
    }

    /** A fallback that repeats the primary is a Config error, and the config's toString lists the fallbacks. */
    @Test
    fun duplicateFallbackIsAConfigError() {
        val config = TrailhoundConfig(
            writeKey = "test-key",
            endpoint = collector.url,
            dataDir = dir.resolve("data").toString(),
            fallbackEndpoints = listOf("${collector.url}/"),
        )
        val e = assertThrows<TrailhoundException.Config> { Trailhound.create(config) }
        assertTrue(e.detail.contains("same endpoint as the primary"), e.detail)
        assertTrue(config.toString().contains("fallbackEndpoints=[${collector.url}/]"), config.toString())
        assertTrue(!dir.resolve("data").toFile().exists(), "nothing opened")
    }
}
