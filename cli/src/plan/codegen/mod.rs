//! `trailhound plan codegen`: typed tracking functions generated from a plan file, one per
//! event, for Kotlin, Swift, TypeScript, Python and Rust.
//!
//! Each event becomes one method of a tracker type named after the plan
//! (`music-app` → `MusicAppTracker`), with the event's description as its doc comment:
//! required properties are required parameters, optional ones optional, string enums are
//! enum types whose wire value is the plan's string, nested objects are generated types,
//! and the method calls the SDK's own `track`/`screen`/`page`/`identify`/`group` with the
//! properties under their names as written in the plan. A plan change that breaks a call
//! site (a new required property, a removed event, a narrowed enum) is a compile error in
//! the typed languages.
//!
//! # Layout
//!
//! - [`ir`]: the language-neutral model (names split into words, types decided once).
//! - `rust`, `typescript`, `python`, `kotlin`, `swift`: one printer per language.
//!
//! The output is deterministic: the same plan gives the same bytes.
use std::path::PathBuf;

use anyhow::Context as _;
use trailhound_core::plan::model::PlanFile;
use trailhound_core::plan::Plan;

pub mod ir;
mod kotlin;
mod python;
mod rust;
mod swift;
mod typescript;

pub use ir::CodegenError;

/// The languages `plan codegen` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Kotlin, against the bindings' `dev.trailhound.Trailhound` (or any `TrailhoundSink`).
    Kotlin,
    /// Swift, against the bindings' `Trailhound` (or any `TrailhoundSink`).
    Swift,
    /// TypeScript, against a structural interface the browser client satisfies.
    Typescript,
    /// Python, against a `typing.Protocol` the bindings' `Trailhound` satisfies.
    Python,
    /// Rust, against `trailhound::Client`.
    Rust,
}

/// Arguments of `trailhound plan codegen`.
#[derive(Debug, clap::Args)]
pub struct CodegenArgs {
    /// The plan file (JSON).
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// The language to generate.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// The directory to write the generated file into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The Kotlin package of the generated file.
    #[arg(long, value_name = "NAME", default_value = "analytics")]
    pub package: String,
}

/// Settings of the generators beyond the language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The Kotlin package (dotted).
    pub kotlin_package: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            kotlin_package: "analytics".to_owned(),
        }
    }
}

/// One generated source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// Its file name, such as `music_app_tracker.rs`.
    pub file_name: String,
    /// Its text.
    pub source: String,
}

/// Generates the typed tracking code of a (linted) plan for one language.
pub fn generate(file: &PlanFile, lang: Lang, options: &Options) -> Result<Generated, CodegenError> {
    let model = ir::Model::build(file)?;
    Ok(match lang {
        Lang::Rust => rust::generate(&model),
        Lang::Typescript => typescript::generate(&model),
        Lang::Python => python::generate(&model),
        Lang::Kotlin => kotlin::generate(&model, &check_package(&options.kotlin_package)?),
        Lang::Swift => swift::generate(&model),
    })
}

/// A dotted Kotlin package of plain identifiers.
fn check_package(package: &str) -> Result<String, CodegenError> {
    let ok = package.split('.').all(|part| {
        part.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !kotlin::is_keyword(part)
    });
    if ok {
        Ok(package.to_owned())
    } else {
        Err(CodegenError {
            at: String::new(),
            message: format!(
                "--package {package:?} is not a Kotlin package name (dotted identifiers, no keywords)"
            ),
        })
    }
}

/// Generates the typed tracking code for `args.plan` into `args.out`. The plan must pass
/// `trailhound plan lint`: codegen never types a plan that the validator would refuse.
pub fn run(args: &CodegenArgs) -> anyhow::Result<()> {
    let text = super::plan_text(&args.plan)
        .with_context(|| format!("cannot read {}", args.plan.display()))?;
    let plan = Plan::parse(&text)
        .with_context(|| format!("the plan {} is refused", args.plan.display()))?;
    let options = Options {
        kotlin_package: args.package.clone(),
    };
    let generated = generate(plan.file(), args.lang, &options)
        .with_context(|| format!("{}", args.plan.display()))?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let path = args.out.join(&generated.file_name);
    std::fs::write(&path, &generated.source)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}

