// Runs the app's calls (Calls.kt) through the real bindings: `dev.trailhound.Trailhound`
// over the host libtrailhound_ffi (JNA), offline, with a plugin that records every event
// as the SDK queues it, and prints them as JSON for scripts/test-codegen.sh to compare
// with tests/codegen/expected-calls.json.
package app

import analytics.MusicAppTracker
import dev.trailhound.Plugin
import dev.trailhound.Trailhound
import dev.trailhound.TrailhoundConfig

fun main(args: Array<String>) {
    val calls = mutableListOf<Map<String, Any?>>()
    val record = Plugin { e ->
        val call = linkedMapOf<String, Any?>("type" to e.type.name.lowercase())
        (e.event ?: e.name)?.let { call["name"] = it }
        if (call["type"] == "identify") call["userId"] = e.userId
        e.groupId?.let { call["groupId"] = it }
        call["properties"] = e.properties ?: e.traits
        synchronized(calls) { calls += call }
        e
    }
    // Port 9 (discard) on loopback: nothing listens, so nothing is ever delivered.
    val trailhound = Trailhound.create(
        TrailhoundConfig(writeKey = "key", endpoint = "http://127.0.0.1:9", dataDir = args[0], plugins = listOf(record)),
    )
    makeCalls(MusicAppTracker(trailhound))
    trailhound.shutdown()
    println(json(synchronized(calls) { calls.toList() }))
}

fun json(v: Any?): String = when (v) {
    null -> "null"
    is String -> "\"" + v.replace("\\", "\\\\").replace("\"", "\\\"") + "\""
    is Number, is Boolean -> v.toString()
    is Map<*, *> -> v.entries.joinToString(",", "{", "}") { (k, x) -> json(k.toString()) + ":" + json(x) }
    is List<*> -> v.joinToString(",", "[", "]") { json(it) }
    else -> error("not JSON: $v")
}
