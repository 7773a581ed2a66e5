//! `trailhound plan …` run as a binary: lint, check, diff and import.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

mod common;
use common::{cli, failed, offline_device, ok, repo, s, stderr, stdout};

fn music_plan_path() -> PathBuf {
    repo().join("examples/music/plan.json")
}

fn music_plan() -> Value {
    serde_json::from_str(&std::fs::read_to_string(music_plan_path()).unwrap()).unwrap()
}

fn write_json(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(v).unwrap()).unwrap();
    p
}

/// The index in the music plan of an event, by name (`None` for identify).
fn event<'a>(plan: &'a mut Value, name: Option<&str>) -> &'a mut Value {
    plan["events"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|e| e.get("name").and_then(Value::as_str) == name)
        .unwrap_or_else(|| panic!("no event {name:?}"))
}

/// The music app's plan lints, and the summary names its id, version and events.
#[test]
fn lint_accepts_the_music_plan() {
    let out = ok(&cli(&["plan", "lint", s(&music_plan_path())]));
    assert!(out.contains("plan music-app version 1-0-0"), "{out}");
    assert!(out.contains("6 events"), "{out}");
    assert!(out.contains("4 track"), "{out}");
}

/// Bad plans are refused with exit 1 and `PLAN: at <pointer>: <message>` naming the place.
#[test]
fn lint_refuses_bad_plans_naming_the_place() {
    let tmp = tempfile::tempdir().unwrap();
    let mut contradictory = music_plan();
    event(&mut contradictory, Some("Song Played"))["schema"]["properties"]["position_ms"]
        ["maximum"] = json!(-1);
    let mut typo = music_plan();
    event(&mut typo, Some("Song Paused"))["schema"]["requried"] = json!(["song_id"]);
    let mut version = music_plan();
    version["version"] = json!("1.0.0");
    let cases: [(&str, Value, &str); 3] = [
        (
            "contradictory",
            contradictory,
            "at /events/0/schema/properties/position_ms/",
        ),
        ("typo", typo, "at /events/1/schema/requried: "),
        ("version", version, "at /version: "),
    ];
    for (name, plan, at) in cases {
        let path = write_json(tmp.path(), &format!("{name}.json"), &plan);
        let (_, err) = failed(&cli(&["plan", "lint", s(&path)]));
        assert!(
            err.starts_with(&format!("{}: {at}", path.display())),
            "{name}: {err}"
        );
    }
    // Not JSON at all: the whole file.
    let broken = tmp.path().join("broken.json");
    std::fs::write(&broken, "{\"plan\": ").unwrap();
    let (_, err) = failed(&cli(&["plan", "lint", s(&broken)]));
    assert!(err.contains("at the top level: "), "{err}");
    // A missing file is an error, not a panic.
    let (_, err) = failed(&cli(&["plan", "lint", s(&tmp.path().join("none.json"))]));
    assert!(err.starts_with("error: "), "{err}");
}

const EVENTS: &str = r#"{"type":"track","event":"Song Played","messageId":"m-good","properties":{"song_id":"s1","position_ms":0,"duration_ms":215000,"source":"radio"}}
{"type":"track","event":"Song Played","messageId":"m-bad","properties":{"song_id":"s1","position_ms":"12","duration_ms":215000,"source":"tv"}}

{"type":"track","event":"Song Shared","messageId":"m-unplanned","properties":{}}
not json at all
{"type":"identify","messageId":"m-id","userId":"u1","traits":{"plan":"free","email":"nobody"}}
{"type":"track","messageId":"m-noname"}
[1, 2]
{"type":"screen","name":"Player","messageId":"m-screen","properties":{"view":"full"}}
"#;

