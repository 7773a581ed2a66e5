//! `trailhound plan codegen`: the generated Rust compiles against the real `trailhound`
//! crate and sends exactly the planned events; an app written for plan v1 fails to compile
//! against v2's code; the output is deterministic; the Swift output matches its golden
//! copy and is well formed; colliding names and plans that do not lint are refused.
//!
//! The Rust harness (tests/codegen/rust, its own one-crate workspace under
//! target/codegen/projects/) is built by a nested `cargo --offline` into the workspace's
//! own target dir, so it reuses what the workspace build compiled (SQLite above all): about
//! 10 s the first time instead of minutes in a separate target dir. `cargo test` holds the
//! target dir's lock only while it compiles, not while the tests run. TypeScript, Python
//! and Kotlin are compiled and run by scripts/test-codegen.sh, which installs their tools.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use serde_json::Value;
use trailhound_cli::plan::codegen::{generate, Lang, Options};
use trailhound_core::plan::model::PlanFile;

/// The nested cargo builds share one target dir: one at a time.
static CARGO: Mutex<()> = Mutex::new(());

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
        .to_path_buf()
}

fn fixture(name: &str) -> PathBuf {
    workspace().join("tests/codegen").join(name)
}

fn plan_file(path: &Path) -> PlanFile {
    let text = std::fs::read_to_string(path).expect("read plan");
    serde_json::from_str(&text).expect("plan parses")
}

/// Runs `trailhound plan codegen PLAN --lang LANG --out DIR`.
fn codegen_cli(plan: &Path, lang: &str, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trailhound"))
        .args(["plan", "codegen"])
        .arg(plan)
        .args(["--lang", lang, "--out"])
        .arg(out)
        .output()
        .expect("run trailhound")
}

/// A harness project at a stable path under target/codegen (stable, so that cargo reuses
/// its last build), with the generated module of `plan`.
fn rust_project(name: &str, plan: &Path) -> PathBuf {
    let ws = workspace();
    let dir = ws.join("target/codegen/projects").join(name);
    let src = dir.join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let harness = fixture("rust");
    let manifest = std::fs::read_to_string(harness.join("Cargo.toml.in"))
        .expect("manifest template")
        .replace("@WORKSPACE@", &ws.display().to_string());
    write_if_changed(&dir.join("Cargo.toml"), &manifest);
    // The workspace's lockfile, fresh each run: the same dependency versions as the
    // workspace, so they resolve offline from what its build fetched.
    std::fs::copy(ws.join("Cargo.lock"), dir.join("Cargo.lock")).expect("copy lockfile");
    for f in ["lib.rs", "main.rs"] {
        let text = std::fs::read_to_string(harness.join("src").join(f)).expect("harness source");
        write_if_changed(&src.join(f), &text);
    }
    let out = codegen_cli(plan, "rust", &src);
    assert!(
        out.status.success(),
        "codegen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// Writes only on change, so cargo's fingerprints stay fresh across runs.
fn write_if_changed(path: &Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).expect("write");
    }
}

/// `cargo SUBCOMMAND --offline --quiet --manifest-path PROJECT ARGS…` into the workspace's
/// target dir.
/// Where the workspace's build went: `CARGO_TARGET_DIR` if it is set (absolute), else
/// `target/`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| workspace().join("target"))
}

fn cargo(project: &Path, subcommand: &str, args: &[&str]) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    Command::new(cargo)
        .args([subcommand, "--offline", "--quiet", "--manifest-path"])
        .arg(project.join("Cargo.toml"))
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo")
}

fn expected_calls() -> Vec<Value> {
    let text = std::fs::read_to_string(fixture("expected-calls.json")).expect("expected calls");
    serde_json::from_str(&text).expect("expected calls parse")
}

