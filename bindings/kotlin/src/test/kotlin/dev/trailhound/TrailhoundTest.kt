package dev.trailhound

import dev.trailhound.ffi.EventType
import dev.trailhound.ffi.HttpResponse
import dev.trailhound.ffi.Notification
import dev.trailhound.ffi.PolicyOverrides
import dev.trailhound.ffi.TrailhoundException
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import java.util.Collections
import java.util.Date
import java.util.concurrent.CountDownLatch
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit
import kotlin.time.Duration.Companion.seconds

/** The Kotlin bindings through the real core, against a loopback collector. */
class TrailhoundTest : CollectorTest() {
    // Short retry delays so that a retried upload is milliseconds, not minutes, away.
    private fun start(
        endpoint: String = collector.url,
        transport: Transport? = null,
        plugins: List<Plugin> = emptyList(),
        listeners: List<Listener> = emptyList(),
    ) = Trailhound.create(
        TrailhoundConfig(
            writeKey = "test-key",
            endpoint = endpoint,
            dataDir = dir.toString(),
            policy = PolicyOverrides(backoffBaseMs = 10L, backoffMaxMs = 50L),
            transport = transport,
            plugins = plugins,
            listeners = listeners,
            jitterSeed = 7L,
        ),
    ).also { clients += it }

    @Suppress("UNCHECKED_CAST")
    private fun props(e: Map<String, Any?>) = e["properties"] as Map<String, Any?>

    /** The example call is delivered, with every kind of value intact. */
    @Test
    fun trackIsDeliveredWithValuesIntact() {
        val th = start()
        val properties = mapOf(
            "title" to "Nachtmusik",
            "seconds" to 215,
            "long" to Long.MAX_VALUE,
            "ratio" to 0.25,
            "whole" to 2.0,
            "float" to 0.1f,
            "live" to true,
            "nothing" to null,
            "tags" to listOf("a", 1, 1.5, null, false, listOf("nested")),
            "array" to arrayOf<Any>("x", 2),
            "meta" to mapOf("artist" to mapOf("name" to "Mozart", "born" to 1756), "empty" to emptyMap<String, Any>()),
            "unicode" to "Grüße ♪ 🎵",
        )
        th.track("Song Played", properties)
        assertEquals(1L, th.flushBlocking().delivered)
        val e = collector.events.single()
        assertEquals("Song Played", e["event"])
        assertEquals("track", e["type"])
        val p = props(e)
        assertEquals("Nachtmusik", p["title"])
        assertEquals(215L, p["seconds"])
        assertEquals(Long.MAX_VALUE, p["long"])
        assertEquals(0.25, p["ratio"])
        assertEquals(2.0, p["whole"]) // a Double, not the Long 2
        assertEquals(0.1, p["float"])
        assertEquals(true, p["live"])
        assertTrue(p.containsKey("nothing") && p["nothing"] == null)
        assertEquals(listOf("a", 1L, 1.5, null, false, listOf("nested")), p["tags"])
        assertEquals(listOf("x", 2L), p["array"])
        assertEquals(mapOf("artist" to mapOf("name" to "Mozart", "born" to 1756L), "empty" to emptyMap<String, Any>()), p["meta"])
        assertEquals("Grüße ♪ 🎵", p["unicode"])
    }

    /** identify, screen, page, group and alias reach the server with their fields. */
    @Test
    fun everyCallReachesTheServer() {
        val th = start()
        th.identify("user-42", mapOf("plan" to "pro"))
        th.screen("Player", mapOf("from" to "home"))
        th.page("Pricing")
        th.group("org-1", mapOf("seats" to 5))
        th.alias("user-43")
        assertEquals("user-43", th.userId)
        th.flushBlocking()
        val byType = collector.events.associateBy { it["type"] }
        assertEquals("user-42", byType["identify"]!!["userId"])
        assertEquals(mapOf("plan" to "pro"), byType["identify"]!!["traits"])
        assertEquals("Player", byType["screen"]!!["name"])
        assertEquals("Pricing", byType["page"]!!["name"])
        assertEquals("org-1", byType["group"]!!["groupId"])
        assertEquals("user-42", byType["alias"]!!["previousId"])
        assertEquals(th.anonymousId, byType["screen"]!!["anonymousId"])
    }

