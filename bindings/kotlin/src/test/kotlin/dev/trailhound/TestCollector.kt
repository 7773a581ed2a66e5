package dev.trailhound

import com.sun.net.httpserver.HttpServer
import java.net.InetSocketAddress
import java.net.ServerSocket
import java.util.concurrent.ConcurrentLinkedQueue
import java.util.zip.GZIPInputStream

/**
 * A loopback Segment collector: gunzips `POST /v1/batch`, keeps the events (parsed by a
 * tiny JSON reader below), and answers scripted statuses first (503…), then 200.
 */
class TestCollector(port: Int = 0) : AutoCloseable {
    val events = ConcurrentLinkedQueue<Map<String, Any?>>()
    val script = ConcurrentLinkedQueue<Int>()
    @Volatile var requests = 0
    private val server = HttpServer.create(InetSocketAddress("127.0.0.1", port), 0)
    val port: Int get() = server.address.port
    val url: String get() = "http://127.0.0.1:$port"

    init {
        server.createContext("/") { ex ->
            val body = ex.requestBody.readBytes()
            val status = synchronized(this) {
                requests++
                script.poll() ?: 200
            }
            if (status == 200) {
                check(ex.requestURI.path == "/v1/batch") { "path ${ex.requestURI.path}" }
                check(ex.requestHeaders.getFirst("Content-Encoding") == "gzip")
                val text = GZIPInputStream(body.inputStream()).readBytes().decodeToString()
                @Suppress("UNCHECKED_CAST")
                val batch = (Json.parse(text) as Map<String, Any?>)["batch"] as List<Map<String, Any?>>
                events.addAll(batch)
            }
            ex.sendResponseHeaders(status, -1)
            ex.close()
        }
        server.executor = java.util.concurrent.Executors.newFixedThreadPool(4)
        server.start()
    }

    fun waitFor(n: Int, timeoutMs: Long = 10_000): Boolean {
        val deadline = System.currentTimeMillis() + timeoutMs
        while (System.currentTimeMillis() < deadline) {
            if (events.size >= n) return true
            Thread.sleep(20)
        }
        return false
    }

    fun names() = events.map { it["event"] }

    override fun close() = server.stop(0)

    companion object {
        /** A port nothing listens on (yet): connecting is refused. */
        fun freePort(): Int = ServerSocket(0).use { it.localPort }
    }
}

/** Just enough JSON for the tests: integers as Long, other numbers as Double. */
object Json {
    fun parse(s: String): Any? = Parser(s).run { value().also { ws(); check(i == s.length) } }

    private class Parser(val s: String) {
        var i = 0
        fun ws() { while (i < s.length && s[i].isWhitespace()) i++ }
        fun value(): Any? {
            ws()
            return when (s[i]) {
                '{' -> obj()
                '[' -> arr()
                '"' -> str()
                't' -> lit("true", true)
                'f' -> lit("false", false)
                'n' -> lit("null", null)
                else -> num()
            }
        }
        fun lit(w: String, v: Any?): Any? { check(s.startsWith(w, i)); i += w.length; return v }
        fun obj(): Map<String, Any?> {
            val m = LinkedHashMap<String, Any?>(); i++; ws()
            if (s[i] == '}') { i++; return m }
            while (true) {
                ws(); val k = str(); ws(); check(s[i] == ':'); i++
                m[k] = value(); ws()
                if (s[i] == ',') { i++; continue }
                check(s[i] == '}'); i++; return m
            }
        }
        fun arr(): List<Any?> {
            val l = ArrayList<Any?>(); i++; ws()
            if (s[i] == ']') { i++; return l }
            while (true) {
                l.add(value()); ws()
                if (s[i] == ',') { i++; continue }
                check(s[i] == ']'); i++; return l
            }
        }
        fun str(): String {
            check(s[i] == '"'); i++
            val sb = StringBuilder()
            while (s[i] != '"') {
                if (s[i] == '\\') {
                    i++
                    when (s[i]) {
                        'n' -> sb.append('\n'); 't' -> sb.append('\t'); 'r' -> sb.append('\r')
                        'b' -> sb.append('\b'); 'f' -> sb.append('\u000c')
                        'u' -> { sb.append(s.substring(i + 1, i + 5).toInt(16).toChar()); i += 4 }
                        else -> sb.append(s[i])
                    }
                } else sb.append(s[i])
                i++
            }
            i++
            return sb.toString()
        }
        fun num(): Any {
            val start = i
            while (i < s.length && (s[i].isDigit() || s[i] in "+-.eE")) i++
            val t = s.substring(start, i)
            return if (t.any { it in ".eE" }) t.toDouble() else t.toLong()
        }
    }
}
