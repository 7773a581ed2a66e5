package dev.trailhound

import dev.trailhound.ffi.HttpRequest
import dev.trailhound.ffi.HttpResponse
import java.net.HttpURLConnection
import java.net.URI

/**
 * Uploads through the platform's HttpURLConnection (on Android: the system's stack, with
 * its proxy and network-security config). For builds of the library without the Rust
 * HTTP client (the AAR), and a template for an OkHttp transport. Throws IOException on a
 * network error, which the core retries with backoff.
 *
 * Never follows a redirect: the 3xx itself is the answer, and the core takes it for a
 * misconfigured endpoint (uploads pause; nothing is marked delivered). Following one
 * would send the write key and the events to wherever `Location` points. An OkHttp
 * transport must do the same: `followRedirects(false)` and `followSslRedirects(false)`.
 */
class UrlConnectionTransport(private val timeoutMs: Int = 30_000) : Transport {
    override fun send(request: HttpRequest): HttpResponse {
        val conn = URI(request.url).toURL().openConnection() as HttpURLConnection
        try {
            conn.instanceFollowRedirects = false
            conn.requestMethod = "POST"
            conn.doOutput = true
            conn.connectTimeout = timeoutMs
            conn.readTimeout = timeoutMs
            conn.setFixedLengthStreamingMode(request.body.size)
            request.headers.forEach { (k, v) -> conn.setRequestProperty(k, v) }
            conn.outputStream.use { it.write(request.body) }
            val status = conn.responseCode
            // Drain so that the connection can be kept alive for the next batch.
            (if (status >= 400) conn.errorStream else conn.inputStream)?.use { it.readBytes() }
            return HttpResponse(status, conn.getHeaderField("Retry-After"))
        } finally {
            conn.disconnect()
        }
    }
}
