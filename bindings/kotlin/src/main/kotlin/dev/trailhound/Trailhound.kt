package dev.trailhound

import dev.trailhound.ffi.ContextInfo
import dev.trailhound.ffi.DeliveryListener
import dev.trailhound.ffi.DeviceConditions
import dev.trailhound.ffi.Event
import dev.trailhound.ffi.EventPlugin
import dev.trailhound.ffi.EventType
import dev.trailhound.ffi.HttpRequest
import dev.trailhound.ffi.HttpResponse
import dev.trailhound.ffi.HttpTransport
import dev.trailhound.ffi.Notification
import dev.trailhound.ffi.PlanMode
import dev.trailhound.ffi.PolicyOverrides
import dev.trailhound.ffi.Stats
import dev.trailhound.ffi.TrailhoundClient
import dev.trailhound.ffi.Config as FfiConfig
import kotlin.time.Duration
import kotlin.time.Duration.Companion.seconds

/** Sends upload requests through the app's HTTP stack (OkHttp…). Throw for a network error. */
fun interface Transport {
    // @Throws: so that a transport written in Java may throw IOException, a checked exception.
    @Throws(java.io.IOException::class)
    fun send(request: HttpRequest): HttpResponse

    companion object {
        /**
         * An [HttpResponse], `Retry-After` optional. Unlike the constructor it refuses a status
         * outside 0..65535 at once, which Rust would otherwise take for a network error.
         */
        @JvmStatic
        @JvmOverloads
        fun response(status: Int, retryAfter: String? = null): HttpResponse {
            require(status in 0..0xFFFF) { "status $status is not an HTTP status" }
            return HttpResponse(status, retryAfter)
        }
    }
}

/** Sees every event before it is queued; returns it (changed or not) or null to drop it. */
fun interface Plugin {
    fun process(event: TrailhoundEvent): TrailhoundEvent?
}

/**
 * Hears deliveries, drops, failures, tracking-plan violations and endpoints opening or closing
 * ([Notification.EndpointOpened], [Notification.EndpointClosed]), on the SDK's background thread.
 */
fun interface Listener {
    fun onNotification(notification: Notification)
}

/** An event as a [Plugin] sees it, with plain Kotlin maps. `type` and `messageId` are fixed. */
data class TrailhoundEvent(
    val type: EventType,
    val messageId: String,
    val timestamp: String,
    val anonymousId: String?,
    val userId: String?,
    val event: String?,
    val name: String?,
    val groupId: String?,
    val previousId: String?,
    val properties: Map<String, Any?>?,
    val traits: Map<String, Any?>?,
    val context: Map<String, Any?>,
)

/**
 * Everything needed to start, with no Android `Context`: the platform glue
 * ([dev.trailhound.android.PlatformGlue]) forwards device state separately.
 * [toString] leaves the write key out, so that logging a config never logs the key.
 */