/// The generated Rust module compiles against the workspace's `trailhound`, and an app
/// using it queues exactly the planned calls: names, property names as in the plan
/// (`isPublic`, `type`, `self`), enum wire values, nested objects, arrays, null, const.
#[test]
fn rust_generated_code_compiles_and_sends_the_planned_events() {
    let _one = CARGO.lock().unwrap_or_else(|e| e.into_inner());
    let project = rust_project("rust-v1", &fixture("plan-v1.json"));
    let build = cargo(&project, "build", &["--bin", "codegen-harness-app"]);
    assert!(
        build.status.success(),
        "the v1 app does not build:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let data = tempfile::tempdir().expect("tempdir");
    let run = Command::new(target_dir().join("debug/codegen-harness-app"))
        .arg(data.path())
        .output()
        .expect("run app");
    assert!(
        run.status.success(),
        "the app failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let calls: Vec<Value> = String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(calls, expected_calls());
}

/// The app written for plan v1 does not compile against v2's code, and for each of the
/// three breaking changes (a new required property, a removed event, a narrowed enum),
/// while v2's module itself compiles.
#[test]
fn rust_app_for_v1_fails_to_compile_against_v2() {
    let _one = CARGO.lock().unwrap_or_else(|e| e.into_inner());
    let project = rust_project("rust-v2", &fixture("plan-v2.json"));
    let lib = cargo(&project, "check", &["--lib"]);
    assert!(
        lib.status.success(),
        "v2's module does not compile on its own:\n{}",
        String::from_utf8_lossy(&lib.stderr)
    );
    let app = cargo(
        &project,
        "check",
        &["--bin", "codegen-harness-app", "--message-format=short"],
    );
    let stderr = String::from_utf8_lossy(&app.stderr);
    assert!(!app.status.success(), "the v1 app compiled against v2");
    // A new required property: song_played takes one more argument.
    let main = std::fs::read_to_string(fixture("rust/src/main.rs")).expect("harness main");
    let call_line = main
        .lines()
        .position(|l| l.contains("t.song_played("))
        .expect("the app calls song_played")
        + 1;
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("E0061") && l.contains(&format!("src/main.rs:{call_line}:"))),
        "no error for the new required property at main.rs:{call_line}:\n{stderr}"
    );
    // A removed event: no song_liked, nor its options type.
    assert!(
        stderr.contains("song_liked"),
        "no error for the removed event:\n{stderr}"
    );
    // A narrowed enum: no SongSkippedSource::Radio.
    assert!(
        stderr.contains("Radio"),
        "no error for the narrowed enum:\n{stderr}"
    );
    // Every error is in the app, none in the generated module.
    for line in stderr.lines().filter(|l| l.contains("error")) {
        assert!(
            !line.contains("music_app_tracker.rs"),
            "an error in the generated module: {line}"
        );
    }
}

/// The music app's example plan (examples/music/plan.json) gives a Rust module that
/// compiles, warning-free under clippy.
#[test]
fn rust_code_of_the_example_plan_compiles() {
    let _one = CARGO.lock().unwrap_or_else(|e| e.into_inner());
    let project = rust_project(
        "rust-example",
        &workspace().join("examples/music/plan.json"),
    );
    let lib = cargo(&project, "clippy", &["--lib", "--", "-D", "warnings"]);
    assert!(
        lib.status.success(),
        "the example plan's module does not compile cleanly:\n{}",
        String::from_utf8_lossy(&lib.stderr)
    );
}

const LANGS: [(Lang, &str); 5] = [
    (Lang::Rust, "rust"),
    (Lang::Typescript, "typescript"),
    (Lang::Python, "python"),
    (Lang::Kotlin, "kotlin"),
    (Lang::Swift, "swift"),
];

/// The same plan gives byte-identical output in every language, headed by the plan's id
/// and version and a do-not-edit note, with one function per event.
#[test]
fn output_is_deterministic_and_headed() {
    for plan in [
        fixture("plan-v1.json"),
        workspace().join("examples/music/plan.json"),
    ] {
        let file = plan_file(&plan);
        for (lang, name) in LANGS {
            let a = generate(&file, lang, &Options::default()).expect("generate");
            let b = generate(&file.clone(), lang, &Options::default()).expect("generate");
            assert_eq!(a, b, "{name} output differs between two runs");
            let head: String = a.source.lines().take(4).collect::<Vec<_>>().join("\n");
            assert!(head.contains("do not edit"), "{name}: {head}");
            assert!(
                head.contains(&format!(
                    "Tracking plan {}, version {}",
                    file.plan, file.version
                )),
                "{name}: {head}"
            );
        }
    }
}

/// The Swift output (which no compiler checks here) matches its reviewed golden copy,
/// its braces and brackets balance outside strings and comments, every event has a
/// `func`, keywords used as names are escaped, and its protocol asks exactly the methods
/// of the bindings' Swift `Trailhound`.
#[test]
fn swift_output_matches_golden_and_is_well_formed() {
    let file = plan_file(&fixture("plan-v1.json"));
    let swift = generate(&file, Lang::Swift, &Options::default()).expect("generate");
    let golden = fixture("golden").join(&swift.file_name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden.parent().expect("parent")).expect("mkdir");
        std::fs::write(&golden, &swift.source).expect("write golden");
    }
    let expected = std::fs::read_to_string(&golden)
        .expect("golden copy (UPDATE_GOLDEN=1 writes it; review it before committing)");
    assert_eq!(
        swift.source, expected,
        "Swift output changed; review, then UPDATE_GOLDEN=1"
    );
    check_balanced(&swift.source).expect("balanced");
    for func in [
        "func songPlayed(",
        "func songSkipped(",
        "func songLiked(",
        "func playerScreen(",
        "func settingsPage(",
        "func identify(",
        "func group(",
        "func playlistCreated(",
    ] {
        assert!(swift.source.contains(func), "no {func}");
    }
    // The protocol asks exactly what the bindings' Swift `Trailhound` has (there it has
    // default arguments), so `extension Trailhound: TrailhoundSink {}` conforms.
    let real = std::fs::read_to_string(
        workspace().join("bindings/swift/Sources/Trailhound/Trailhound.swift"),
    )
    .expect("the bindings' Swift wrapper");
    let requirements: Vec<&str> = swift
        .source
        .lines()
        .skip_while(|l| !l.starts_with("public protocol TrailhoundSink"))
        .skip(1)
        .take_while(|l| !l.starts_with('}'))
        .collect();
    assert_eq!(requirements.len(), 5, "{requirements:?}");
    for req in requirements {
        let with_default = req.trim().replace("]) throws", "] = [:]) throws");
        assert!(
            real.contains(&format!("public {with_default}")),
            "the bindings' Trailhound has no `public {with_default}`"
        );
    }
    assert!(swift
        .source
        .contains("extension Trailhound: TrailhoundSink {}"));
    for escaped in [
        "`class`: String? = nil",
        "self_: Bool? = nil",
        "case self_ = \"self\"",
        "case `public` = \"public\"",
    ] {
        assert!(swift.source.contains(escaped), "{escaped} not escaped");
    }
}

