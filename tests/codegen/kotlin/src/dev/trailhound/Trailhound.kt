package dev.trailhound

/**
 * A stand-in for the bindings' `dev.trailhound.Trailhound` (bindings/kotlin), so the
 * generated tracker compiles here without the native library: the same five methods with
 * the same signatures (scripts/test-codegen.sh checks them against the real file), and it
 * records every call.
 */
class Trailhound {
    /** Every call: type, name, user or group id, properties. */
    val calls = mutableListOf<Map<String, Any?>>()

    fun track(event: String, properties: Map<String, Any?> = emptyMap()) {
        calls += mapOf("type" to "track", "name" to event, "properties" to properties)
    }

    fun identify(userId: String?, traits: Map<String, Any?> = emptyMap()) {
        calls += mapOf("type" to "identify", "userId" to userId, "properties" to traits)
    }

    fun screen(name: String, properties: Map<String, Any?> = emptyMap()) {
        calls += mapOf("type" to "screen", "name" to name, "properties" to properties)
    }

    fun page(name: String, properties: Map<String, Any?> = emptyMap()) {
        calls += mapOf("type" to "page", "name" to name, "properties" to properties)
    }

    fun group(groupId: String, traits: Map<String, Any?> = emptyMap()) {
        calls += mapOf("type" to "group", "groupId" to groupId, "properties" to traits)
    }
}