/// `plan check` reports each bad line (number, messageId, rule, pointer), names malformed
/// lines and still checks the lines after them, summarises, and exits 1.
#[test]
fn check_reports_violations_and_malformed_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let events = tmp.path().join("events.ndjson");
    std::fs::write(&events, EVENTS).unwrap();
    let (out, _) = failed(&cli(&["plan", "check", s(&music_plan_path()), s(&events)]));
    assert!(
        out.contains("line 2 (messageId m-bad): Song Played"),
        "{out}"
    );
    assert!(out.contains("  type at /properties/position_ms: "), "{out}");
    assert!(out.contains("  enum at /properties/source: "), "{out}");
    assert!(
        out.contains("line 4 (messageId m-unplanned): Song Shared"),
        "{out}"
    );
    assert!(out.contains("line 5: malformed: not JSON"), "{out}");
    assert!(out.contains("  format at /traits/email: "), "{out}");
    assert!(
        out.contains("line 7: malformed: a track event without"),
        "{out}"
    );
    assert!(
        out.contains("line 8: malformed: expected a JSON object"),
        "{out}"
    );
    assert!(
        !out.contains("m-good") && !out.contains("m-screen"),
        "{out}"
    );
    assert!(
        out.contains("5 events checked against music-app 1-0-0: 2 passed, 3 with violations (4 violations), 3 malformed lines"),
        "{out}"
    );
    assert!(out.contains("most violated rules: "), "{out}");
    assert!(out.contains("unplanned events: \"Song Shared\" 1"), "{out}");

    // The same as JSON, for machines.
    let (out, _) = failed(&cli(&[
        "plan",
        "check",
        s(&music_plan_path()),
        s(&events),
        "--json",
    ]));
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["events"], 5);
    assert_eq!(r["passed"], 2);
    assert_eq!(r["failed"], 3);
    assert_eq!(r["violations"], 4);
    assert_eq!(r["malformed"], 3);
    let lines: Vec<(u64, &str)> = r["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["line"].as_u64().unwrap(),
                l["messageId"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(lines, [(2, "m-bad"), (4, "m-unplanned"), (6, "m-id")]);
    let bad: Vec<(&str, &str)> = r["lines"][0]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["rule"].as_str().unwrap(), v["pointer"].as_str().unwrap()))
        .collect();
    assert_eq!(
        bad,
        [
            ("type", "/properties/position_ms"),
            ("enum", "/properties/source")
        ]
    );
    let errors: Vec<u64> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(errors, [5, 7, 8]);
    assert_eq!(
        r["unplanned"],
        json!([{"event": "Song Shared", "count": 1}])
    );
    let rules: u64 = r["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["count"].as_u64().unwrap())
        .sum();
    assert_eq!(rules, 4);
}