data class TrailhoundConfig(
    val writeKey: String,
    val endpoint: String,
    val dataDir: String,
    val policy: PolicyOverrides? = null,
    val context: ContextInfo? = null,
    val conditions: DeviceConditions? = null,
    /** Replaces the built-in HTTP client; required if the library was built without it. */
    val transport: Transport? = null,
    val plugins: List<Plugin> = emptyList(),
    val listeners: List<Listener> = emptyList(),
    /** A fixed seed for the retry jitter (tests); any 64 bits. */
    val jitterSeed: Long? = null,
    /** A tracking plan's JSON text (bundled with the app); at most one of [plan] and [planFile]. */
    val plan: String? = null,
    /** The path of a tracking plan file. */
    val planFile: String? = null,
    /** What the plan does to an event that breaks it; [PlanMode.REPORT] when null. */
    val planMode: PlanMode? = null,
    /**
     * Endpoints to fall back on, in order, after [endpoint] (at most 3 with the default
     * `maxEndpoints` of 4). Each endpoint has a circuit breaker: a batch that fails on one goes
     * to the next at once; `stats().endpoints` has each one's state.
     */
    val fallbackEndpoints: List<String> = emptyList(),
) {
    // A data class would print every property; the write key must not reach a log.
    override fun toString(): String =
        "TrailhoundConfig(writeKey=<redacted>, endpoint=$endpoint, dataDir=$dataDir, " +
            "policy=$policy, context=$context, conditions=$conditions, " +
            "transport=${transport?.javaClass?.name}, plugins=${plugins.size}, " +
            "listeners=${listeners.size}, jitterSeed=$jitterSeed, " +
            "plan=${if (plan == null) null else "<set>"}, planFile=$planFile, planMode=$planMode, " +
            "fallbackEndpoints=$fallbackEndpoints)"

    /**
     * Builds a [TrailhoundConfig] from Java without passing all fifteen constructor
     * arguments. Kotlin code uses named arguments.
     *
     * ```java
     * TrailhoundConfig config = TrailhoundConfig.builder(writeKey, endpoint, dataDir)
     *     .fallbackEndpoints(List.of("https://backup.example.com"))
     *     .build();
     * ```
     */
    class Builder(private val writeKey: String, private val endpoint: String, private val dataDir: String) {
        private var policy: PolicyOverrides? = null
        private var context: ContextInfo? = null
        private var conditions: DeviceConditions? = null
        private var transport: Transport? = null
        private val plugins = ArrayList<Plugin>()
        private val listeners = ArrayList<Listener>()
        private var jitterSeed: Long? = null
        private var plan: String? = null
        private var planFile: String? = null
        private var planMode: PlanMode? = null
        private var fallbackEndpoints: List<String> = emptyList()

        fun policy(policy: PolicyOverrides?) = apply { this.policy = policy }
        fun context(context: ContextInfo?) = apply { this.context = context }
        fun conditions(conditions: DeviceConditions?) = apply { this.conditions = conditions }
        fun transport(transport: Transport?) = apply { this.transport = transport }
        fun plugin(plugin: Plugin) = apply { plugins.add(plugin) }
        fun listener(listener: Listener) = apply { listeners.add(listener) }
        /** A fixed seed for the retry jitter (tests); any 64 bits. */
        fun jitterSeed(seed: Long?) = apply { jitterSeed = seed }
        fun plan(planJson: String?) = apply { plan = planJson }
        fun planFile(path: String?) = apply { planFile = path }
        fun planMode(mode: PlanMode?) = apply { planMode = mode }
        fun fallbackEndpoints(endpoints: List<String>) = apply { fallbackEndpoints = endpoints.toList() }

        fun build() = TrailhoundConfig(
            writeKey = writeKey,
            endpoint = endpoint,
            dataDir = dataDir,
            policy = policy,
            context = context,
            conditions = conditions,
            transport = transport,
            plugins = plugins.toList(),
            listeners = listeners.toList(),
            jitterSeed = jitterSeed,
            plan = plan,
            planFile = planFile,
            planMode = planMode,
            fallbackEndpoints = fallbackEndpoints,
        )
    }

    companion object {
        /** A [Builder], for Java. */
        @JvmStatic
        fun builder(writeKey: String, endpoint: String, dataDir: String) = Builder(writeKey, endpoint, dataDir)
    }
}

/** Milliseconds for the FFI: a negative duration is zero; Rust clamps very long ones. */
private fun Duration.toFfiMillis(): Long = inWholeMilliseconds.coerceAtLeast(0)

/** The same for a `java.time.Duration`; one too long for a Long of milliseconds is the longest. */
private fun java.time.Duration.toFfiMillis(): Long =
    if (isNegative) 0L else runCatching { toMillis() }.getOrDefault(Long.MAX_VALUE)

/**
 * The Trailhound client. Every method is safe to call from any thread; `track()` returns
 * without waiting for the disk or the network. Errors of the core arrive as
 * [dev.trailhound.ffi.TrailhoundException]; bad property values as [IllegalArgumentException].
 *
 * ```
 * val trailhound = Trailhound.setup(TrailhoundConfig(writeKey, endpoint, filesDir.path))
 * trailhound.track("Song Played", mapOf("title" to "Nachtmusik", "seconds" to 215))
 * ```
 */
class Trailhound private constructor(private val client: TrailhoundClient) : AutoCloseable {
    companion object {
        @Volatile
        private var instance: Trailhound? = null

        /** Starts the app-wide client (call once, in `Application.onCreate`). */
        @JvmStatic
        @Synchronized
        fun setup(config: TrailhoundConfig): Trailhound {
            check(instance == null) { "Trailhound.setup was already called" }
            return create(config).also { instance = it }
        }

        /** The client started by [setup]. */
        @JvmStatic
        val shared: Trailhound
            get() = instance ?: throw IllegalStateException("call Trailhound.setup first")

        /** A client that is not the app-wide one (tests, several write keys). */
        @JvmStatic
        fun create(config: TrailhoundConfig): Trailhound {
            val ffi = FfiConfig(
                writeKey = config.writeKey,
                endpoint = config.endpoint,
                fallbackEndpoints = config.fallbackEndpoints,
                dataDir = config.dataDir,
                policy = config.policy,
                context = config.context,
                conditions = config.conditions,
                jitterSeed = config.jitterSeed,
                planJson = config.plan,
                planFile = config.planFile,
                planMode = config.planMode,
            )
            return Trailhound(
                TrailhoundClient(
                    ffi,
                    config.transport?.let(::TransportAdapter),
                    config.plugins.map(::PluginAdapter),
                    config.listeners.map(::ListenerAdapter),
                ),
            )
        }
    }

