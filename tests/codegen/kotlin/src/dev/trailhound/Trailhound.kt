package dev.trailhound

/**
 * A stand-in for the bindings' `dev.trailhound.Trailhound` (bindings/kotlin) for the quick
 * compile-break check against plan v2, which needs no native library and no UniFFI Kotlin:
 * the same five methods with the same signatures (scripts/test-codegen.sh checks them
 * against the real file). Plan v1's code is compiled and run against the real bindings.
 */
class Trailhound {
    fun track(event: String, properties: Map<String, Any?> = emptyMap()) {}

    fun identify(userId: String?, traits: Map<String, Any?> = emptyMap()) {}

    fun screen(name: String, properties: Map<String, Any?> = emptyMap()) {}

    fun page(name: String, properties: Map<String, Any?> = emptyMap()) {}

    fun group(groupId: String, traits: Map<String, Any?> = emptyMap()) {}
}
