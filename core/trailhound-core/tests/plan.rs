//! The validator against the shared tables (`tests/plan/*.json`, run by every platform),
//! the lint table, and unit tables for formats, naming, pattern portability and strip.
//! They use the built-in pattern engine and lint (the default `regex` and `lint` features).
#![cfg(all(feature = "regex", feature = "lint"))]

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{json, Value};
use trailhound_core::plan::model::{Case, Format};
use trailhound_core::plan::{formats, portable_pattern, Plan, Rule, ALL_RULES};
use trailhound_core::Message;

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/plan")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The wire event as a stamped [`Message`] (the fields the SDK adds, with fixed values).
fn message(event: &Value) -> Message {
    let mut m = event.clone();
    let obj = m.as_object_mut().expect("an event is an object");
    obj.entry("messageId").or_insert(json!("m1"));
    obj.entry("timestamp")
        .or_insert(json!("2026-12-02T10:00:00.000Z"));
    obj.entry("anonymousId").or_insert(json!("a1"));
    obj.insert("context".into(), json!({}));
    serde_json::from_value(m).expect("the event is a message")
}

fn pairs(violations: &[trailhound_core::plan::Violation]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = violations
        .iter()
        .map(|v| (v.rule.as_str().to_owned(), v.pointer.clone()))
        .collect();
    v.sort();
    v
}

