package dev.trailhound

import dev.trailhound.ffi.HttpRequest
import dev.trailhound.ffi.HttpResponse
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import java.nio.file.Path
import java.util.Base64
import java.util.Collections
import dev.trailhound.ffi.Config as FfiConfig

/** The write key never shows in the string forms of the configs or of a request. */
class RedactionTest {
    @TempDir
    lateinit var dir: Path

    private val key = "sekrit-write-key-4711"
    private val basic = Base64.getEncoder().encodeToString("$key:".toByteArray())
    private val clients = mutableListOf<Trailhound>()

    @AfterEach
    fun tearDown() = clients.forEach { runCatching { it.close() } }

    private fun assertNoKey(text: String) {
        assertFalse(text.contains("sekrit"), text)
        assertFalse(text.contains(basic), text)
    }

    /** The wrapper's config: toString names the endpoint but not the key. */
    @Test
    fun wrapperConfigToStringHasNoKey() {
        val config = TrailhoundConfig(writeKey = key, endpoint = "https://c.example", dataDir = "/d")
        assertNoKey(config.toString())
        assertTrue(config.toString().contains("https://c.example"), config.toString())
        assertEquals(key, config.writeKey)
    }

    /** The generated record's toString is Rust's redacting Display. */
    @Test
    fun generatedConfigToStringHasNoKey() {
        val ffi = FfiConfig(writeKey = key, endpoint = "https://c.example", dataDir = "/d")
        assertNoKey(ffi.toString())
        assertTrue(ffi.toString().contains("https://c.example"), ffi.toString())
        assertEquals(key, ffi.writeKey)
    }

    /** A request's toString shows neither the key nor its Authorization header. */
    @Test
    fun requestToStringHasNoAuthorization() {
        val req = HttpRequest("https://c.example/v1/batch", mapOf("Authorization" to "Basic $basic"), byteArrayOf(1))
        assertNoKey(req.toString())
        assertFalse(req.toString().contains("Authorization"), req.toString())
    }

    /** The request the core really builds, as a transport would log it: no key. */
    @Test
    fun realRequestLoggedByATransportHasNoKey() {
        val logged = Collections.synchronizedList(mutableListOf<String>())
        val th = Trailhound.create(
            TrailhoundConfig(
                writeKey = key,
                endpoint = "https://c.example",
                dataDir = dir.toString(),
                transport = Transport { req ->
                    assertEquals("Basic $basic", req.headers["Authorization"])
                    logged += req.toString()
                    HttpResponse(200, null)
                },
            ),
        ).also { clients += it }
        th.track("a")
        assertEquals(1L, th.flushBlocking().delivered)
        assertEquals(1, logged.size)
        logged.forEach(::assertNoKey)
    }
}
