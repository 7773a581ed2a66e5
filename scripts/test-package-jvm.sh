#!/usr/bin/env bash
# The JVM artifact as a new user meets it: a fresh Maven project in a temporary directory
# outside the repository, depending on dev.trailhound:trailhound:<version> from the local
# repository (~/.m2, where scripts/package-jvm.sh installed it), with
#   - the Java quickstart of docs/getting-started/jvm.md, run with `java -cp`;
#   - a Java `main` (Java 17), run likewise: builder config, a listener, track,
#     flushBlocking(java.time.Duration), try-with-resources, a transport written in Java,
#     and the FFI's numbers: `Stats` counters (delivered equals what the collector has),
#     a `PolicyOverrides` (flushAt sends without a flush) and a `Dropped` notification's
#     count: Java could use none of them while they were Kotlin's unsigned types;
#   - a Kotlin JUnit test, run by `mvn test`, and the page's Kotlin snippets, compiled.
# Both send to a real `trailhound collect`, which must have their events (names,
# properties, userId). JNA must load the library from the jar's linux-x86-64/ resource:
# no jna.library.path, nothing on LD_LIBRARY_PATH.
#
# Builds and installs the jar first (scripts/package-jvm.sh) unless TRAILHOUND_PACKAGE_BUILT=1.
# Installs what is missing, idempotently: JDK 17 and Maven (apt). Ends with
# `summary: N passed, N failed, N skipped`; exits non-zero on a failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=common.sh
. "$ROOT/scripts/common.sh"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n1)"
KOTLIN_VERSION=2.4.21
JUNIT_VERSION=6.1.3
WRITE_KEY="qs-jvm-key"
START=$SECONDS
PASSED=0
FAILED=0

if ! command -v mvn >/dev/null || ! command -v javac >/dev/null; then
    step "install JDK 17 and Maven"
    apt_install openjdk-17-jdk-headless maven
fi
package_first jvm
M2_JAR="$HOME/.m2/repository/dev/trailhound/trailhound/$VERSION/trailhound-$VERSION.jar"
if [ ! -f "$M2_JAR" ]; then
    fail "dev.trailhound:trailhound:$VERSION installed in ~/.m2"
    finish "package-jvm test"
fi

step "build the collector"
cargo build -q -p trailhound-cli --bin trailhound
TRAILHOUND="$TARGET_DIR/debug/trailhound"

