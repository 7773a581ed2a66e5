package dev.trailhound

import dev.trailhound.ffi.Notification
import dev.trailhound.ffi.PlanMode
import dev.trailhound.ffi.PolicyOverrides
import dev.trailhound.ffi.TrailhoundException
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import java.nio.file.Files
import java.nio.file.Path
import java.util.Collections
import kotlin.time.Duration.Companion.seconds

/**
 * Tracking plans through the Kotlin bindings: the shared table (tests/plan/cases.json)
 * gives the same verdicts here as in the validator, the native runtime and the Rust FFI.
 */
class PlanTest : CollectorTest() {
    // Maven runs the tests in bindings/kotlin.
    private val tablePath: Path =
        Path.of(System.getProperty("user.dir")).resolve("../../tests/plan/cases.json")

    @Suppress("UNCHECKED_CAST")
    private fun table(): Map<String, Any?> = Json.parse(Files.readString(tablePath)) as Map<String, Any?>

    /** The table's plan as JSON text again, for the config. */
    private fun planText(): String = StringBuilder().also { write(table()["plan"], it) }.toString()

    private fun write(v: Any?, out: StringBuilder) {
        when (v) {
            null -> out.append("null")
            is String -> {
                out.append('"')
                v.forEach { c ->
                    when {
                        c == '"' || c == '\\' -> out.append('\\').append(c)
                        c < ' ' -> out.append("\\u%04x".format(c.code))
                        else -> out.append(c)
                    }
                }
                out.append('"')
            }
            is Map<*, *> -> {
                out.append('{')
                v.entries.forEachIndexed { i, (k, e) ->
                    if (i > 0) out.append(',')
                    write(k as String, out); out.append(':'); write(e, out)
                }
                out.append('}')
            }
            is List<*> -> {
                out.append('[')
                v.forEachIndexed { i, e -> if (i > 0) out.append(','); write(e, out) }
                out.append(']')
            }
            else -> out.append(v.toString()) // Long, Double, Boolean
        }
    }

    @Suppress("UNCHECKED_CAST")
    private fun pairs(violations: Any?): List<Pair<String, String>> =
        (violations as List<Map<String, Any?>>)
            .map { it["rule"] as String to it["pointer"] as String }
            .sortedWith(compareBy({ it.first }, { it.second }))

    @Suppress("UNCHECKED_CAST")
    private fun send(th: Trailhound, e: Map<String, Any?>) {
        val props = (e["properties"] ?: e["traits"] ?: emptyMap<String, Any?>()) as Map<String, Any?>
        when (e["type"]) {
            "track" -> th.track(e["event"] as String, props)
            "screen" -> th.screen(e["name"] as String? ?: "", props)
            "page" -> th.page(e["name"] as String? ?: "", props)
            "identify" -> th.identify(e["userId"] as String? ?: "u1", props)
            "group" -> th.group(e["groupId"] as String? ?: "g1", props)
            else -> error("no SDK call sends ${e["type"]}")
        }
    }

    private fun start(plan: String, mode: PlanMode, plugins: List<Plugin>, listeners: List<Listener>) =
        Trailhound.create(
            TrailhoundConfig(
                writeKey = "test-key",
                endpoint = collector.url,
                dataDir = dir.toString(),
                policy = PolicyOverrides(backoffBaseMs = 10L, backoffMaxMs = 50L),
                plugins = plugins,
                listeners = listeners,
                jitterSeed = 7L,
                plan = plan,
                planMode = mode,
            ),
        ).also { clients += it }

    /** REPORT: every case arrives, a violating one with the table's (rule, pointer) list in context.plan, and the listener hears the same list. */
    @Test
    @Suppress("UNCHECKED_CAST")
    fun reportModeGivesTheTablesVerdicts() {
        val cases = table()["cases"] as List<Map<String, Any?>>
        val ids = Collections.synchronizedList(mutableListOf<String>())
        val told = Collections.synchronizedMap(mutableMapOf<String, List<Pair<String, String>>>())
        val th = start(
            planText(),
            PlanMode.REPORT,
            listOf(Plugin { e -> ids += e.messageId; e }),
            listOf(Listener { n ->
                if (n is Notification.PlanViolation) {
                    told[n.messageId] = n.violations.map { it.rule to it.pointer }
                        .sortedWith(compareBy({ it.first }, { it.second }))
                }
            }),
        )
        cases.forEach { send(th, it["event"] as Map<String, Any?>) }
        val stats = th.flushBlocking(20.seconds)
        th.shutdown(20.seconds)
        assertEquals(cases.size, ids.size)
        val byId = collector.events.associateBy { it["messageId"] as String }
        var total = 0L
        cases.forEachIndexed { i, case ->
            val want = pairs(case["violations"])
            total += want.size.toLong()
            val event = byId[ids[i]] ?: error("${case["name"]} not delivered")
            val plan = (event["context"] as Map<String, Any?>)["plan"] as Map<String, Any?>?
            if (want.isEmpty()) {
                assertEquals(null, plan, "${case["name"]}")
                assertFalse(told.containsKey(ids[i]), "${case["name"]}")
            } else {
                assertEquals(want, pairs(plan?.get("violations")), "${case["name"]}")
                assertEquals(want, told[ids[i]], "${case["name"]}")
            }
        }
        assertEquals(total, stats.planViolations.sumOf { it.count })
        assertEquals(0L, stats.dropped.planViolation)
    }

    /** ENFORCE, with the plan from a file: violating cases never arrive and are counted as dropped planViolation. */
    @Test
    @Suppress("UNCHECKED_CAST")
    fun enforceModeDropsViolatingEvents() {
        val cases = table()["cases"] as List<Map<String, Any?>>
        val planFile = Files.createTempFile("plan", ".json")
        Files.writeString(planFile, planText())
        val th = Trailhound.create(
            TrailhoundConfig(
                writeKey = "test-key",
                endpoint = collector.url,
                dataDir = dir.toString(),
                jitterSeed = 7L,
                planFile = planFile.toString(),
                planMode = PlanMode.ENFORCE,
            ),
        ).also { clients += it }
        cases.forEach { send(th, it["event"] as Map<String, Any?>) }
        val stats = th.flushBlocking(20.seconds)
        val violating = cases.count { (it["violations"] as List<*>).isNotEmpty() }
        assertTrue(violating > 0)
        assertEquals(violating.toLong(), stats.dropped.planViolation)
        assertEquals(cases.size - violating, collector.events.size)
    }

    /** A plan the SDK cannot apply (an unknown keyword) is a TrailhoundException.Plan naming the place. */
    @Test
    fun badPlanIsAPlanError() {
        val bad = """{"plan": "p", "version": "1-0-0", "events": [{"type": "track", "name": "A",
            "schema": {"type": "object", "properties": {"n": {"type": "integer", "minimun": 5}}}}]}"""
        val e = assertThrows<TrailhoundException.Plan> {
            start(bad, PlanMode.REPORT, emptyList(), emptyList())
        }
        assertTrue(e.at.startsWith("/events/0/schema/properties/n"), e.at)
        assertTrue(e.message!!.contains(e.at), e.message)
    }
}