/// The lines of a doc text: each line trimmed at the end, empty lines kept inside, none at
/// the ends; control characters other than newline become spaces.
pub(crate) fn doc_lines(text: &str) -> Vec<String> {
    let clean: String = text
        .chars()
        .map(|c| {
            if c != '\n' && (c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')) {
                ' '
            } else {
                c
            }
        })
        .collect();
    let lines: Vec<String> = clean.lines().map(|l| l.trim_end().to_owned()).collect();
    let start = lines.iter().position(|l| !l.is_empty());
    let end = lines.iter().rposition(|l| !l.is_empty());
    match (start, end) {
        (Some(s), Some(e)) => lines[s..=e].to_vec(),
        _ => Vec::new(),
    }
}

/// The doc text of a field: its description, then its notes (`>= 0`, `an email address`).
pub(crate) fn field_doc(f: &ir::Field) -> Vec<String> {
    let mut lines = f.doc.as_deref().map(doc_lines).unwrap_or_default();
    if !f.notes.is_empty() {
        lines.push(format!("({})", f.notes.join("; ")));
    }
    lines
}

/// A TypeScript or Python string literal (JSON's escapes are valid in both).
pub(crate) fn string_literal(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// A double-quoted literal for languages whose escapes differ from JSON's: `\\` and `"`
/// (and `extra`, such as Kotlin's `$`) escaped with a backslash, control characters with
/// `unicode(code point)`.
pub(crate) fn quoted(s: &str, unicode: fn(u32) -> String, extra: &[char]) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '\\' || c == '"' || extra.contains(&c) {
            out.push('\\');
            out.push(c);
        } else if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.push_str(&unicode(c as u32));
        } else {
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// `\u{7f}`: Rust's and Swift's escape.
pub(crate) fn brace_escape(c: u32) -> String {
    format!("\\u{{{c:x}}}")
}

/// The header comment lines: what made the file and from which plan.
pub(crate) fn header(model: &ir::Model) -> Vec<String> {
    vec![
        "Generated by `trailhound plan codegen`: do not edit, changes are lost when it is generated again.".to_owned(),
        format!(
            "Tracking plan {}, version {}.",
            single_line(&model.plan),
            single_line(&model.version)
        ),
    ]
}

/// A value shown on one comment line.
pub(crate) fn single_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// How one language spells the plan's types, for [`type_expr`].
pub(crate) struct TypeSyntax {
    /// [`ir::Ty::String`].
    pub(crate) string: &'static str,
    /// [`ir::Ty::Integer`].
    pub(crate) integer: &'static str,
    /// [`ir::Ty::Number`].
    pub(crate) number: &'static str,
    /// [`ir::Ty::Boolean`].
    pub(crate) boolean: &'static str,
    /// [`ir::Ty::Any`].
    pub(crate) any: &'static str,
    /// A map of string keys to values of the given type.
    pub(crate) map: fn(&str) -> String,
    /// A list of the given type.
    pub(crate) array: fn(&str) -> String,
    /// A generated enum or object type, by its name.
    pub(crate) named: fn(&ir::Words) -> String,
}

/// The type `ty` in the language that `syntax` spells.
pub(crate) fn type_expr(m: &ir::Model, ty: &ir::Ty, syntax: &TypeSyntax) -> String {
    use ir::Ty;
    match ty {
        Ty::String => syntax.string.to_owned(),
        Ty::Integer => syntax.integer.to_owned(),
        Ty::Number => syntax.number.to_owned(),
        Ty::Boolean => syntax.boolean.to_owned(),
        Ty::Any => syntax.any.to_owned(),
        Ty::Map(v) => (syntax.map)(&type_expr(m, v, syntax)),
        Ty::Array(v) => (syntax.array)(&type_expr(m, v, syntax)),
        Ty::Enum(i) => (syntax.named)(&m.enums[*i].name),
        Ty::Object(i) => (syntax.named)(&m.objects[*i].name),
    }
}

/// How Kotlin and Swift turn a value of a generated type into what the SDK's maps take,
/// for [`member_to_json`]: objects by their `toJson()`, enums by a member.
pub(crate) struct ToJsonSyntax {
    /// The member giving an enum's wire string (`value`, `rawValue`).
    pub(crate) enum_value: &'static str,
    /// A list with each element converted: `(list, variable, the element's conversion)`.
    pub(crate) map_list: fn(&str, &str, &str) -> String,
    /// A map with each value converted: `(map, variable, the value's conversion)`.
    pub(crate) map_values: fn(&str, &str, &str) -> String,
}

/// `expr` (non-null, of type `ty`) as the SDK's map values take it; `depth` numbers the
/// closure variables of nested lists and maps.
pub(crate) fn member_to_json(ty: &ir::Ty, expr: &str, depth: usize, s: &ToJsonSyntax) -> String {
    use ir::Ty;
    let var = format!("v{depth}");
    match ty {
        Ty::Enum(_) => format!("{expr}.{}", s.enum_value),
        Ty::Object(_) => format!("{expr}.toJson()"),
        Ty::Array(v) if v.needs_conversion(true) => {
            (s.map_list)(expr, &var, &member_to_json(v, &var, depth + 1, s))
        }
        Ty::Map(v) if v.needs_conversion(true) => {
            (s.map_values)(expr, &var, &member_to_json(v, &var, depth + 1, s))
        }
        _ => expr.to_owned(),
    }
}

/// How one language writes a JSON value as an expression, for [`value_expr`].
pub(crate) struct ValueSyntax {
    /// `null`.
    pub(crate) null: &'static str,
    /// `true` / `false`.
    pub(crate) boolean: fn(bool) -> String,
    /// A number.
    pub(crate) number: fn(&serde_json::Number) -> String,
    /// A string.
    pub(crate) string: fn(&str) -> String,
    /// A list, of its items' expressions joined by `, `.
    pub(crate) array: fn(&str) -> String,
    /// A map, of its entries joined by `, ` (empty for `{}`).
    pub(crate) object: fn(&str) -> String,
    /// One map entry: the key as written in the plan, and the value's expression.
    pub(crate) entry: fn(&str, &str) -> String,
}

/// An expression of the language that `syntax` writes for the JSON value `v`.
pub(crate) fn value_expr(v: &serde_json::Value, syntax: &ValueSyntax) -> String {
    use serde_json::Value as V;
    match v {
        V::Null => syntax.null.to_owned(),
        V::Bool(b) => (syntax.boolean)(*b),
        V::Number(n) => (syntax.number)(n),
        V::String(s) => (syntax.string)(s),
        V::Array(a) => (syntax.array)(
            &a.iter()
                .map(|v| value_expr(v, syntax))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        V::Object(o) => (syntax.object)(
            &o.iter()
                .map(|(k, v)| (syntax.entry)(k, &value_expr(v, syntax)))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    }
}

/// The fields a caller passes: all but the constants.
pub(crate) fn params(fields: &[ir::Field]) -> Vec<&ir::Field> {
    fields.iter().filter(|f| f.is_param()).collect()
}

/// The id parameter that identify's and group's methods take first, as the language
/// declares it (`user_id`, `group_id`); none for the other events.
pub(crate) fn id_param(ev: &ir::EventDef, user_id: &str, group_id: &str) -> Option<String> {
    use trailhound_core::MessageType;
    match ev.kind {
        MessageType::Identify => Some(user_id.to_owned()),
        MessageType::Group => Some(group_id.to_owned()),
        _ => None,
    }
}

/// A `/** … */` comment (KDoc, JSDoc) of `lines`, which the caller has already kept from
/// closing it early: one line stays on one line, an empty list writes nothing.
pub(crate) fn star_comment(out: &mut Out, lines: &[String]) {
    match lines {
        [] => {}
        [one] => out.line(format!("/** {one} */")),
        many => {
            out.line("/**");
            for l in many {
                if l.is_empty() {
                    out.line(" *");
                } else {
                    out.line(format!(" * {l}"));
                }
            }
            out.line(" */");
        }
    }
}

/// Line comments (`///`, `//!`) of `lines`: an empty line is the bare `prefix`.
pub(crate) fn line_comment(out: &mut Out, prefix: &str, lines: &[String]) {
    for l in lines {
        if l.is_empty() {
            out.line(prefix);
        } else {
            out.line(format!("{prefix} {l}"));
        }
    }
}

/// The doc lines of an event's method: the event's description, then which call it sends
/// (the event name as a `literal` of the language).
pub(crate) fn event_doc(ev: &ir::EventDef, literal: fn(&str) -> String) -> Vec<String> {
    let mut doc = ev.doc.as_deref().map(doc_lines).unwrap_or_default();
    if !doc.is_empty() {
        doc.push(String::new());
    }
    doc.push(match &ev.name {
        Some(n) => format!("Sends `{}` {}.", ev.kind.as_str(), literal(n)),
        None => format!("Sends `{}`.", ev.kind.as_str()),
    });
    doc
}

/// The doc lines of the tracker type: the plan, its description, then `usage`.
pub(crate) fn tracker_doc(m: &ir::Model, usage: String) -> Vec<String> {
    let mut doc = vec![format!(
        "The events of the plan {}, one method each.",
        single_line(&m.plan)
    )];
    if let Some(d) = &m.description {
        doc.push(String::new());
        doc.extend(doc_lines(d));
    }
    doc.push(String::new());
    doc.push(usage);
    doc
}

/// The doc text of a parameter shown as `name`: [`field_doc`] on one line, with the wire
/// name (a `literal` of the language) when it differs from `name`.
pub(crate) fn param_doc_text(f: &ir::Field, name: &str, literal: fn(&str) -> String) -> String {
    let text = field_doc(f).join(" ");
    if name == f.wire {
        text
    } else {
        format!("{text} (sent as {})", literal(&f.wire))
            .trim()
            .to_owned()
    }
}

/// The client method an event's call goes to and its first argument: the `user_id` or
/// `group_id` parameter (as the language names it) for identify and group, the event's
/// name as a `literal` of the language otherwise.
pub(crate) fn sink_call(
    ev: &ir::EventDef,
    user_id: &str,
    group_id: &str,
    literal: fn(&str) -> String,
) -> (&'static str, String) {
    use trailhound_core::MessageType;
    let first = match ev.kind {
        MessageType::Identify => user_id.to_owned(),
        MessageType::Group => group_id.to_owned(),
        // The model gives every track, screen and page event a name.
        _ => literal(ev.name.as_deref().unwrap_or_default()),
    };
    (ev.kind.as_str(), first)
}

/// Indented source text.
pub(crate) struct Out {
    text: String,
    depth: usize,
    unit: &'static str,
}

impl Out {
    /// An empty text indented by `unit` per level.
    pub(crate) fn new(unit: &'static str) -> Out {
        Out {
            text: String::new(),
            depth: 0,
            unit,
        }
    }

    /// One line at the current depth (an empty one has no indentation).
    pub(crate) fn line(&mut self, s: impl AsRef<str>) {
        let s = s.as_ref();
        if !s.is_empty() {
            for _ in 0..self.depth {
                self.text.push_str(self.unit);
            }
            self.text.push_str(s);
        }
        self.text.push('\n');
    }

    /// A line, then one level deeper.
    pub(crate) fn open(&mut self, s: impl AsRef<str>) {
        self.line(s);
        self.depth += 1;
    }

    /// One level deeper.
    pub(crate) fn depth_in(&mut self) {
        self.depth += 1;
    }

    /// One level up.
    pub(crate) fn depth_out(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// One level up, then a line.
    pub(crate) fn close(&mut self, s: impl AsRef<str>) {
        self.depth = self.depth.saturating_sub(1);
        self.line(s);
    }

    /// An empty line, unless the text already ends with one (or is empty).
    pub(crate) fn blank(&mut self) {
        if !self.text.is_empty() && !self.text.ends_with("\n\n") {
            self.text.push('\n');
        }
    }

    /// Exactly `n` empty lines before what follows (fewer if the text is empty).
    pub(crate) fn blank_lines(&mut self, n: usize) {
        if self.text.is_empty() {
            return;
        }
        while self.text.ends_with("\n\n") {
            self.text.pop();
        }
        for _ in 0..n {
            self.text.push('\n');
        }
    }

    /// The text.
    pub(crate) fn finish(self) -> String {
        self.text
    }
}