/// Runs one table; returns the rules it expects.
fn run_table(name: &str) -> BTreeSet<String> {
    let table = fixture(name);
    let plan = Plan::parse(&table["plan"].to_string()).expect("the table's plan passes lint");
    let mut rules = BTreeSet::new();
    let mut failures = Vec::new();
    for case in table["cases"].as_array().expect("cases") {
        let label = case["name"].as_str().expect("name");
        let mut expected: Vec<(String, String)> = case["violations"]
            .as_array()
            .expect("violations")
            .iter()
            .map(|v| {
                let rule = v["rule"].as_str().expect("rule").to_owned();
                assert!(Rule::parse(&rule).is_some(), "{label}: unknown rule {rule}");
                rules.insert(rule.clone());
                (rule, v["pointer"].as_str().expect("pointer").to_owned())
            })
            .collect();
        expected.sort();
        let wire = plan.check_wire(&case["event"]);
        let native = plan.check(&message(&case["event"]));
        if pairs(&wire) != expected {
            failures.push(format!(
                "{label}: check_wire gave {wire:#?}, expected {expected:?}"
            ));
        }
        if native != wire {
            failures.push(format!(
                "{label}: check gave {native:#?}, check_wire {wire:#?}"
            ));
        }
        let mut sorted = wire.clone();
        sorted.sort_by(|a, b| (&a.pointer, a.rule).cmp(&(&b.pointer, b.rule)));
        if sorted != wire {
            failures.push(format!("{label}: not in (pointer, rule) order: {wire:#?}"));
        }
        for v in &wire {
            if v.expected.is_empty() || v.found.is_empty() {
                failures.push(format!("{label}: empty expected/found in {v:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    rules
}

/// Every case of the shared table gets its listed violations, from check_wire and check alike.
#[test]
fn shared_table() {
    run_table("cases.json");
}

/// The table of a plan that allows unplanned events (naming still applies).
#[test]
fn shared_table_unplanned_allowed() {
    run_table("cases-unplanned.json");
}

/// The shared tables exercise every rule id at least once.
#[test]
fn tables_cover_every_rule() {
    let mut seen = run_table("cases.json");
    seen.extend(run_table("cases-unplanned.json"));
    let missing: Vec<&str> = ALL_RULES
        .iter()
        .map(|r| r.as_str())
        .filter(|r| !seen.contains(*r))
        .collect();
    assert!(missing.is_empty(), "rules no case expects: {missing:?}");
}

/// Every plan of the lint table is refused at the listed place, with the listed words.
#[test]
fn lint_table() {
    let table = fixture("lint-cases.json");
    let mut failures = Vec::new();
    for case in table["cases"].as_array().expect("cases") {
        let label = case["name"].as_str().expect("name");
        // A string plan is the raw text (for JSON syntax errors).
        let text = match &case["plan"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match Plan::parse(&text) {
            Ok(_) => failures.push(format!("{label}: accepted")),
            Err(e) => {
                let at = case["at"].as_str().expect("at");
                let contains = case["contains"].as_str().expect("contains");
                if e.at != at || !e.message.contains(contains) {
                    failures.push(format!(
                        "{label}: got at {:?}: {:?}; expected at {at:?} containing {contains:?}",
                        e.at, e.message
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Patterns the portability check accepts: each also compiles with the built-in engine
/// (regex-lite's syntax, which it is tested against, and, checked
/// by hand with Node 20's `new RegExp(p, "su")`, with JavaScript).
const PORTABLE: &[&str] = &[
    "^s[0-9]+$",
    "a|",
    "()",
    "(?:ab)+",
    "[a-]",
    "[-a]",
    "[\\-]",
    "\\/",
    "[a-z]{1000}",
    "x{2}?",
    "a+?",
    "a??",
    ".{0}",
    "\\bfoo\\B",
    "[{}]",
    "[(]",
    "[.$^]",
    "[\\^]",
    "\\x41",
    "\\u0041",
    "\\u{1F3B5}",
    "^$",
    "é+",
    "[^a]",
    "[\\d-]",
    "\\t\\n\\r\\f\\v",
    "[\\w.]+@[\\w.]+",
];

/// Patterns refused as not portable, with a word of the reason.
const NOT_PORTABLE: &[(&str, &str)] = &[
    ("\\s", "\\s"),
    ("[\\S]", "\\S"),
    ("\\p{L}", "\\p"),
    ("\\P{L}", "\\P"),
    ("\\Aa", "\\A"),
    ("a\\z", "\\z"),
    ("\\Qa\\E", "\\Q"),
    ("\\h", "\\h"),
    ("(a)\\1", "\\1"),
    ("\\x{41}", "\\x"),
    ("\\a", "\\a"),
    ("\\-", "\\-"),
    ("\\0", "\\0"),
    ("\\uD83C\\uDFB5", "surrogate"),
    ("(?i)a", "(?"),
    ("(?P<n>a)", "(?"),
    ("(?<n>a)", "(?"),
    ("a(?=b)", "(?"),
    ("a(?!b)", "(?"),
    ("(?<=a)b", "(?"),
    ("[[:alpha:]]", "POSIX"),
    ("[a[b]]", "nested"),
    ("[a-z&&b]", "set operation"),
    ("[a--b]", "set operation"),
    ("[a~~b]", "set operation"),
    ("[\\b]", "\\b"),
    ("\\b{start}", "\\b"),
    ("[\\w-x]", "range"),
    ("[a-\\d]", "range"),
    ("[]a]", "empty class"),
    ("[^]", "empty class"),
    ("[abc", "unclosed"),
    ("a]", "lone ']'"),
    ("a}", "lone '}'"),
    ("a{", "quantifier"),
    ("a{,3}", "quantifier"),
    ("a{1001}", "above 1000"),
    ("*a", "nothing to repeat"),
    ("(*a)", "nothing to repeat"),
    ("a|*", "nothing to repeat"),
    ("^*", "repeated assertion"),
    ("\\b+", "repeated assertion"),
    ("a**", "after a quantifier"),
    ("a{2}{3}", "after a quantifier"),
    ("a+??", "after a quantifier"),
    ("a\\", "trailing backslash"),
];

/// The portable subset compiles with the built-in engine; the rest is refused, by lint too.
#[test]
fn pattern_portability() {
    let engine = trailhound_core::plan::BuiltinEngine;
    for p in PORTABLE {
        assert_eq!(portable_pattern(p), Ok(()), "{p}");
        assert!(
            trailhound_core::plan::PatternEngine::compile(&engine, p).is_ok(),
            "the built-in engine refuses {p}"
        );
    }
    for (p, word) in NOT_PORTABLE {
        match portable_pattern(p) {
            Ok(()) => panic!("{p} accepted"),
            Err(m) => assert!(m.contains(word), "{p}: {m} does not say {word}"),
        }
        let plan = json!({"plan": "p", "version": "1-0-0", "events": [{"type": "track",
            "name": "A", "schema": {"type": "object",
            "properties": {"x": {"type": "string", "pattern": p}}}}]});
        let e = Plan::parse(&plan.to_string()).expect_err(p);
        assert_eq!(e.at, "/events/0/schema/properties/x/pattern", "{p}");
    }
}

/// The built-in engine refuses what JavaScript refuses too; lint names the pattern.
#[test]
fn pattern_engine_refusals() {
    for p in ["a{2,1}", "(ab", "[z-a]", "a)"] {
        assert_eq!(
            portable_pattern(p),
            Ok(()),
            "{p} passes the portability scan"
        );
        let plan = json!({"plan": "p", "version": "1-0-0", "events": [{"type": "track",
            "name": "A", "schema": {"type": "object",
            "properties": {"x": {"type": "string", "pattern": p}}}}]});
        let e = Plan::parse(&plan.to_string()).expect_err(p);
        assert!(e.message.contains("invalid pattern"), "{p}: {}", e.message);
    }
}

/// `date-time`: RFC 3339 with calendar ranges; everything else is refused.
#[test]
fn format_date_time() {
    let good = [
        "2026-12-02T10:00:00Z",
        "2026-12-02t10:00:00z",
        "2026-12-02T10:00:00.000Z",
        "2026-12-02T10:00:00.123456789+01:00",
        "2024-02-29T23:59:60-05:30",
        "2000-02-29T00:00:00Z",
        "2026-01-31T23:59:59+23:59",
        "0000-01-01T00:00:00Z",
    ];
    let bad = [
        "",
        "2026-12-02",
        "2026-12-02T10:00:00",
        "2026-12-02 10:00:00Z",
        "2026-12-02T10:00Z",
        "2026-13-02T10:00:00Z",
        "2026-00-02T10:00:00Z",
        "2026-12-00T10:00:00Z",
        "2026-12-32T10:00:00Z",
        "2026-04-31T10:00:00Z",
        "2025-02-29T10:00:00Z",
        "1900-02-29T10:00:00Z",
        "2026-12-02T24:00:00Z",
        "2026-12-02T10:60:00Z",
        "2026-12-02T10:00:61Z",
        "2026-12-02T10:00:00.Z",
        "2026-12-02T10:00:00+2400",
        "2026-12-02T10:00:00+24:00",
        "2026-12-02T10:00:00+01:60",
        "2026-12-02T10:00:00Z ",
        "2026-12-02T10:00:00ZZ",
        "26-12-02T10:00:00Z",
        "2026-1-02T10:00:00Z",
        "２０２６-12-02T10:00:00Z",
        "2026-12-02T10:00:00+01:00:00",
    ];
    for s in good {
        assert!(formats::is_valid(Format::DateTime, s), "{s:?} refused");
    }
    for s in bad {
        assert!(!formats::is_valid(Format::DateTime, s), "{s:?} accepted");
    }
}

/// `email`: dot-atom `local@domain`, ASCII, with length limits.
#[test]
fn format_email() {
    let long_label = "a".repeat(63);
    let ok_long = format!("x@{long_label}.com");
    let good = [
        "ann@example.com",
        "ann.lee+music@mail.example.com",
        "a@b",
        "o'neil@example.ie",
        "x!#$%&'*+/=?^_`{|}~-@example.com",
        "user@sub-domain.example.co.uk",
        "1@2.3",
        ok_long.as_str(),
    ];
    let too_long_label = format!("x@{}a.com", long_label);
    let too_long_local = format!("{}@example.com", "a".repeat(65));
    let bad = [
        "",
        "ann",
        "@example.com",
        "ann@",
        "ann@@example.com",
        "ann@ex@ample.com",
        ".ann@example.com",
        "ann.@example.com",
        "an..n@example.com",
        "ann@example..com",
        "ann@.example.com",
        "ann@example.com.",
        "ann@-example.com",
        "ann@example-.com",
        "ann@exa_mple.com",
        "\"ann\"@example.com",
        "ann@[127.0.0.1]",
        "ann lee@example.com",
        "anné@example.com",
        "ann@exämple.com",
        too_long_label.as_str(),
        too_long_local.as_str(),
    ];
    for s in good {
        assert!(formats::is_valid(Format::Email, s), "{s:?} refused");
    }
    for s in bad {
        assert!(!formats::is_valid(Format::Email, s), "{s:?} accepted");
    }
}

/// `uri`: an absolute URI: a scheme, `:`, then URI characters and `%HH` escapes.
#[test]
fn format_uri() {
    let good = [
        "https://music.example/s/12?x=%20y#t",
        "http://[::1]:8080/",
        "mailto:ann@example.com",
        "urn:isbn:0451450523",
        "a:",
        "tel:+1-555-0100",
        "x-app+v1.2://open/player",
        "file:///tmp/a~b",
        "https://example.com/a!$&'()*+,;=:@",
    ];
    let bad = [
        "",
        "music.example/s/12",
        "//music.example",
        "/relative/path",
        "1http://example.com",
        "ht tp://example.com",
        "https://example.com/a b",
        "https://example.com/%zz",
        "https://example.com/%2",
        "https://example.com/é",
        "https://example.com/<x>",
        "https://example.com/\"q\"",
        "https://example.com/a\\b",
        "https://example.com/{x}",
        ":no-scheme",
        "_x:y",
    ];
    for s in good {
        assert!(formats::is_valid(Format::Uri, s), "{s:?} refused");
    }
    for s in bad {
        assert!(!formats::is_valid(Format::Uri, s), "{s:?} accepted");
    }
}

/// Naming conventions on a table of names: each case accepts its own and refuses the rest.
#[test]
fn naming_conventions() {
    let table: &[(Case, &[&str], &[&str])] = &[
        (
            Case::SnakeCase,
            &["song_played", "a", "song2", "mp3_played", "a_1"],
            &[
                "Song_played",
                "song__played",
                "_song",
                "song_",
                "songPlayed",
                "2song",
                "song-played",
                "song played",
                "",
                "sóng",
            ],
        ),
        (
            Case::KebabCase,
            &["song-played", "a", "song2-x"],
            &[
                "song--played",
                "-song",
                "song-",
                "song_played",
                "Song-played",
                "2-song",
                "",
            ],
        ),
        (
            Case::CamelCase,
            &["songPlayed", "a", "mp3Played", "songID"],
            &[
                "SongPlayed",
                "song_played",
                "2song",
                "song played",
                "song-played",
                "",
            ],
        ),
        (
            Case::PascalCase,
            &["SongPlayed", "A", "MP3Played"],
            &["songPlayed", "Song_Played", "2Song", "Song Played", ""],
        ),
        (
            Case::TitleCase,
            &[
                "Song Played",
                "Player",
                "Top 10 Viewed",
                "MP3 Played",
                "Song Played Twice",
            ],
            &[
                "song played",
                "Song played",
                "Song  Played",
                " Song",
                "Song ",
                "10 Songs",
                "Song_Played",
                "Song-Played",
                "Sóng",
                "",
            ],
        ),
    ];
    for (case, good, bad) in table {
        for name in *good {
            assert!(formats::follows(*case, name), "{case:?} refuses {name:?}");
        }
        for name in *bad {
            assert!(!formats::follows(*case, name), "{case:?} accepts {name:?}");
        }
    }
}

fn strip_plan() -> Plan {
    Plan::parse(
        &json!({"plan": "s", "version": "1-0-0", "events": [
            {"type": "track", "name": "A", "schema": {"type": "object",
              "additionalProperties": false,
              "properties": {
                "keep": {"type": "string"},
                "nested": {"type": "object", "additionalProperties": false,
                           "properties": {"k": {}}},
                "open": {"type": "object", "properties": {"k": {}}},
                "list": {"type": "array", "items": {"type": "object",
                         "additionalProperties": false, "properties": {"k": {}}}},
                "extra": {"type": "object",
                          "additionalProperties": {"type": "object",
                              "additionalProperties": false, "properties": {"k": {}}}}}}},
            {"type": "identify", "schema": {"type": "object", "additionalProperties": false,
              "properties": {"email": {"type": "string"}}}},
            {"type": "track", "name": "Open", "schema": {"type": "object"}}
        ]})
        .to_string(),
    )
    .expect("strip plan")
}

/// strip_unplanned removes what additionalProperties: false refuses, at every depth, and
/// the event then passes.
#[test]
fn strip_removes_unplanned_at_every_depth() {
    let plan = strip_plan();
    let event = json!({"type": "track", "event": "A", "properties": {
        "keep": "x", "drop": 1, "a/b": 2,
        "nested": {"k": 1, "x": 2},
        "open": {"k": 1, "x": 2},
        "list": [{"k": 1}, {"k": 2, "x": 3}],
        "extra": {"any": {"k": 1, "y": 2}}}});
    let mut msg = message(&event);
    let before = plan.check(&msg);
    assert!(before.iter().all(|v| v.rule == Rule::AdditionalProperties));
    let removed = plan.strip_unplanned(&mut msg);
    assert_eq!(
        removed,
        [
            "/properties/a~1b",
            "/properties/drop",
            "/properties/extra/any/y",
            "/properties/list/1/x",
            "/properties/nested/x",
        ]
    );
    let before_pointers: Vec<&str> = before.iter().map(|v| v.pointer.as_str()).collect();
    assert_eq!(before_pointers, removed);
    assert_eq!(plan.check(&msg), []);
    let props = msg.properties.as_ref().expect("properties");
    assert_eq!(props["open"], json!({"k": 1, "x": 2}));
    assert_eq!(props["keep"], json!("x"));
}

/// strip_unplanned leaves unplanned events, open schemas and wrong-typed values alone, and
/// strips identify traits.
#[test]
fn strip_leaves_the_rest_alone() {
    let plan = strip_plan();
    for event in [
        json!({"type": "track", "event": "Open", "properties": {"x": 1}}),
        json!({"type": "track", "event": "Unplanned", "properties": {"x": 1}}),
        json!({"type": "track", "event": "A", "properties": {"nested": "not an object"}}),
        json!({"type": "screen", "name": "A", "properties": {"x": 1}}),
    ] {
        let mut msg = message(&event);
        let copy = msg.clone();
        assert_eq!(
            plan.strip_unplanned(&mut msg),
            Vec::<String>::new(),
            "{event}"
        );
        assert_eq!(msg, copy);
    }
    let mut msg = message(&json!({"type": "identify", "userId": "u1",
        "traits": {"email": "a@b.c", "name": "Ann"}}));
    assert_eq!(plan.strip_unplanned(&mut msg), ["/traits/name"]);
    assert_eq!(msg.traits, json!({"email": "a@b.c"}).as_object().cloned());
}

/// Violations carry the event label and human text for expected and found.
#[test]
fn violation_details() {
    let table = fixture("cases.json");
    let plan = Plan::parse(&table["plan"].to_string()).expect("plan");
    let v = plan.check_wire(&json!({"type": "track", "event": "Song Played",
        "properties": {"song_id": "s1", "duration_s": "200"}}));
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].event, "Song Played");
    assert_eq!(v[0].expected, "integer");
    assert_eq!(v[0].found, "string \"200\"");
    let v = plan.check_wire(&json!({"type": "screen", "name": "Player",
        "properties": {"from": "radio"}}));
    assert_eq!(v[0].event, "screen:Player");
    assert_eq!(v[0].expected, "one of [\"home\", \"search\"]");
    let v = plan.check_wire(&json!({"type": "identify", "traits": {"age": 1}}));
    assert_eq!(v[0].event, "identify");
    assert_eq!(
        (v[0].rule, v[0].expected.as_str()),
        (Rule::Minimum, ">= 13")
    );
    assert_eq!((v[1].rule, v[1].found.as_str()), (Rule::Required, "absent"));
    let v = plan.check_wire(&json!({"type": "track", "event": "Song Played",
        "properties": {"song_id": "s1", "duration_s": 1, "genre": 2}}));
    assert_eq!(v[0].expected, "string or null");
    assert_eq!(v[0].found, "integer 2");
}

/// Wire events that carry nothing to check, or odd shapes, get a verdict without panics.
#[test]
fn wire_edge_cases() {
    let table = fixture("cases.json");
    let plan = Plan::parse(&table["plan"].to_string()).expect("plan");
    let rules = |e: Value| pairs(&plan.check_wire(&e));
    assert_eq!(rules(json!({"type": "alias", "userId": "u2"})), []);
    assert_eq!(rules(json!({"type": "click"})), []);
    assert_eq!(rules(json!({"event": "Song Played"})), []);
    assert_eq!(rules(json!("track")), []);
    assert_eq!(
        rules(json!({"type": "track", "properties": {}})),
        [("unplanned_event".into(), "/event".into())]
    );
    assert_eq!(
        rules(json!({"type": "track", "event": "Song Played", "properties": [1]})),
        [("type".into(), "/properties".into())]
    );
    assert_eq!(
        rules(json!({"type": "track", "event": "Song Played"})),
        [
            ("required".into(), "/properties/duration_s".into()),
            ("required".into(), "/properties/song_id".into())
        ]
    );
    assert_eq!(
        rules(json!({"type": "group", "groupId": "g1", "traits": "pro"})),
        [("type".into(), "/traits".into())]
    );
    // null reads as absent, as a Message reads it.
    let null_traits = json!({"type": "identify", "userId": "u1", "traits": null});
    assert_eq!(
        rules(null_traits.clone()),
        [("required".into(), "/traits/email".into())]
    );
    assert_eq!(
        plan.check(&message(&null_traits)),
        plan.check_wire(&null_traits)
    );
}

/// Schemas nest 32 levels deep at most; 32 is accepted and checked to the bottom.
#[test]
fn nesting_limit() {
    let mut schema = json!({"type": "string"});
    let mut value = json!(1);
    for _ in 0..32 {
        schema = json!({"type": "object", "properties": {"a": schema}});
        value = json!({ "a": value });
    }
    let plan = json!({"plan": "d", "version": "1-0-0",
        "events": [{"type": "track", "name": "A", "schema": schema}]});
    let plan = Plan::parse(&plan.to_string()).expect("32 levels");
    let v = plan.check_wire(&json!({"type": "track", "event": "A", "properties": value["a"]}));
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].pointer, format!("/properties{}", "/a".repeat(31)));
}

/// A plan's version and id are kept; parse then check give the same verdict as compile.
#[test]
fn accessors() {
    let table = fixture("cases.json");
    let plan = Plan::parse(&table["plan"].to_string()).expect("plan");
    assert_eq!(plan.id(), "music-app");
    assert_eq!(plan.version(), "1-0-0");
    let again =
        Plan::compile(plan.file().clone(), &trailhound_core::plan::BuiltinEngine).expect("compile");
    assert_eq!(again.file(), plan.file());
}

mod alloc_count {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    }

    /// Counts the allocations of the current thread.
    pub struct Counting;

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    /// How many allocations `f` made on this thread.
    pub fn count<T>(f: impl FnOnce() -> T) -> usize {
        let before = ALLOCATIONS.with(Cell::get);
        let out = f();
        let after = ALLOCATIONS.with(Cell::get);
        drop(out);
        after - before
    }
}

#[global_allocator]
static ALLOC: alloc_count::Counting = alloc_count::Counting;

/// Checking an event that passes allocates nothing (check and check_wire), with naming
/// conventions, patterns, formats, nested objects and arrays.
#[test]
fn passing_check_allocates_nothing() {
    let table = fixture("cases.json");
    let plan = Plan::parse(&table["plan"].to_string()).expect("plan");
    let mut passing = 0;
    for case in table["cases"].as_array().expect("cases") {
        if !case["violations"].as_array().expect("list").is_empty() {
            continue;
        }
        passing += 1;
        let msg = message(&case["event"]);
        let label = case["name"].as_str().expect("name");
        // The first match of a pattern on a thread may build the engine's cache.
        plan.check(&msg);
        assert_eq!(alloc_count::count(|| plan.check(&msg)), 0, "{label}");
        assert_eq!(
            alloc_count::count(|| plan.check_wire(&case["event"])),
            0,
            "{label}"
        );
    }
    assert!(passing >= 10, "only {passing} passing cases");
    let failing = message(&json!({"type": "track", "event": "Song Played", "properties": {}}));
    assert!(
        alloc_count::count(|| plan.check(&failing)) > 0,
        "the counter counts"
    );
}

/// The plans kept in the repository (the example app's, the codegen fixtures) pass lint.
#[test]
fn repository_plans_pass_lint() {
    for name in [
        "examples/music/plan.json",
        "tests/codegen/plan-v1.json",
        "tests/codegen/plan-v2.json",
    ] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        if let Err(e) = Plan::parse(&text) {
            panic!("{name}: {e}");
        }
    }
}

/// The hand-written plan parser reads every plan of the tables as the model's serde
/// derives do, and refuses what they refuse (the lint table's format errors).
#[test]
fn parse_agrees_with_serde() {
    use trailhound_core::plan::PlanFile;
    let mut plans = vec![
        fixture("cases.json")["plan"].clone(),
        fixture("cases-unplanned.json")["plan"].clone(),
        json!({"plan": "n", "version": "1-0-0", "description": null, "naming": {"events": null},
               "events": [{"type": "identify", "name": null, "schema": {"type": null,
               "const": null, "enum": null, "minimum": null, "items": null, "format": null,
               "additionalProperties": null, "properties": {"a": {"type": ["string", "null"],
               "additionalProperties": {"type": "object"}, "minLength": 0}}}}]}),
    ];
    for case in fixture("lint-cases.json")["cases"]
        .as_array()
        .expect("cases")
    {
        plans.push(case["plan"].clone());
    }
    for plan in plans {
        let text = plan.to_string();
        let serde: Result<PlanFile, _> = serde_json::from_value(plan.clone());
        match (Plan::parse(&text), serde) {
            (Ok(p), Ok(s)) => assert_eq!(p.file(), &s, "{text}"),
            (Err(e), Ok(s)) => {
                // Lint refused it; the format itself must be fine: compile says so.
                let again = Plan::compile(s, &trailhound_core::plan::BuiltinEngine);
                assert_eq!(again.err(), Some(e), "{text}");
            }
            (Ok(_), Err(e)) => panic!("accepted what serde refuses ({e}): {text}"),
            (Err(_), Err(_)) => {}
        }
    }
}

/// Many violations come back in (pointer, rule) order: the sort holds for long lists.
#[test]
fn many_violations_sorted() {
    let plan = Plan::parse(
        &json!({"plan": "m", "version": "1-0-0",
            "naming": {"properties": "snake_case"},
            "events": [{"type": "track", "name": "A", "schema": {"type": "object",
                "properties": {"list": {"type": "array", "items": {"type": "string"}}}}}]})
        .to_string(),
    )
    .expect("plan");
    let list: Vec<Value> = (0..500).map(|i| json!({ format!("Bad{i}"): i })).collect();
    let v = plan.check_wire(&json!({"type": "track", "event": "A",
        "properties": {"list": list, "Zed": 1, "aB": 2}}));
    // Each element: a type violation and a property name; then Zed and aB.
    assert_eq!(v.len(), 1002);
    let keys: Vec<(&str, Rule)> = v.iter().map(|v| (v.pointer.as_str(), v.rule)).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}

/// A small deterministic generator (xorshift) for the no-panic sweeps below.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn string(&mut self, alphabet: &[char], max: usize) -> String {
        let len = (self.next() % (max as u64 + 1)) as usize;
        (0..len)
            .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize])
            .collect()
    }
}

/// Random patterns of regex syntax never panic the portability scan or lint, and every
/// pattern the scan accepts either compiles or is refused by the engine with an error.
#[test]
fn random_patterns_do_not_panic() {
    let alphabet: Vec<char> = "ab\\[]{}()^$.*+?|-:,0123456789dswbuxpPAzQE&~=!<>é🎵"
        .chars()
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut accepted = 0;
    for _ in 0..5_000 {
        let p = rng.string(&alphabet, 12);
        let portable = portable_pattern(&p).is_ok();
        let plan = json!({"plan": "r", "version": "1-0-0", "events": [{"type": "track",
            "name": "A", "schema": {"type": "object",
            "properties": {"x": {"type": "string", "pattern": p}}}}]});
        let parsed = Plan::parse(&plan.to_string());
        if let Err(e) = &parsed {
            if portable {
                assert!(e.message.contains("invalid pattern"), "{p:?}: {e}");
            }
        }
        if let Ok(plan) = parsed {
            accepted += 1;
            let s = rng.string(&alphabet, 8);
            let _ = plan.check_wire(&json!({"type": "track", "event": "A",
                "properties": {"x": s}}));
        }
    }
    assert!(accepted > 100, "only {accepted} random patterns compiled");
}

/// Random near-misses of each format never panic, and the formats agree with their
/// definition on a few mutations of good values.
#[test]
fn random_format_inputs_do_not_panic() {
    let alphabet: Vec<char> = "0123456789-:T.Zz+@a.%/é ".chars().collect();
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let s = rng.string(&alphabet, 30);
        for f in [Format::DateTime, Format::Email, Format::Uri] {
            let _ = formats::is_valid(f, &s);
        }
    }
    // Truncating a good date-time anywhere makes it invalid.
    let good = "2026-12-02T10:00:00.5+01:00";
    for cut in 0..good.len() {
        assert!(!formats::is_date_time(&good[..cut]), "{}", &good[..cut]);
    }
}