/// Brackets balance in code outside `"…"` strings and `//` / `/* */` comments (Swift's
/// block comments nest).
fn check_balanced(src: &str) -> Result<(), String> {
    let chars: Vec<char> = src.chars().collect();
    let mut stack = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
        }
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
            if depth != 0 {
                return Err(format!("unterminated comment at line {line}"));
            }
            continue;
        }
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\n' {
                    return Err(format!("newline in a string at line {line}"));
                }
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            continue;
        }
        match c {
            '(' | '[' | '{' => stack.push((c, line)),
            ')' | ']' | '}' => {
                let open = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                match stack.pop() {
                    Some((o, _)) if o == open => {}
                    other => return Err(format!("{c} at line {line} closes {other:?}")),
                }
            }
            _ => {}
        }
        i += 1;
    }
    match stack.pop() {
        None => Ok(()),
        Some((c, l)) => Err(format!("{c} opened at line {l} is never closed")),
    }
}

/// The bracket check itself finds what it must.
#[test]
fn bracket_check_finds_unbalanced_code() {
    assert!(check_balanced("func a() { let s = \"}\" /* { */ }").is_ok());
    assert!(check_balanced("func a() { ").is_err());
    assert!(check_balanced("func a() ] ").is_err());
    assert!(check_balanced("/* /* */ {").is_err());
}

/// Two properties that would get the same identifier are refused, naming the place.
#[test]
fn colliding_names_are_refused() {
    let plan: PlanFile = serde_json::from_value(serde_json::json!({
        "plan": "p", "version": "1-0-0",
        "events": [{ "type": "track", "name": "A", "schema": { "type": "object",
            "properties": { "song_id": { "type": "string" }, "songId": { "type": "string" } } } }]
    }))
    .expect("plan");
    let e = generate(&plan, Lang::Rust, &Options::default()).expect_err("collision");
    // Names are taken in byte order: "songId" first, so "song_id" is the one refused.
    assert_eq!(e.at, "/events/0/schema/properties/song_id");
    assert!(e.message.contains("songId"), "{e}");

    let plan: PlanFile = serde_json::from_value(serde_json::json!({
        "plan": "p", "version": "1-0-0",
        "events": [{ "type": "track", "name": "Song Played" }, { "type": "track", "name": "song-played" }]
    }))
    .expect("plan");
    let e = generate(&plan, Lang::Python, &Options::default()).expect_err("collision");
    assert_eq!(e.at, "/events/1");
}

/// The command refuses a plan that does not lint, and writes nothing.
#[test]
fn a_plan_that_does_not_lint_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("bad.json");
    std::fs::write(
        &plan,
        r#"{"plan": "p", "version": "1-0-0", "events": [{"type": "track", "name": "A", "schema": {"type": "object", "requried": []}}]}"#,
    )
    .expect("write");
    let out_dir = dir.path().join("out");
    let out = codegen_cli(&plan, "rust", &out_dir);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("requried"), "{stderr}");
    assert!(!out_dir.exists(), "wrote output for a refused plan");
}

/// `--package` sets the Kotlin package; a name that is not one (a keyword part, a
/// leading digit) is refused.
#[test]
fn kotlin_package_is_checked() {
    let file = plan_file(&fixture("plan-v1.json"));
    let ok = generate(
        &file,
        Lang::Kotlin,
        &Options {
            kotlin_package: "com.example.analytics".to_owned(),
        },
    )
    .expect("generate");
    assert!(ok.source.contains("\npackage com.example.analytics\n"));
    for bad in ["com.example.class", "com.1st", "", "a..b", "a-b"] {
        let e = generate(
            &file,
            Lang::Kotlin,
            &Options {
                kotlin_package: bad.to_owned(),
            },
        )
        .expect_err(bad);
        assert!(e.message.contains("--package"), "{bad}: {e}");
    }
}