    @JvmOverloads
    fun track(event: String, properties: Map<String, Any?> = emptyMap()) =
        client.track(event, Values.toMap(properties, "properties"))

    @JvmOverloads
    fun identify(userId: String?, traits: Map<String, Any?> = emptyMap()) =
        client.identify(userId, Values.toMap(traits, "traits"))

    @JvmOverloads
    fun screen(name: String, properties: Map<String, Any?> = emptyMap()) =
        client.screen(name, Values.toMap(properties, "properties"))

    @JvmOverloads
    fun page(name: String, properties: Map<String, Any?> = emptyMap()) =
        client.page(name, Values.toMap(properties, "properties"))

    @JvmOverloads
    fun group(groupId: String, traits: Map<String, Any?> = emptyMap()) =
        client.group(groupId, Values.toMap(traits, "traits"))

    fun alias(newUserId: String) = client.alias(newUserId)

    /** Asks for everything queued to be sent now; returns at once. */
    fun flush() = client.flush()

    /** Sends now and waits until that flush is over, at most [timeout]. Not on the main thread. */
    fun flushBlocking(timeout: Duration = 5.seconds): Stats =
        client.flushBlocking(timeout.toFfiMillis())

    /** [flushBlocking] for Java, which cannot call the `kotlin.time.Duration` one. */
    fun flushBlocking(timeout: java.time.Duration): Stats =
        client.flushBlocking(timeout.toFfiMillis())

    fun reset() = client.reset()
    fun optOut() = client.optOut()
    fun optIn() = client.optIn()
    val isOptedOut: Boolean get() = client.isOptedOut()
    fun setDeviceConditions(conditions: DeviceConditions) = client.setDeviceConditions(conditions)
    fun appForegrounded() = client.appForegrounded()
    fun appBackgrounded() = client.appBackgrounded()
    val anonymousId: String get() = client.anonymousId()
    val userId: String? get() = client.userId()
    fun stats(): Stats = client.stats()
    fun invalidCalls(): Long = client.invalidCalls()

    /** Commits, tries one last flush within [timeout], and stops; the rest stays queued. */
    fun shutdown(timeout: Duration = 2.seconds) =
        client.shutdown(timeout.toFfiMillis())

    /** [shutdown] for Java, which cannot call the `kotlin.time.Duration` one. */
    fun shutdown(timeout: java.time.Duration) =
        client.shutdown(timeout.toFfiMillis())

    override fun close() {
        try {
            shutdown()
        } finally {
            client.close()
            synchronized(Companion) { if (instance === this) instance = null }
        }
    }
}

/**
 * Runs host code for Rust. UniFFI turns an Exception into an error value but lets an
 * Error (StackOverflowError, AssertionError) escape into JNA; wrapping keeps every
 * failure an error value on the Rust side.
 */
private inline fun <T> guarded(block: () -> T): T = try {
    block()
} catch (e: Error) {
    throw RuntimeException(e.toString(), e)
}

private class TransportAdapter(val t: Transport) : HttpTransport {
    override fun send(request: HttpRequest): HttpResponse = guarded { t.send(request) }
}

private class ListenerAdapter(val l: Listener) : DeliveryListener {
    override fun onNotification(notification: Notification) = guarded { l.onNotification(notification) }
}

private class PluginAdapter(val p: Plugin) : EventPlugin {
    override fun process(event: Event): Event? = guarded {
        val seen = TrailhoundEvent(
            type = event.kind,
            messageId = event.messageId,
            timestamp = event.timestamp,
            anonymousId = event.anonymousId,
            userId = event.userId,
            event = event.event,
            name = event.name,
            groupId = event.groupId,
            previousId = event.previousId,
            properties = event.properties?.let(Values::fromMap),
            traits = event.traits?.let(Values::fromMap),
            context = Values.fromMap(event.context),
        )
        p.process(seen)?.let {
            event.copy(
                timestamp = it.timestamp,
                anonymousId = it.anonymousId,
                userId = it.userId,
                event = it.event,
                name = it.name,
                groupId = it.groupId,
                previousId = it.previousId,
                properties = it.properties?.let { m -> Values.toMap(m, "properties") },
                traits = it.traits?.let { m -> Values.toMap(m, "traits") },
                context = Values.toMap(it.context, "context"),
            )
        }
    }
}
