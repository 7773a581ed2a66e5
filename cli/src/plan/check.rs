//! `trailhound plan check PLAN EVENTS`: checks exported events against a plan, for CI.
//!
//! EVENTS is NDJSON of Segment wire events, one per line: what `trailhound queue export`
//! writes and what the browser package's `exportQueue()` returns. Every line goes through
//! [`Plan::check_wire`], the validator every platform uses. A line that is not a wire event
//! (not JSON, not an object, no known `type`, a `track` without `event`) is reported as an
//! error naming the line, and the lines after it are still checked.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;
use trailhound_core::message::MessageType;
use trailhound_core::plan::{event_label, Plan, Rule, Violation};

use crate::collect::validate::json_kind;

/// `trailhound plan check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The plan file (JSON).
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// NDJSON events (`-` for standard input), as `queue export` or `exportQueue()` write them.
    #[arg(value_name = "EVENTS")]
    pub events: PathBuf,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The violations of one line.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LineReport {
    /// 1-based line number in the events file.
    pub line: usize,
    /// The event's `messageId`, when it has one.
    pub message_id: Option<String>,
    /// The event as violations name it (`Song Played`, `screen:Player`, `identify`).
    pub event: String,
    /// What it broke, in the validator's canonical order.
    pub violations: Vec<Violation>,
}

/// A line that is not a wire event.
#[derive(Debug, Clone, Serialize)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// Why it is not an event.
    pub message: String,
}

/// How often one rule was broken.
#[derive(Debug, Clone, Serialize)]
pub struct RuleCount {
    /// The rule's stable id.
    pub rule: Rule,
    /// Violations of it.
    pub count: u64,
}

/// How often an event that is not in the plan was seen.
#[derive(Debug, Clone, Serialize)]
pub struct EventCount {
    /// The event's label.
    pub event: String,
    /// Lines with it.
    pub count: u64,
}

/// The whole report (the `--json` output).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The plan's id.
    pub plan: String,
    /// The plan's version.
    pub version: String,
    /// Events checked (lines that were events).
    pub events: u64,
    /// Events with no violation.
    pub passed: u64,
    /// Events with at least one violation.
    pub failed: u64,
    /// Violations in all.
    pub violations: u64,
    /// Lines that were not events.
    pub malformed: u64,
    /// Every event with violations, in line order.
    pub lines: Vec<LineReport>,
    /// Every malformed line, in line order.
    pub errors: Vec<LineError>,
    /// The rules broken, most often first.
    pub rules: Vec<RuleCount>,
    /// Events not in the plan, most often first.
    pub unplanned: Vec<EventCount>,
}

impl Report {
    /// Whether CI should fail: any violation or malformed line.
    pub fn should_fail(&self) -> bool {
        self.violations > 0 || self.malformed > 0
    }
}

/// Why a parsed line is not a wire event, or its label.
fn label_of(event: &Value) -> Result<String, String> {
    let Some(obj) = event.as_object() else {
        return Err(format!(
            "expected a JSON object, found {}",
            json_kind(event)
        ));
    };
    let kind = match obj.get("type") {
        Some(Value::String(t)) => MessageType::parse(t).ok_or_else(|| {
            format!(
                "unknown \"type\" {t:?} (expected track, identify, screen, page, group or alias)"
            )
        })?,
        Some(other) => return Err(format!("\"type\" is {}, not a string", json_kind(other))),
        None => return Err("no \"type\"".to_owned()),
    };
    let name = match kind {
        MessageType::Track => match obj.get("event") {
            Some(Value::String(e)) if !e.is_empty() => Some(e.as_str()),
            _ => return Err("a track event without a non-empty string \"event\"".to_owned()),
        },
        MessageType::Screen | MessageType::Page => obj.get("name").and_then(Value::as_str),
        _ => None,
    };
    Ok(event_label(kind, name))
}

