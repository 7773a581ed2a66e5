package dev.trailhound

import dev.trailhound.ffi.Value
import java.math.BigInteger

/**
 * Converts ordinary Kotlin/Java values to the FFI's [Value] and back.
 *
 * Accepted: null, Boolean, Byte/Short/Int/Long (and BigInteger within 64 bits), Float,
 * Double, String, Char, Map with String keys, List/Set/any Iterable, Array and primitive
 * arrays, nested freely. Anything else (a Date, a data class, NaN) throws
 * [IllegalArgumentException] naming the path of the bad value, before the call reaches
 * Rust, so nothing is queued and nothing else is lost.
 */
object Values {
    @JvmStatic
    fun toValue(x: Any?, path: String = "value"): Value = when (x) {
        null -> Value.Null
        is Boolean -> Value.Bool(x)
        is Byte, is Short, is Int, is Long -> Value.Int((x as Number).toLong())
        is BigInteger -> {
            require(x.bitLength() < 64) { "$path: integer $x does not fit in 64 bits" }
            Value.Int(x.toLong())
        }
        // Through the decimal text: 0.1f is sent as 0.1, as written, not 0.10000000149.
        is Float -> finite(x.toString().toDouble(), path)
        is Double -> finite(x, path)
        is String -> Value.Text(x)
        is Char -> Value.Text(x.toString())
        is Map<*, *> -> Value.Object(toMap(x, path))
        is Iterable<*> -> Value.Array(x.mapIndexed { i, e -> toValue(e, "$path[$i]") })
        is Array<*> -> Value.Array(x.mapIndexed { i, e -> toValue(e, "$path[$i]") })
        is IntArray -> Value.Array(x.map { Value.Int(it.toLong()) })
        is LongArray -> Value.Array(x.map { Value.Int(it) })
        is DoubleArray -> Value.Array(x.mapIndexed { i, e -> finite(e, "$path[$i]") })
        is BooleanArray -> Value.Array(x.map { Value.Bool(it) })
        else -> throw IllegalArgumentException(
            "$path: unsupported type ${x.javaClass.name}; use null, Boolean, a number, " +
                "String, Map<String, *>, List or Array",
        )
    }

    /** A properties or traits map; `null` is an empty one. */
    @JvmStatic
    fun toMap(map: Map<*, *>?, path: String = "properties"): Map<String, Value> {
        if (map == null) return emptyMap()
        val out = HashMap<String, Value>(map.size)
        for ((k, v) in map) {
            require(k is String) { "$path: key $k is a ${k?.javaClass?.name ?: "null"}, not a String" }
            out[k] = toValue(v, "$path.$k")
        }
        return out
    }

    @JvmStatic
    fun fromValue(v: Value): Any? = when (v) {
        is Value.Null -> null
        is Value.Bool -> v.v
        is Value.Int -> v.v
        is Value.Double -> v.v
        is Value.Text -> v.v
        is Value.Array -> v.v.map { fromValue(it) }
        is Value.Object -> fromMap(v.v)
    }

    @JvmStatic
    fun fromMap(m: Map<String, Value>): MutableMap<String, Any?> =
        m.mapValuesTo(LinkedHashMap()) { fromValue(it.value) }

    private fun finite(d: Double, path: String): Value {
        require(d.isFinite()) { "$path: $d is not a finite number" }
        return Value.Double(d)
    }
}
