package dev.trailhound

import com.sun.net.httpserver.HttpServer
import dev.trailhound.ffi.HttpRequest
import dev.trailhound.ffi.PolicyOverrides
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import java.net.InetSocketAddress
import java.nio.file.Path
import java.util.concurrent.Executors
import java.util.concurrent.atomic.AtomicInteger

/**
 * `UrlConnectionTransport` never follows a redirect: a loopback server answers
 * `POST /v1/batch` with a 3xx pointing at `/landing`, which answers 200.
 */
class RedirectTest {
    @TempDir
    lateinit var dir: Path

    @Volatile private var status = 301
    private val batchHits = AtomicInteger()
    private val landingHits = AtomicInteger()
    private val server = HttpServer.create(InetSocketAddress("127.0.0.1", 0), 0).apply {
        createContext("/v1/batch") { ex ->
            ex.requestBody.readBytes()
            batchHits.incrementAndGet()
            ex.responseHeaders.add("Location", "http://127.0.0.1:${address.port}/landing")
            ex.sendResponseHeaders(status, -1)
            ex.close()
        }
        createContext("/landing") { ex ->
            ex.requestBody.readBytes()
            landingHits.incrementAndGet()
            ex.sendResponseHeaders(200, -1)
            ex.close()
        }
        executor = Executors.newFixedThreadPool(2)
        start()
    }
    private val base = "http://127.0.0.1:${server.address.port}"

    @AfterEach
    fun tearDown() = server.stop(0)

    /** Each redirect status comes back as the answer; the landing route is never hit. */
    @Test
    fun redirectStatusIsTheAnswer() {
        for (code in listOf(301, 302, 303, 307, 308)) {
            status = code
            val request = HttpRequest(
                url = "$base/v1/batch",
                headers = mapOf("Content-Encoding" to "gzip", "Authorization" to "Basic a2V5Og=="),
                body = byteArrayOf(1, 2, 3),
            )
            val response = UrlConnectionTransport(timeoutMs = 10_000).send(request)
            assertEquals(code, response.status, "status $code")
        }
        assertEquals(5, batchHits.get())
        assertEquals(0, landingHits.get(), "a redirect was followed")
    }

    /** Through the client: a redirecting endpoint delivers nothing, anywhere. */
    @Test
    fun clientWithRedirectingEndpointDeliversNothing() {
        status = 308
        Trailhound.create(
            TrailhoundConfig(
                writeKey = "test-key",
                endpoint = base,
                dataDir = dir.toString(),
                policy = PolicyOverrides(backoffBaseMs = 10L, backoffMaxMs = 50L),
                transport = UrlConnectionTransport(timeoutMs = 10_000),
                jitterSeed = 7L,
            ),
        ).use { th ->
            th.track("a")
            val stats = th.flushBlocking()
            assertEquals(0L, stats.delivered)
            assertTrue(batchHits.get() >= 1) // retries may follow; none is redirected
            assertEquals(0, landingHits.get(), "a redirect was followed")
        }
    }
}