/// Checks every line of `reader` against `plan`. Fails only when reading fails.
pub fn check_lines(plan: &Plan, mut reader: impl BufRead) -> io::Result<Report> {
    let mut report = Report {
        plan: plan.id().to_owned(),
        version: plan.version().to_owned(),
        events: 0,
        passed: 0,
        failed: 0,
        violations: 0,
        malformed: 0,
        lines: Vec::new(),
        errors: Vec::new(),
        rules: Vec::new(),
        unplanned: Vec::new(),
    };
    let mut rules: BTreeMap<Rule, u64> = BTreeMap::new();
    let mut unplanned: BTreeMap<String, u64> = BTreeMap::new();
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        let mut error = |message: String| {
            report.malformed += 1;
            report.errors.push(LineError {
                line: line_no,
                message,
            });
        };
        let Ok(text) = std::str::from_utf8(&buf) else {
            error("not UTF-8".to_owned());
            continue;
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let event: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                error(format!("not JSON: {e}"));
                continue;
            }
        };
        let label = match label_of(&event) {
            Ok(l) => l,
            Err(m) => {
                error(m);
                continue;
            }
        };
        report.events += 1;
        let violations = plan.check_wire(&event);
        if violations.is_empty() {
            report.passed += 1;
            continue;
        }
        report.failed += 1;
        report.violations += violations.len() as u64;
        for v in &violations {
            *rules.entry(v.rule).or_default() += 1;
            if v.rule == Rule::UnplannedEvent {
                *unplanned.entry(v.event.clone()).or_default() += 1;
            }
        }
        report.lines.push(LineReport {
            line: line_no,
            message_id: event
                .get("messageId")
                .and_then(Value::as_str)
                .map(str::to_owned),
            event: label,
            violations,
        });
    }
    report.rules = rules
        .into_iter()
        .map(|(rule, count)| RuleCount { rule, count })
        .collect();
    report
        .rules
        .sort_by(|a, b| b.count.cmp(&a.count).then(a.rule.cmp(&b.rule)));
    report.unplanned = unplanned
        .into_iter()
        .map(|(event, count)| EventCount { event, count })
        .collect();
    report
        .unplanned
        .sort_by(|a, b| b.count.cmp(&a.count).then(a.event.cmp(&b.event)));
    Ok(report)
}

/// The report as text: one block per event with violations and one line per malformed
/// line, in line order, then the summary.
pub fn render_text(report: &Report, source: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut lines = report.lines.iter().peekable();
    let mut errors = report.errors.iter().peekable();
    loop {
        let take_line = match (lines.peek(), errors.peek()) {
            (Some(l), Some(e)) => l.line < e.line,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if take_line {
            let Some(l) = lines.next() else { break };
            let id = l
                .message_id
                .as_deref()
                .map(|m| format!(" (messageId {m})"))
                .unwrap_or_default();
            let _ = writeln!(out, "line {}{id}: {}", l.line, l.event);
            for v in &l.violations {
                let _ = writeln!(
                    out,
                    "  {} at {}: expected {}, found {}",
                    v.rule.as_str(),
                    v.pointer,
                    v.expected,
                    v.found
                );
            }
        } else if let Some(e) = errors.next() {
            let _ = writeln!(out, "line {}: malformed: {}", e.line, e.message);
        }
    }
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let _ = writeln!(
        out,
        "{source}: {} checked against {} {}: {} passed, {} with violations ({}), {}",
        plural(report.events, "event", "events"),
        report.plan,
        report.version,
        report.passed,
        report.failed,
        plural(report.violations, "violation", "violations"),
        plural(report.malformed, "malformed line", "malformed lines"),
    );
    if !report.rules.is_empty() {
        let rules: Vec<String> = report
            .rules
            .iter()
            .map(|r| format!("{} {}", r.rule.as_str(), r.count))
            .collect();
        let _ = writeln!(out, "most violated rules: {}", rules.join(", "));
    }
    if !report.unplanned.is_empty() {
        let events: Vec<String> = report
            .unplanned
            .iter()
            .map(|e| format!("{:?} {}", e.event, e.count))
            .collect();
        let _ = writeln!(out, "unplanned events: {}", events.join(", "));
    }
    out
}

/// Runs `plan check`: the report on standard output; exit 1 when any event broke the plan
/// or any line was not an event.
pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let plan = super::lint::load_or_fail(&args.plan)?;
    let source = args.events.display().to_string();
    let report = if args.events.as_os_str() == "-" {
        check_lines(&plan, io::stdin().lock())
    } else {
        let f = File::open(&args.events).with_context(|| source.clone())?;
        check_lines(&plan, BufReader::new(f))
    }
    .with_context(|| format!("reading {source}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_text(&report, &source));
    }
    Ok(if report.should_fail() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