    /** Values with no JSON form are refused in Kotlin with their path; nothing else is lost. */
    @Test
    fun badInputIsAClearErrorAndLosesNothing() {
        val th = start()
        th.track("before")
        val bad = listOf<Map<String, Any?>>(
            mapOf("when" to Date()),
            mapOf("deep" to mapOf("list" to listOf(1, object {}))),
            mapOf("nan" to Double.NaN),
            mapOf("map" to mapOf(1 to "int key")),
            mapOf("big" to java.math.BigInteger.TWO.pow(64)),
        )
        for (b in bad) {
            val e = assertThrows<IllegalArgumentException> { th.track("bad", b) }
            assertTrue(e.message!!.startsWith("properties."), e.message)
        }
        assertTrue(assertThrows<IllegalArgumentException> { th.track("bad", mapOf("when" to Date())) }
            .message!!.contains("java.util.Date"))
        // The core's own validation arrives as a typed exception with its detail.
        val invalid = assertThrows<TrailhoundException.Invalid> { th.track("") }
        assertTrue(invalid.detail.contains("must not be empty"), invalid.detail)
        th.track("after")
        th.flushBlocking()
        assertEquals(listOf("before", "after"), collector.names())
        assertEquals(1L, th.invalidCalls())
    }

    /** Events tracked while the server is unreachable survive a restart and are delivered. */
    @Test
    fun offlineQueueSurvivesRestart() {
        val port = TestCollector.freePort()
        val url = "http://127.0.0.1:$port"
        val first = start(endpoint = url)
        first.track("offline 1")
        first.track("offline 2")
        val stats = first.flushBlocking()
        assertEquals(0L, stats.delivered)
        assertTrue(stats.lastError != null)
        first.close()

        TestCollector(port).use { server ->
            val second = start(endpoint = url)
            assertEquals(2L, second.flushBlocking().delivered)
            assertEquals(listOf("offline 1", "offline 2"), server.names())
        }
    }

    /** A 503 is retried; the listener hears the failure and then the delivery. */
    @Test
    fun serverErrorIsRetriedAndListenerHearsIt() {
        val heard = Collections.synchronizedList(mutableListOf<Notification>())
        collector.script.add(503)
        val th = start(listeners = listOf(Listener { heard += it }))
        th.track("Song Played")
        val first = th.flushBlocking()
        assertEquals(0L, first.delivered)
        assertEquals(1L, first.retries)
        assertEquals(1L, th.flushBlocking().delivered)
        val failed = heard.filterIsInstance<Notification.UploadFailed>().single()
        assertEquals(503, failed.status)
        val delivered = heard.filterIsInstance<Notification.Delivered>().single()
        assertEquals(listOf(collector.events.single()["messageId"]), delivered.messageIds)
    }

    /** A listener that throws is ignored; delivery goes on. */
    @Test
    fun throwingListenerDoesNotStopDelivery() {
        val th = start(listeners = listOf(Listener { throw IllegalStateException("listener bug") }))
        th.track("a")
        th.track("b")
        assertEquals(2L, th.flushBlocking().delivered)
    }

    /** Uploads go through a Kotlin transport; its exception is a retried network error. */
    @Test
    fun foreignTransportSendsAndItsExceptionIsRetried() {
        val calls = Collections.synchronizedList(mutableListOf<String>())
        val transport = Transport { req ->
            calls += req.url
            if (calls.size == 1) throw java.io.IOException("proxy refused the connection")
            UrlConnectionTransport().send(req)
        }
        val th = start(transport = transport)
        th.track("via kotlin")
        val first = th.flushBlocking()
        assertEquals(0L, first.delivered)
        assertTrue(first.lastError!!.contains("proxy refused the connection"), first.lastError)
        assertEquals(1L, th.flushBlocking().delivered)
        assertEquals(listOf("via kotlin"), collector.names())
        assertEquals(listOf("${collector.url}/v1/batch", "${collector.url}/v1/batch"), calls.toList())
    }

