package dev.trailhound

import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.io.TempDir
import java.nio.file.Path

/**
 * A test class's shared fixture: a temporary data directory, a loopback collector, and
 * the clients a test started, all closed after each test.
 */
abstract class CollectorTest {
    @TempDir
    lateinit var dir: Path
    protected val collector = TestCollector()
    protected val clients = mutableListOf<Trailhound>()

    @AfterEach
    fun closeClientsAndCollector() {
        clients.forEach { runCatching { it.close() } }
        collector.close()
    }
}