/// `plan check PLAN -` reads standard input; events that all follow the plan exit 0.
#[test]
fn check_reads_standard_input_and_passes_good_events() {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_trailhound"))
        .args(["plan", "check", s(&music_plan_path()), "-", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let good: String = EVENTS
        .lines()
        .filter(|l| l.contains("m-good") || l.contains("m-screen"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(good.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let r: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(
        (r["events"].as_u64(), r["passed"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(r["malformed"], 0);
}

/// Events the real SDK queued and `queue export` wrote pass `plan check` when they follow
/// the plan (exit 0), and the ones that break it are reported (exit 1): the two commands
/// agree on the line format.
#[test]
fn check_reads_what_queue_export_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("device");
    let client = offline_device(&data);
    client
        .identify(Some("listener-7"), json!({"plan": "duo", "country": "DE"}))
        .unwrap();
    client.screen("Player", json!({"view": "mini"})).unwrap();
    client
        .track(
            "Song Played",
            json!({"song_id": "s-1", "position_ms": 0, "duration_ms": 215000, "source": "album"}),
        )
        .unwrap();
    client
        .track("Song Liked", json!({"song_id": "s-1", "tags": ["calm"]}))
        .unwrap();
    client.shutdown(Duration::from_secs(5)).unwrap();
    let good = tmp.path().join("good.ndjson");
    ok(&cli(&["queue", "export", s(&data), "-o", s(&good)]));
    let out = ok(&cli(&["plan", "check", s(&music_plan_path()), s(&good)]));
    assert!(out.contains("4 events checked"), "{out}");
    assert!(out.contains("4 passed, 0 with violations"), "{out}");

    let client = offline_device(&data);
    client
        .track("Song Skipped", json!({"song_id": "s-1", "position_ms": -5}))
        .unwrap();
    client.shutdown(Duration::from_secs(5)).unwrap();
    let all = tmp.path().join("all.ndjson");
    ok(&cli(&["queue", "export", s(&data), "-o", s(&all)]));
    let (out, _) = failed(&cli(&["plan", "check", s(&music_plan_path()), s(&all)]));
    assert!(out.contains("line 5 (messageId "), "{out}");
    assert!(out.contains("minimum at /properties/position_ms"), "{out}");
    assert!(out.contains("required at /properties/direction"), "{out}");
}

/// One row of the diff table: how OLD and NEW differ from the music plan, and the change
/// `plan diff` must find.
struct DiffCase {
    name: &'static str,
    old: fn(&mut Value),
    new: fn(&mut Value),
    class: &'static str,
    event: Option<&'static str>,
    pointer: &'static str,
}

fn same(_: &mut Value) {}

fn props<'a>(plan: &'a mut Value, name: Option<&str>) -> &'a mut Value {
    &mut event(plan, name)["schema"]["properties"]
}

fn diff_cases() -> Vec<DiffCase> {
    vec![
        DiffCase {
            name: "new event",
            old: same,
            new: |p| {
                p["events"].as_array_mut().unwrap().push(
                    json!({"type": "track", "name": "Song Shared", "schema": {"type": "object"}}),
                )
            },
            class: "compatible",
            event: Some("Song Shared"),
            pointer: "",
        },
        DiffCase {
            name: "new optional property",
            old: same,
            new: |p| props(p, Some("Song Played"))["genre"] = json!({"type": "string"}),
            class: "compatible",
            event: Some("Song Played"),
            pointer: "/properties/genre",
        },
        DiffCase {
            name: "widened enum",
            old: same,
            new: |p| {
                props(p, Some("Song Skipped"))["direction"]["enum"] =
                    json!(["next", "previous", "random"])
            },
            class: "compatible",
            event: Some("Song Skipped"),
            pointer: "/properties/direction",
        },
        DiffCase {
            name: "widened range",
            old: same,
            new: |p| props(p, Some("Song Played"))["position_ms"]["minimum"] = json!(-1000),
            class: "compatible",
            event: Some("Song Played"),
            pointer: "/properties/position_ms",
        },
        DiffCase {
            name: "widened length",
            old: same,
            new: |p| props(p, Some("Song Played"))["title"]["maxLength"] = json!(500),
            class: "compatible",
            event: Some("Song Played"),
            pointer: "/properties/title",
        },
        DiffCase {
            name: "removed constraint",
            old: same,
            new: |p| {
                props(p, None)["country"]
                    .as_object_mut()
                    .unwrap()
                    .remove("pattern");
            },
            class: "compatible",
            event: Some("identify"),
            pointer: "/traits/country",
        },
        DiffCase {
            name: "description change",
            old: same,
            new: |p| event(p, Some("Song Paused"))["description"] = json!("Paused, by hand."),
            class: "compatible",
            event: Some("Song Paused"),
            pointer: "",
        },
        DiffCase {
            name: "type widened integer to number",
            old: same,
            new: |p| props(p, Some("Song Paused"))["duration_ms"]["type"] = json!("number"),
            class: "compatible",
            event: Some("Song Paused"),
            pointer: "/properties/duration_ms",
        },
        DiffCase {
            name: "removed event",
            old: same,
            new: |p| {
                p["events"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|e| e["name"] != "Song Liked")
            },
            class: "breaking",
            event: Some("Song Liked"),
            pointer: "",
        },
        DiffCase {
            name: "removed property",
            old: same,
            new: |p| {
                props(p, Some("Song Played"))
                    .as_object_mut()
                    .unwrap()
                    .remove("shuffle");
            },
            class: "breaking",
            event: Some("Song Played"),
            pointer: "/properties/shuffle",
        },
        DiffCase {
            name: "retyped property",
            old: same,
            new: |p| props(p, Some("Song Played"))["shuffle"]["type"] = json!("string"),
            class: "breaking",
            event: Some("Song Played"),
            pointer: "/properties/shuffle",
        },
        DiffCase {
            name: "new required property",
            old: same,
            new: |p| {
                let e = event(p, Some("Song Liked"));
                e["schema"]["properties"]["liked_at"] = json!({"type": "string"});
                e["schema"]["required"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("liked_at"));
            },
            class: "breaking",
            event: Some("Song Liked"),
            pointer: "/properties/liked_at",
        },
        DiffCase {
            name: "property made required",
            old: same,
            new: |p| {
                event(p, Some("Song Liked"))["schema"]["required"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("source"))
            },
            class: "breaking",
            event: Some("Song Liked"),
            pointer: "/properties/source",
        },
        DiffCase {
            name: "narrowed enum",
            old: same,
            new: |p| props(p, Some("Player"))["view"]["enum"] = json!(["full"]),
            class: "breaking",
            event: Some("screen:Player"),
            pointer: "/properties/view",
        },
        DiffCase {
            name: "narrowed range",
            old: same,
            new: |p| props(p, None)["age"]["maximum"] = json!(99),
            class: "breaking",
            event: Some("identify"),
            pointer: "/traits/age",
        },
        DiffCase {
            name: "narrowed length",
            old: same,
            new: |p| props(p, Some("Song Paused"))["song_id"]["maxLength"] = json!(32),
            class: "breaking",
            event: Some("Song Paused"),
            pointer: "/properties/song_id",
        },
        DiffCase {
            name: "new pattern",
            old: same,
            new: |p| props(p, Some("Song Liked"))["song_id"]["pattern"] = json!("^s-"),
            class: "breaking",
            event: Some("Song Liked"),
            pointer: "/properties/song_id",
        },
        DiffCase {
            name: "new format",
            old: same,
            new: |p| props(p, Some("Song Played"))["playlist_id"]["format"] = json!("uri"),
            class: "breaking",
            event: Some("Song Played"),
            pointer: "/properties/playlist_id",
        },
        DiffCase {
            name: "new const",
            old: same,
            new: |p| props(p, Some("Song Played"))["shuffle"]["const"] = json!(false),
            class: "breaking",
            event: Some("Song Played"),
            pointer: "/properties/shuffle",
        },
        DiffCase {
            name: "additionalProperties true to false",
            old: |p| event(p, Some("Song Paused"))["schema"]["additionalProperties"] = json!(true),
            new: same,
            class: "breaking",
            event: Some("Song Paused"),
            pointer: "/properties",
        },
        DiffCase {
            name: "allowUnplannedEvents true to false",
            old: |p| p["allowUnplannedEvents"] = json!(true),
            new: same,
            class: "breaking",
            event: None,
            pointer: "/allowUnplannedEvents",
        },
        DiffCase {
            name: "nested object: narrowed enum",
            old: same,
            new: |p| {
                props(p, Some("Song Played"))["output"]["properties"]["kind"]["enum"] =
                    json!(["speaker", "headphones"])
            },
            class: "breaking",
            event: Some("Song Played"),
            pointer: "/properties/output/kind",
        },
        DiffCase {
            name: "array items: narrowed length",
            old: same,
            new: |p| props(p, Some("Song Liked"))["tags"]["items"]["maxLength"] = json!(8),
            class: "breaking",
            event: Some("Song Liked"),
            pointer: "/properties/tags/[]",
        },
        DiffCase {
            name: "nested object: new optional property",
            old: same,
            new: |p| {
                props(p, Some("Song Played"))["output"]["properties"]["device_name"] =
                    json!({"type": "string"})
            },
            class: "compatible",
            event: Some("Song Played"),
            pointer: "/properties/output/device_name",
        },
    ]
}

/// Every change of the diff table is found exactly once with its class and path; a
/// breaking change fails unless MODEL goes up, a compatible one passes, and a change
/// without a new version warns.
#[test]
fn diff_classifies_every_change() {
    let tmp = tempfile::tempdir().unwrap();
    for case in diff_cases() {
        let mut old = music_plan();
        (case.old)(&mut old);
        let mut new = music_plan();
        (case.new)(&mut new);
        let old_path = write_json(tmp.path(), "old.json", &old);
        let run = |new: &Value, json: bool| {
            let new_path = write_json(tmp.path(), "new.json", new);
            let mut args = vec!["plan", "diff", s(&old_path), s(&new_path)];
            if json {
                args.push("--json");
            }
            cli(&args)
        };

        // Same version: breaking fails, compatible passes with a warning.
        let out = run(&new, true);
        assert_eq!(
            out.status.success(),
            case.class == "compatible",
            "{}: exit {}\n{}{}",
            case.name,
            out.status,
            stdout(&out),
            stderr(&out)
        );
        let report: Value = serde_json::from_str(&stdout(&out))
            .unwrap_or_else(|e| panic!("{}: {e}: {}", case.name, stderr(&out)));
        let changes = report["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 1, "{}: {changes:#?}", case.name);
        let c = &changes[0];
        assert_eq!(c["class"], case.class, "{}: {c}", case.name);
        assert_eq!(c["event"], json!(case.event), "{}: {c}", case.name);
        assert_eq!(c["pointer"], case.pointer, "{}: {c}", case.name);
        let text = run(&new, false);
        assert!(
            stderr(&text).contains("warning: the plan changed but its version did not"),
            "{}: {}",
            case.name,
            stderr(&text)
        );
        assert!(
            stdout(&text).starts_with(case.class),
            "{}: {}",
            case.name,
            stdout(&text)
        );

        // A new REVISION/ADDITION declares compatible changes only.
        new["version"] = json!("1-1-0");
        assert_eq!(
            run(&new, false).status.success(),
            case.class == "compatible",
            "{}: with 1-1-0",
            case.name
        );
        // A new MODEL declares anything.
        new["version"] = json!("2-0-0");
        let out = run(&new, false);
        assert!(out.status.success(), "{}: {}", case.name, stderr(&out));
        assert!(
            !stderr(&out).contains("warning"),
            "{}: {}",
            case.name,
            stderr(&out)
        );
    }
}

/// Identical plans have no changes, exit 0 and no warning; a plan that does not lint is
/// refused before comparing.
#[test]
fn diff_of_identical_plans_is_empty() {
    let out = cli(&["plan", "diff", s(&music_plan_path()), s(&music_plan_path())]);
    let text = ok(&out);
    assert!(text.contains("0 changes"), "{text}");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    let tmp = tempfile::tempdir().unwrap();
    let mut bad = music_plan();
    bad["version"] = json!("two");
    let bad = write_json(tmp.path(), "bad.json", &bad);
    let (_, err) = failed(&cli(&["plan", "diff", s(&music_plan_path()), s(&bad)]));
    assert!(err.contains("at /version"), "{err}");
}

/// Imports a fixture; returns the plan (after checking that it lints) and the warnings.
fn import(from: &str, files: &[&str]) -> (Value, String) {
    let tmp = tempfile::tempdir().unwrap();
    let out_path = tmp.path().join("plan.json");
    let fixtures = repo().join("tests/plan/import");
    let paths: Vec<String> = files
        .iter()
        .map(|f| fixtures.join(f).to_str().unwrap().to_owned())
        .collect();
    let mut args = vec!["plan", "import", "--from", from, "--out", s(&out_path)];
    args.extend(paths.iter().map(String::as_str));
    let out = cli(&args);
    ok(&out);
    ok(&cli(&["plan", "lint", s(&out_path)]));
    let plan = serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    (plan, stderr(&out))
}

/// The names of a plan's events, as violations label them.
fn labels(plan: &Value) -> Vec<String> {
    plan["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| match e.get("name").and_then(Value::as_str) {
            Some(n) if e["type"] == "track" => n.to_owned(),
            Some(n) => format!("{}:{n}", e["type"].as_str().unwrap()),
            None => e["type"].as_str().unwrap().to_owned(),
        })
        .collect()
}

fn schema_of<'a>(plan: &'a Value, label: &str) -> &'a Value {
    let i = labels(plan).iter().position(|l| l == label).unwrap();
    &plan["events"][i]["schema"]
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// A Segment Protocols plan (Public API JSON) imports into a plan that lints: the latest
/// version of each rule, page/identify/group, nested items, the mapped keywords; what does
/// not map is a warning naming its place.
#[test]
fn import_segment_protocols_plan() {
    let (plan, warnings) = import("segment", &["segment-protocols.json"]);
    assert_eq!(plan["plan"], "storefront-web");
    assert_eq!(plan["version"], "1-0-0");
    assert_eq!(
        labels(&plan),
        [
            "Product Viewed",
            "Order Completed",
            "Signed Up",
            "page:Pricing",
            "identify",
            "group"
        ]
    );
    let viewed = schema_of(&plan, "Product Viewed");
    assert_eq!(
        keys(&viewed["properties"]),
        [
            "category",
            "currency",
            "image_url",
            "name",
            "price",
            "product_id",
            "quantity"
        ]
    );
    assert_eq!(viewed["required"], json!(["product_id", "price"]));
    assert_eq!(
        viewed["properties"]["category"]["type"],
        json!(["string", "null"])
    );
    assert_eq!(viewed["properties"]["currency"]["pattern"], "^[A-Z]{3}$");
    assert_eq!(viewed["properties"]["image_url"]["format"], "uri");
    let order = schema_of(&plan, "Order Completed");
    assert_eq!(order["required"], json!(["order_id", "total", "products"]));
    assert_eq!(order["additionalProperties"], false);
    assert_eq!(order["properties"]["total"]["exclusiveMinimum"], 0.0);
    assert_eq!(
        order["properties"]["products"]["items"]["required"],
        json!(["product_id", "quantity"])
    );
    assert_eq!(order["properties"]["products"]["maxItems"], 100);
    assert!(order["properties"]["order_id"]["pattern"].is_string());
    assert_eq!(
        order["properties"]["shipping"],
        json!({"description": "How the order ships."})
    );
    let identify = schema_of(&plan, "identify");
    assert_eq!(identify["properties"]["email"]["format"], "email");
    assert_eq!(
        identify["properties"]["address"]["properties"]["country"]["pattern"],
        "^[A-Z]{2}$"
    );
    for expected in [
        "\"Checkout Step Viewed\"): deprecated; skipped",
        "COMMON rules",
        "Order Completed: version 1 skipped: version 2 is kept",
        "Product Viewed /properties/quantity: multipleOf",
        "Order Completed: rules on the message's \"context\"",
        "Order Completed /properties/products: uniqueItems",
        "Order Completed /properties/shipping: oneOf",
        "Signed Up /properties/referrer: $ref",
    ] {
        assert!(
            warnings.contains(expected),
            "{expected:?} not in:\n{warnings}"
        );
    }
}

/// Typewriter 7's Config API plan and Typewriter 8's unwrapped plan.json import too; a
/// pattern lint refuses (inline flags) is dropped with a warning, and draft 4's boolean
/// exclusive bounds become numbers.
#[test]
fn import_segment_typewriter_plans() {
    let (plan, warnings) = import("segment", &["segment-config-api.json"]);
    assert_eq!(plan["plan"], "acme-music-ios");
    assert_eq!(labels(&plan), ["Song Played", "Song Skipped", "identify"]);
    let played = schema_of(&plan, "Song Played");
    assert_eq!(played["required"], json!(["song_id", "position_ms"]));
    assert_eq!(
        played["properties"]["bitrate_kbps"]["exclusiveMinimum"],
        0.0
    );
    assert_eq!(played["properties"]["volume"]["maximum"], 1.0);
    assert!(schema_of(&plan, "Song Skipped")["properties"]["reason"]
        .get("pattern")
        .is_none());
    assert!(
        warnings.contains("/events/1/schema/properties/reason/pattern"),
        "{warnings}"
    );
    assert!(warnings.contains("rules.global"), "{warnings}");

    let (plan, warnings) = import("segment", &["segment-typewriter.json"]);
    assert_eq!(plan["plan"], "podcasts-android");
    assert_eq!(labels(&plan), ["Episode Downloaded"]);
    let s = schema_of(&plan, "Episode Downloaded");
    assert_eq!(
        keys(&s["properties"]),
        ["episode_id", "network", "size_bytes"]
    );
    assert_eq!(s["required"], json!(["episode_id", "size_bytes"]));
    assert_eq!(
        plan["events"][0]["description"],
        "An episode finished downloading for offline listening."
    );
    assert!(!warnings.contains("warning:"), "{warnings}");
}

/// A RudderStack data catalog project (rudder/v1, several files) imports: references,
/// custom types, nested properties, additional_properties, item types, formats; variants,
/// unnamed screens and context.traits are warnings.
#[test]
fn import_rudderstack_project() {
    let (plan, warnings) = import("rudderstack", &["rudderstack"]);
    assert_eq!(plan["plan"], "news-web");
    assert_eq!(
        labels(&plan),
        [
            "Article Viewed",
            "Article Shared",
            "Subscription Started",
            "page:Home",
            "identify"
        ]
    );
    let viewed = schema_of(&plan, "Article Viewed");
    assert_eq!(
        keys(&viewed["properties"]),
        [
            "article_id",
            "author",
            "read_ratio",
            "referrer",
            "section",
            "tags",
            "word_count"
        ]
    );
    assert_eq!(viewed["required"], json!(["article_id", "section"]));
    assert_eq!(viewed["additionalProperties"], false);
    assert_eq!(viewed["properties"]["section"]["enum"][0], "news");
    assert_eq!(
        viewed["properties"]["tags"]["items"],
        json!({"type": "string"})
    );
    assert_eq!(viewed["properties"]["author"]["required"], json!(["id"]));
    assert_eq!(
        viewed["properties"]["author"]["additionalProperties"],
        false
    );
    assert_eq!(
        viewed["properties"]["author"]["properties"]["name"]["maxLength"],
        120
    );
    assert!(schema_of(&plan, "Article Shared")
        .get("additionalProperties")
        .is_none());
    let sub = schema_of(&plan, "Subscription Started");
    assert_eq!(sub["additionalProperties"], false);
    assert_eq!(
        sub["properties"]["billing_address"]["properties"]["country"]["pattern"],
        "^[A-Z]{2}$"
    );
    assert_eq!(sub["properties"]["price_cents"]["exclusiveMinimum"], 0.0);
    let identify = schema_of(&plan, "identify");
    assert_eq!(identify["required"], json!(["email"]));
    assert_eq!(
        identify["properties"]["signed_up_at"]["format"],
        "date-time"
    );
    for expected in [
        "Subscription Started: variants",
        "(\"any_screen_rule\"): a screen rule without a name",
        "identity_section \"context.traits\"",
        "identify /traits/last_ip: format \"ipv4\" is not supported",
        "Article Viewed /properties/word_count: multipleOf",
    ] {
        assert!(
            warnings.contains(expected),
            "{expected:?} not in:\n{warnings}"
        );
    }
}

/// The legacy RudderStack spec (rudder/v0.1, `$ref`, `propConfig`, `allow_unplanned`)
/// imports from one multi-document file; a reference to a missing property is a warning.
#[test]
fn import_rudderstack_legacy_file() {
    let (plan, warnings) = import("rudderstack", &["rudderstack-legacy.yaml"]);
    assert_eq!(plan["plan"], "fitness-app");
    assert_eq!(
        labels(&plan),
        ["Workout Started", "Workout Finished", "identify"]
    );
    let started = schema_of(&plan, "Workout Started");
    assert_eq!(started["additionalProperties"], false);
    assert_eq!(started["properties"]["gear"]["required"], json!(["kind"]));
    let finished = schema_of(&plan, "Workout Finished");
    assert!(finished.get("additionalProperties").is_none());
    assert_eq!(finished["required"], json!(["workout_type", "duration_s"]));
    assert_eq!(
        finished["properties"]["distance_m"]["type"],
        json!(["number", "null"])
    );
    assert_eq!(
        finished["properties"]["heart_rates"]["items"],
        json!({"type": "integer"})
    );
    assert_eq!(finished["properties"]["duration_s"]["maximum"], 86400.0);
    let identify = schema_of(&plan, "identify");
    assert_eq!(identify["properties"]["email"]["minLength"], 5);
    assert!(
        warnings.contains("missing_property\" not found"),
        "{warnings}"
    );
}

/// Bad input to import is a clear error: not the format, no tracking plan, not YAML.
#[test]
fn import_refuses_what_is_not_a_plan() {
    let tmp = tempfile::tempdir().unwrap();
    let notplan = write_json(tmp.path(), "x.json", &json!({"hello": "world"}));
    let (_, err) = failed(&cli(&["plan", "import", "--from", "segment", s(&notplan)]));
    assert!(err.contains("not a Segment tracking plan"), "{err}");
    let (_, err) = failed(&cli(&[
        "plan",
        "import",
        "--from",
        "rudderstack",
        s(&notplan),
    ]));
    assert!(err.contains("no tracking plan"), "{err}");
    let yaml = tmp.path().join("bad.yaml");
    std::fs::write(&yaml, "kind: [unclosed\n").unwrap();
    let (_, err) = failed(&cli(&["plan", "import", "--from", "rudderstack", s(&yaml)]));
    assert!(err.contains("bad.yaml"), "{err}");
}

/// A plan written in YAML (`.yaml`/`.yml`) is the same plan: it lints, diffs as identical
/// to its JSON form, generates the same code, and a refused one names the same place.
#[test]
fn yaml_plans_are_the_same_plans() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("plan.yaml");
    std::fs::write(&yaml, serde_norway::to_string(&music_plan()).unwrap()).unwrap();
    let out = ok(&cli(&["plan", "lint", s(&yaml)]));
    assert!(out.contains("plan music-app version 1-0-0"), "{out}");
    ok(&cli(&["plan", "diff", s(&music_plan_path()), s(&yaml)]));
    let gen = |plan: &Path, out: &str| {
        let out = dir.path().join(out);
        ok(&cli(&[
            "plan",
            "codegen",
            s(plan),
            "--lang",
            "typescript",
            "--out",
            s(&out),
        ]));
        std::fs::read_dir(&out)
            .unwrap()
            .map(|f| std::fs::read(f.unwrap().path()).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        gen(&music_plan_path(), "from-json"),
        gen(&yaml, "from-yaml")
    );
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "plan: p\nversion: 1-0-0\nevents:\n  - type: track\n    name: A\n    schema:\n      type: object\n      properties:\n        n: {type: integer, minimum: 5, maximum: 1}\n",
    )
    .unwrap();
    let (out, err) = failed(&cli(&["plan", "lint", s(&bad)]));
    assert!(
        format!("{out}{err}").contains("at /events/0/schema/properties/n/"),
        "{out}{err}"
    );
    std::fs::write(&bad, "plan: [unclosed\n").unwrap();
    let (out, err) = failed(&cli(&["plan", "lint", s(&bad)]));
    assert!(
        format!("{out}{err}").contains("is not a YAML plan"),
        "{out}{err}"
    );
}