WORK="$(mktemp -d)"
cleanup() {
    stop_collectors
    [ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

step "a running trailhound collect"
if ! start_collector "$TRAILHOUND" "$WORK/collect.log" --write-key "$WRITE_KEY"; then
    fail "trailhound collect started"
    finish "package-jvm test"
fi
URL="$COLLECTOR"
echo "collector: $URL"

# expect_events NAME USER EXPECTED_JSON: the collector's track events of USER are exactly
# EXPECTED_JSON ({event name: properties}), and every event it has is valid.
expect_events() {
    if python3 - "$URL" "$2" "$3" <<'PY'
import json, sys, urllib.request
url, user, expected = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
events = json.load(urllib.request.urlopen(url + "/api/events"))["events"]
assert all(e["valid"] for e in events), [e["error"] for e in events if not e["valid"]]
got = {e["name"]: e["json"].get("properties") for e in events
       if e["type"] == "track" and e["userId"] == user}
assert got == expected, f"got {got}, expected {expected}"
PY
    then pass "$1"; else fail "$1"; fi
}

step "a new Maven project depending on dev.trailhound:trailhound:$VERSION"
APP="$WORK/app"
mkdir -p "$APP/src/main/java/quickstart" "$APP/src/test/kotlin/quickstart"
cat >"$APP/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>example</groupId>
  <artifactId>quickstart</artifactId>
  <version>1.0</version>
  <properties>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
    <maven.compiler.release>17</maven.compiler.release>
    <kotlin.compiler.jvmTarget>17</kotlin.compiler.jvmTarget>
  </properties>
  <dependencies>
    <dependency>
      <groupId>dev.trailhound</groupId>
      <artifactId>trailhound</artifactId>
      <version>$VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.junit.jupiter</groupId>
      <artifactId>junit-jupiter</artifactId>
      <version>$JUNIT_VERSION</version>
      <scope>test</scope>
    </dependency>
  </dependencies>
  <build>
    <testSourceDirectory>src/test/kotlin</testSourceDirectory>
    <plugins>
      <plugin>
        <groupId>org.jetbrains.kotlin</groupId>
        <artifactId>kotlin-maven-plugin</artifactId>
        <version>$KOTLIN_VERSION</version>
        <executions>
          <execution>
            <id>test-compile</id>
            <goals><goal>test-compile</goal></goals>
          </execution>
        </executions>
      </plugin>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-compiler-plugin</artifactId>
        <version>3.14.0</version>
      </plugin>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-surefire-plugin</artifactId>
        <version>3.6.1</version>
      </plugin>
    </plugins>
  </build>
</project>
EOF

# The Java quickstart, as docs/getting-started/jvm.md shows it.
cat >"$APP/src/main/java/quickstart/Main.java" <<'EOF'
package quickstart;

import dev.trailhound.Transport;
import dev.trailhound.Trailhound;
import dev.trailhound.TrailhoundConfig;
import dev.trailhound.ffi.DeviceConditions;
import dev.trailhound.ffi.DropReason;
import dev.trailhound.ffi.Network;
import dev.trailhound.ffi.Notification;
import dev.trailhound.ffi.PolicyOverrides;
import dev.trailhound.ffi.Stats;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;

public final class Main {
    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    public static void main(String[] args) throws Exception {
        String endpoint = args[0];
        String writeKey = args[1];
        List<String> delivered = new CopyOnWriteArrayList<>();

        TrailhoundConfig config = TrailhoundConfig
            .builder(writeKey, endpoint, Files.createTempDirectory("trailhound").toString())
            .listener(n -> {
                if (n instanceof Notification.Delivered d) delivered.addAll(d.getMessageIds());
            })
            .build();
        try (Trailhound trailhound = Trailhound.setup(config)) {
            trailhound.identify("java-user");
            trailhound.track("Song Played", Map.of("title", "Nachtmusik", "seconds", 215));
            trailhound.track("App Opened");
            Stats stats = trailhound.flushBlocking(Duration.ofSeconds(10));
            // The counters as plain longs; the script compares this line with the collector.
            System.out.println("stats: delivered=" + stats.getDelivered()
                + " queued=" + stats.getQueuedEvents() + " requests=" + stats.getRequests());
            check(stats.getDelivered() == trailhound.stats().getDelivered(), "stats() agrees");
            check(stats.getRetry().getAttempts() == 0, "no failed attempt");
            check(trailhound.invalidCalls() == 0L, "no invalid call");
        }
        System.out.println("delivered " + delivered.size() + " events");

        // The app's own HTTP stack as the transport (OkHttp in an app; java.net.http here).
        HttpClient http = HttpClient.newBuilder().followRedirects(HttpClient.Redirect.NEVER).build();
        Transport transport = request -> {
            HttpRequest.Builder post = HttpRequest.newBuilder(URI.create(request.getUrl()))
                .POST(HttpRequest.BodyPublishers.ofByteArray(request.getBody()));
            request.getHeaders().forEach((name, value) -> {
                if (!name.equalsIgnoreCase("content-length")) post.header(name, value);
            });
            try {
                HttpResponse<Void> answer = http.send(post.build(), HttpResponse.BodyHandlers.discarding());
                return Transport.response(answer.statusCode(),
                    answer.headers().firstValue("Retry-After").orElse(null));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new java.io.IOException(e);
            }
        };
        TrailhoundConfig viaApp = TrailhoundConfig
            .builder(writeKey, endpoint, Files.createTempDirectory("trailhound").toString())
            .transport(transport)
            .build();
        try (Trailhound second = Trailhound.create(viaApp)) {
            // What the platform knows (here: charging on Wi-Fi), as docs/getting-started/jvm.md shows.
            second.setDeviceConditions(new DeviceConditions(0.9f, true, false, Network.WIFI, false));
            second.identify("java-transport-user", Map.of("plan", "pro"));
            second.track("Sent Through The App", Map.of("stack", "java.net.http"));
            second.flushBlocking(Duration.ofSeconds(10));
        }

        // Policy overrides from Java: flushAt = 2 sends two events by itself (after the
        // one-second gathering), with no flush call and the prompt delay ten minutes away.
        PolicyOverrides policy = new PolicyOverrides();
        policy.setFlushAt(2L);
        policy.setPromptDelayMs(600_000L);
        List<String> sentByPolicy = new CopyOnWriteArrayList<>();
        AtomicLong droppedByPlugin = new AtomicLong();
        TrailhoundConfig withPolicy = TrailhoundConfig
            .builder(writeKey, endpoint, Files.createTempDirectory("trailhound").toString())
            .policy(policy)
            .plugin(event -> "Secret".equals(event.getEvent()) ? null : event)
            .listener(n -> {
                if (n instanceof Notification.Delivered d) sentByPolicy.addAll(d.getMessageIds());
                if (n instanceof Notification.Dropped dropped && dropped.getReason() instanceof DropReason.Plugin) {
                    droppedByPlugin.addAndGet(dropped.getCount());
                }
            })
            .build();
        try (Trailhound third = Trailhound.create(withPolicy)) {
            third.identify("java-policy-user");
            third.track("Secret", Map.of("pin", 1234));
            third.track("Kept", Map.of("flushAt", 2));
            for (int i = 0; i < 150 && sentByPolicy.size() < 2; i++) Thread.sleep(100);
            Stats stats = third.stats();
            System.out.println("policy: delivered=" + stats.getDelivered() + " flushes="
                + stats.getFlushes() + " dropped.plugin=" + stats.getDropped().getPlugin()
                + " notified dropped=" + droppedByPlugin.get());
            check(sentByPolicy.size() == 2, "flushAt = 2 sent 2 events without a flush");
            check(stats.getDelivered() == 2L && stats.getQueuedEvents() == 0L, "stats count the delivery");
            check(droppedByPlugin.get() == 1L, "the Dropped notification counted 1");
            check(stats.getDropped().getPlugin() == 1L && stats.getDropped().getTotal() == 1L,
                "stats count the drop");
        }
        System.exit(delivered.size() >= 3 ? 0 : 1);
    }
}
EOF

# The Java quickstart of docs/getting-started/jvm.md, as a reader copies it (default package).
python3 - "$ROOT/docs/getting-started/jvm.md" "$URL" "$WRITE_KEY" >"$APP/src/main/java/Quickstart.java" <<'PY'
import re, sys
doc, url, key = sys.argv[1:4]
blocks = re.findall(r"```java\n(.*?)```", open(doc).read(), re.S)
assert len(blocks) == 1, f"{doc}: expected 1 java snippet, found {len(blocks)}"
quick = blocks[0].replace("http://127.0.0.1:8787", url).replace('"WRITE_KEY"', f'"{key}"')
assert url in quick and key in quick, "the quickstart no longer names the local collector"
sys.stdout.write(quick)
PY

# The page's Kotlin snippets, compiled (not run: one names a production endpoint) as
# functions beside the test, so that the page cannot drift from the API.
python3 - "$ROOT/docs/getting-started/jvm.md" >"$APP/src/test/kotlin/quickstart/DocSnippets.kt" <<'PY'
import re, sys
blocks = re.findall(r"```kotlin\n(.*?)```", open(sys.argv[1]).read(), re.S)
assert len(blocks) == 2, f"expected 2 kotlin snippets, found {len(blocks)}"
print("package quickstart\n")
print("import dev.trailhound.*\nimport dev.trailhound.ffi.*\nimport kotlin.time.Duration.Companion.seconds\n")
for i, b in enumerate(blocks):
    print(f"@Suppress(\"unused\")\nfun docSnippet{i}(consented: Boolean) {{\n{b}}}\n")
PY

cat >"$APP/src/test/kotlin/quickstart/QuickstartTest.kt" <<'EOF'
package quickstart

import dev.trailhound.Trailhound
import dev.trailhound.TrailhoundConfig
import kotlin.io.path.createTempDirectory
import kotlin.time.Duration.Companion.seconds
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test

class QuickstartTest {
    /** A Kotlin app's events reach the collector, and the client says so. */
    @Test
    fun eventsReachTheCollector() {
        val config = TrailhoundConfig(
            writeKey = System.getenv("TRAILHOUND_WRITE_KEY"),
            endpoint = System.getenv("TRAILHOUND_ENDPOINT"),
            dataDir = createTempDirectory("trailhound").toString(),
        )
        Trailhound.create(config).use { trailhound ->
            trailhound.identify("kotlin-user")
            trailhound.track("Level Finished", mapOf("level" to 3, "stars" to listOf(1, 2, 3)))
            trailhound.track("Purchase", mapOf("sku" to "gold", "price" to 4.99, "gift" to false))
            val stats = trailhound.flushBlocking(10.seconds)
            assertEquals(3L, stats.delivered)
            assertEquals(0L, stats.queuedEvents)
        }
    }
}
EOF

step "mvn test: compiles the Java main and runs the Kotlin JUnit test"
cd "$APP"
if TRAILHOUND_ENDPOINT="$URL" TRAILHOUND_WRITE_KEY="$WRITE_KEY" mvn -B -q test >"$WORK/mvn-test.log" 2>&1 \
    && grep -q 'tests="1"' target/surefire-reports/TEST-quickstart.QuickstartTest.xml \
    && grep -q 'failures="0"' target/surefire-reports/TEST-quickstart.QuickstartTest.xml; then
    pass "Kotlin JUnit test against the installed artifact (the Java sources and the page's Kotlin snippets compile)"
else
    sed 's/^/  | /' "$WORK/mvn-test.log" >&2
    fail "Kotlin JUnit test against the installed artifact (the Java sources and the page's Kotlin snippets compile)"
fi
expect_events "collector has the Kotlin test's events" kotlin-user \
    '{"Level Finished": {"level": 3, "stars": [1, 2, 3]}, "Purchase": {"sku": "gold", "price": 4.99, "gift": false}}'

step "the Java main, run with java -cp"
mvn -B -q dependency:build-classpath -Dmdep.outputFile="$WORK/cp.txt" >"$WORK/mvn-cp.log" 2>&1 \
    || sed 's/^/  | /' "$WORK/mvn-cp.log" >&2
if [ -d target/classes ] && [ -s "$WORK/cp.txt" ] \
    && env -u LD_LIBRARY_PATH java -Djna.debug_load=true -cp "target/classes:$(cat "$WORK/cp.txt")" \
        quickstart.Main "$URL" "$WRITE_KEY" >"$WORK/java.log" 2>&1; then
    pass "Java main runs (listener heard its 3 events delivered; flushAt, the plugin's drop and its count checked in Java)"
else
    sed 's/^/  | /' "$WORK/java.log" >&2
    fail "Java main runs (listener heard its 3 events delivered; flushAt, the plugin's drop and its count checked in Java)"
fi
# Stats.getDelivered() as Java printed it is what reached the collector from that user.
if python3 - "$URL" "$WORK/java.log" <<'PY'
import json, re, sys, urllib.request
url, log = sys.argv[1:3]
m = re.search(r"^stats: delivered=(\d+) queued=(\d+)", open(log).read(), re.M)
assert m, "the Java main printed no stats line"
events = json.load(urllib.request.urlopen(url + "/api/events"))["events"]
received = sum(1 for e in events if e["userId"] == "java-user")
assert (int(m[1]), int(m[2])) == (received, 0) and received == 3, f"{m[0]}; collector has {received}"
PY
then
    pass "Java read Stats: delivered equals the events the collector received (3), none queued"
else
    fail "Java read Stats: delivered equals the events the collector received (3), none queued"
fi
if grep -q "jar:file:$HOME/.m2/repository/dev/trailhound/trailhound/$VERSION/trailhound-$VERSION.jar!/linux-x86-64/libtrailhound_ffi.so" "$WORK/java.log"; then
    pass "JNA loaded libtrailhound_ffi from the installed jar's linux-x86-64/ resource"
else
    grep -i "trailhound_ffi" "$WORK/java.log" | sed 's/^/  | /' >&2 || true
    fail "JNA loaded libtrailhound_ffi from the installed jar's linux-x86-64/ resource"
fi
if (cd "$WORK" && env -u LD_LIBRARY_PATH java -cp "$APP/target/classes:$(cat "$WORK/cp.txt")" Quickstart \
    >"$WORK/quickstart.log" 2>&1); then
    pass "the Java quickstart of docs/getting-started/jvm.md runs"
else
    sed 's/^/  | /' "$WORK/quickstart.log" >&2
    fail "the Java quickstart of docs/getting-started/jvm.md runs"
fi
expect_events "collector has the Java quickstart's events" user-42 \
    '{"Song Played": {"title": "Nachtmusik", "seconds": 215}, "Playlist Created": {"name": "Road trip", "songs": 12}}'
expect_events "collector has the Java main's events" java-user \
    '{"Song Played": {"title": "Nachtmusik", "seconds": 215}, "App Opened": {}}'
expect_events "collector has the event sent through the Java transport" java-transport-user \
    '{"Sent Through The App": {"stack": "java.net.http"}}'
expect_events "collector has the event flushAt sent, not the one the Java plugin dropped" java-policy-user \
    '{"Kept": {"flushAt": 2}}'

finish "package-jvm test"