    /** Even a JVM Error (not an Exception) thrown by a transport is an error value. */
    @Test
    fun transportErrorIsContained() {
        var n = 0
        val th = start(transport = Transport {
            n++
            if (n == 1) throw StackOverflowError("deep") else HttpResponse(200, null)
        })
        th.track("a")
        assertTrue(th.flushBlocking().lastError!!.contains("StackOverflowError"))
        assertEquals(1L, th.flushBlocking().delivered)
    }

    /** A plugin can rewrite or drop an event; one that throws refuses only its event. */
    @Test
    fun pluginChangesDropsAndFailsCleanly() {
        val plugin = Plugin { e ->
            when (e.event) {
                "drop me" -> null
                "explode" -> throw IllegalStateException("plugin exploded")
                else -> {
                    assertEquals(EventType.TRACK, e.type)
                    e.copy(properties = e.properties!! - "email" + ("scrubbed" to true))
                }
            }
        }
        val th = start(plugins = listOf(plugin))
        th.track("kept", mapOf("email" to "a@b.c", "n" to 1))
        th.track("drop me")
        val err = assertThrows<TrailhoundException.Plugin> { th.track("explode") }
        assertTrue(err.detail.contains("plugin exploded"), err.detail)
        th.track("also kept")
        val stats = th.flushBlocking()
        assertEquals(listOf("kept", "also kept"), collector.names())
        assertEquals(mapOf("n" to 1L, "scrubbed" to true), props(collector.events.first()))
        assertEquals(1L, stats.dropped.plugin)
    }

    /** 8 threads tracking at once: every event is delivered exactly once. */
    @Test
    fun trackFromManyThreads() {
        val th = start()
        val pool = Executors.newFixedThreadPool(8)
        val go = CountDownLatch(1)
        val futures = (0 until 8).map { t ->
            pool.submit {
                go.await()
                repeat(50) { i -> th.track("tick", mapOf("thread" to t, "i" to i)) }
            }
        }
        go.countDown()
        futures.forEach { it.get(30, TimeUnit.SECONDS) }
        pool.shutdown()
        th.flushBlocking(10.seconds)
        assertTrue(collector.waitFor(400))
        val seen = collector.events.map { props(it).let { p -> p["thread"] to p["i"] } }.toSet()
        assertEquals(400, seen.size)
        assertEquals(400, collector.events.size)
    }

    /** After optOut nothing is sent; optIn resumes. A closed client says so. */
    @Test
    fun optOutAndClose() {
        val th = start()
        th.optOut()
        assertTrue(th.isOptedOut)
        th.track("private")
        th.optIn()
        th.track("public")
        th.flushBlocking()
        assertEquals(listOf("public"), collector.names())
        th.shutdown()
        assertThrows<TrailhoundException.Closed> { th.track("late") }
    }

    /** Plain http to a remote host is refused at setup with the reason. */
    @Test
    fun badEndpointIsAConfigError() {
        val e = assertThrows<TrailhoundException.Config> { start(endpoint = "http://example.com") }
        assertTrue(e.detail.contains("loopback"), e.detail)
    }

    /** setup() makes the app-wide client; a second setup is a programming error. */
    @Test
    fun setupMakesTheSharedClient() {
        val th = Trailhound.setup(TrailhoundConfig("k", collector.url, dir.toString()))
        clients += th
        assertTrue(Trailhound.shared === th)
        assertThrows<IllegalStateException> { Trailhound.setup(TrailhoundConfig("k", collector.url, dir.toString())) }
        Trailhound.shared.track("Song Played", mapOf("title" to "Nachtmusik", "seconds" to 215))
        th.flushBlocking()
        assertEquals(listOf("Song Played"), collector.names())
        th.close()
        assertThrows<IllegalStateException> { Trailhound.shared }
    }
}
