//! The shared tracking-plan table (`tests/plan/cases.json`), read for the runners that
//! send its events through an SDK: the native client (`tests/plan.rs`) and the FFI
//! (`bindings/tests/plan.rs`). Each case becomes the SDK call that stamps the same wire
//! event, and its expected verdict a sorted list of (rule, pointer).

use serde_json::Value;

/// A table: the plan's JSON text and the cases.
pub struct Table {
    /// Its file name, for messages.
    pub name: String,
    /// The plan file, as JSON text.
    pub plan: String,
    /// The cases, in file order.
    pub cases: Vec<Case>,
}

/// One event and the violations the plan finds in it.
pub struct Case {
    /// What the case is about.
    pub name: String,
    /// The SDK call that sends the case's event.
    pub call: CaseCall,
    /// The expected (rule, pointer) pairs, sorted.
    pub violations: Vec<(String, String)>,
}

/// The SDK call for a case's wire event.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseCall {
    /// `track(event, properties)`.
    Track {
        /// The event name.
        event: String,
        /// Its properties (an object).
        properties: Value,
    },
    /// `screen(name, properties)`.
    Screen {
        /// The screen name.
        name: String,
        /// Its properties (an object).
        properties: Value,
    },
    /// `page(name, properties)`.
    Page {
        /// The page name.
        name: String,
        /// Its properties (an object).
        properties: Value,
    },
    /// `identify(user_id, traits)`.
    Identify {
        /// The user id (`u1` unless the event has one).
        user_id: String,
        /// The traits (an object).
        traits: Value,
    },
    /// `group(group_id, traits)`.
    Group {
        /// The group id (`g1` unless the event has one).
        group_id: String,
        /// The traits (an object).
        traits: Value,
    },
}

/// The tables in `tests/plan/`: the main one (a strict plan), and one whose plan allows
/// unplanned events.
pub const TABLES: [&str; 2] = ["cases.json", "cases-unplanned.json"];

/// A table's path: `tests/plan/NAME` in the repository.
pub fn path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("plan")
        .join(name)
}

/// Every table in [`TABLES`].
pub fn load_all() -> Vec<Table> {
    TABLES.iter().map(|name| load(name)).collect()
}

/// Reads a table; panics (failing the test) with the reason if it is malformed.
pub fn load(name: &str) -> Table {
    let path = path(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let table: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    let plan = serde_json::to_string(&table["plan"]).expect("a JSON value serialises");
    let cases = table["cases"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no `cases` array", path.display()))
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or("(unnamed)").to_owned();
            let call = call_of(&c["event"]).unwrap_or_else(|e| panic!("case `{name}`: {e}"));
            let violations = pairs(&c["violations"]);
            Case {
                name,
                call,
                violations,
            }
        })
        .collect();
    Table {
        name: name.to_owned(),
        plan,
        cases,
    }
}

/// The (rule, pointer) pairs of a JSON list of violations (`[{"rule", "pointer", …}]`,
/// as in the table and in an event's `context.plan.violations`), sorted.
pub fn pairs(violations: &Value) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = violations
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|v| {
            (
                v["rule"].as_str().unwrap_or_default().to_owned(),
                v["pointer"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    pairs.sort();
    pairs
}

/// The SDK call that sends `event` (a Segment wire event).
pub fn call_of(event: &Value) -> Result<CaseCall, String> {
    let text = |key: &str| event[key].as_str().map(str::to_owned);
    let object = |key: &str| match &event[key] {
        Value::Null => Ok(Value::Object(Default::default())),
        v @ Value::Object(_) => Ok(v.clone()),
        other => Err(format!("`{key}` is not an object: {other}")),
    };
    let kind = event["type"].as_str().ok_or("the event has no `type`")?;
    Ok(match kind {
        "track" => CaseCall::Track {
            event: text("event").ok_or("a track event without `event`")?,
            properties: object("properties")?,
        },
        "screen" => CaseCall::Screen {
            name: text("name").unwrap_or_default(),
            properties: object("properties")?,
        },
        "page" => CaseCall::Page {
            name: text("name").unwrap_or_default(),
            properties: object("properties")?,
        },
        "identify" => CaseCall::Identify {
            user_id: text("userId").unwrap_or_else(|| "u1".into()),
            traits: object("traits")?,
        },
        "group" => CaseCall::Group {
            group_id: text("groupId").unwrap_or_else(|| "g1".into()),
            traits: object("traits")?,
        },
        other => return Err(format!("no SDK call sends a `{other}` event")),
    })
}

/// Sends the case through a native client.
pub fn send(client: &trailhound::Client, call: &CaseCall) -> Result<(), trailhound::Error> {
    match call.clone() {
        CaseCall::Track { event, properties } => client.track(event, properties),
        CaseCall::Screen { name, properties } => client.screen(name, properties),
        CaseCall::Page { name, properties } => client.page(name, properties),
        CaseCall::Identify { user_id, traits } => client.identify(Some(&user_id), traits),
        CaseCall::Group { group_id, traits } => client.group(group_id, traits),
    }
}
