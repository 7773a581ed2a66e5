//! Python (3.10 or later): a module with a tracker class over `TrailhoundLike`, a
//! `typing.Protocol` that the bindings' `trailhound.Trailhound` satisfies. Properties are
//! keyword-only arguments (required ones without a default), string enums are `str` enums,
//! nested objects frozen keyword-only dataclasses; `mypy --strict` clean.

use super::ir::{EventDef, Field, Model, Ty, Words};
use super::{
    doc_lines, event_doc, header, id_param, param_doc_text, params, single_line, sink_call,
    type_expr, value_expr, Generated, Out, TypeSyntax, ValueSyntax,
};

/// Python's keywords (and `self`, the methods' first parameter).
const KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield", "self",
];

/// Parameter names the generated methods use themselves.
const FIXED_PARAMS: &[&str] = &["user_id", "group_id"];

fn ident(name: String, taken: &[&str]) -> String {
    if KEYWORDS.contains(&name.as_str()) || taken.contains(&name.as_str()) {
        format!("{name}_")
    } else {
        name
    }
}

fn type_name(w: &Words) -> String {
    ident(w.pascal(), &[])
}

/// A Python string literal (JSON's escapes are Python's, and `\u2028` is fine in both).
use super::string_literal as literal;

/// Python expressions for JSON values.
const VALUES: ValueSyntax = ValueSyntax {
    null: "None",
    boolean: |b| if b { "True" } else { "False" }.to_owned(),
    number: |n| n.to_string(),
    string: literal,
    array: |items| format!("[{items}]"),
    object: |entries| format!("{{{entries}}}"),
    entry: |k, v| format!("{}: {v}", literal(k)),
};

/// A docstring: backslashes escaped, and each `"` that another `"` follows or that ends
/// the text, so that no text can end it early.
fn docstring(out: &mut Out, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let text = lines.join("\n").replace('\\', "\\\\");
    let chars: Vec<char> = text.chars().collect();
    let mut escaped = String::new();
    for (i, c) in chars.iter().enumerate() {
        if *c == '"' && chars.get(i + 1).is_none_or(|n| *n == '"') {
            escaped.push('\\');
        }
        escaped.push(*c);
    }
    let esc: Vec<&str> = escaped.split('\n').collect();
    match esc.as_slice() {
        [] => {}
        [one] => out.line(format!("\"\"\"{one}\"\"\"")),
        [first, rest @ ..] => {
            out.line(format!("\"\"\"{first}"));
            for l in rest {
                out.line(l);
            }
            out.line("\"\"\"");
        }
    }
}

const TYPES: TypeSyntax = TypeSyntax {
    string: "str",
    integer: "int",
    number: "float",
    boolean: "bool",
    any: "_t.Any",
    map: |v| format!("dict[str, {v}]"),
    array: |v| format!("list[{v}]"),
    named: type_name,
};

fn py_type(m: &Model, ty: &Ty) -> String {
    type_expr(m, ty, &TYPES)
}

/// `name: type` or `name: type = None` for one field.
fn declaration(m: &Model, f: &Field, name: &str) -> String {
    // `Literal` takes integers and booleans, not floats.
    let literal_ok = |v: &serde_json::Value| v.is_i64() || v.is_u64() || v.is_boolean();
    let ty = match &f.literals {
        Some(values) if values.iter().all(literal_ok) => format!(
            "_t.Literal[{}]",
            values
                .iter()
                .map(|v| value_expr(v, &VALUES))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => py_type(m, &f.ty),
    };
    if !f.required {
        format!("{name}: _t.Optional[{ty}] = None")
    } else if f.nullable {
        format!("{name}: _t.Optional[{ty}]")
    } else {
        format!("{name}: {ty}")
    }
}

/// `p["wire"] = _json(…)`; optional ones only when given.
fn assign(out: &mut Out, f: &Field, access: &str) {
    let wire = literal(&f.wire);
    if let Some(c) = &f.constant {
        out.line(format!("p_[{wire}] = {}", value_expr(c, &VALUES)));
    } else if f.required {
        out.line(format!("p_[{wire}] = _json({access})"));
    } else {
        out.open(format!("if {access} is not None:"));
        out.line(format!("p_[{wire}] = _json({access})"));
        out.depth_out();
    }
}

/// `Args:` lines for the docstring.
fn args_doc(fields: &[&Field], taken: &[&str]) -> Vec<String> {
    let mut lines = Vec::new();
    for f in fields {
        let name = ident(f.words.snake(), taken);
        let text = param_doc_text(f, &name, literal);
        lines.push(if text.is_empty() {
            format!("    {name}")
        } else {
            format!("    {name}: {text}")
        });
    }
    lines
}

/// The module's file name and text.
pub(super) fn generate(m: &Model) -> Generated {
    let mut out = Out::new("    ");
    for l in header(m) {
        out.line(format!("# {l}"));
    }
    let mut doc = vec![format!(
        "Typed tracking for the plan {}, version {}.",
        single_line(&m.plan),
        single_line(&m.version)
    )];
    if let Some(d) = &m.description {
        doc.push(String::new());
        doc.extend(doc_lines(d));
    }
    doc.push(String::new());
    doc.push(
        "Needs Python 3.10 or later; `MusicAppTracker(trailhound.Trailhound.shared())`."
            .replace("MusicAppTracker", &type_name(&m.tracker)),
    );
    docstring(&mut out, &doc);
    out.line("from __future__ import annotations");
    out.blank();
    out.line("import dataclasses as _dc");
    out.line("import enum as _enum");
    out.line("import typing as _t");
    out.blank();
    out.line(format!("PLAN_ID: _t.Final = {}", literal(&m.plan)));
    out.line(format!("PLAN_VERSION: _t.Final = {}", literal(&m.version)));
    out.blank_lines(2);
    out.open("class TrailhoundLike(_t.Protocol):");
    docstring(
        &mut out,
        &["What the generated code needs of a client: `trailhound.Trailhound` has it.".to_owned()],
    );
    out.blank();
    for sig in [
        "def track(self, event: str, properties: dict[str, _t.Any], /) -> object: ...",
        "def identify(self, user_id: _t.Optional[str], traits: dict[str, _t.Any], /) -> object: ...",
        "def screen(self, name: str, properties: dict[str, _t.Any], /) -> object: ...",
        "def page(self, name: str, properties: dict[str, _t.Any], /) -> object: ...",
        "def group(self, group_id: str, traits: dict[str, _t.Any], /) -> object: ...",
    ] {
        out.line(sig);
    }
    out.depth_out();
    out.blank_lines(2);
    out.open("class _PlanObject:");
    out.open("def _to_json(self) -> dict[str, _t.Any]:");
    out.line("raise NotImplementedError");
    out.depth_out();
    out.depth_out();
    out.blank_lines(2);
    out.open("def _json(value: _t.Any) -> _t.Any:");
    for l in [
        "if isinstance(value, _enum.Enum):",
        "    return value.value",
        "if isinstance(value, _PlanObject):",
        "    return value._to_json()",
        "if isinstance(value, (list, tuple)):",
        "    return [_json(v) for v in value]",
        "if isinstance(value, dict):",
        "    return {k: _json(v) for k, v in value.items()}",
        "return value",
    ] {
        out.line(l);
    }
    out.depth_out();

    for e in &m.enums {
        out.blank_lines(2);
        out.open(format!("class {}(str, _enum.Enum):", type_name(&e.name)));
        docstring(
            &mut out,
            &e.doc.as_deref().map(doc_lines).unwrap_or_default(),
        );
        for (wire, w) in &e.values {
            out.line(format!("{} = {}", w.screaming(), literal(wire)));
        }
        out.depth_out();
    }

    for o in &m.objects {
        out.blank_lines(2);
        out.line("@_dc.dataclass(frozen=True, kw_only=True)");
        out.open(format!("class {}(_PlanObject):", type_name(&o.name)));
        let params = params(&o.fields);
        let mut doc = o.doc.as_deref().map(doc_lines).unwrap_or_default();
        if doc.is_empty() {
            doc.push(format!("The object {}.", type_name(&o.name)));
        }
        if !params.is_empty() {
            doc.push(String::new());
            doc.push("Attributes:".to_owned());
            doc.extend(args_doc(&params, &[]));
        }
        docstring(&mut out, &doc);
        out.blank();
        for f in &params {
            out.line(declaration(m, f, &ident(f.words.snake(), &[])));
        }
        out.blank();
        out.open("def _to_json(self) -> dict[str, _t.Any]:");
        out.line("p_: dict[str, _t.Any] = {}");
        for f in &o.fields {
            assign(
                &mut out,
                f,
                &format!("self.{}", ident(f.words.snake(), &[])),
            );
        }
        out.line("return p_");
        out.depth_out();
        out.depth_out();
    }

    out.blank_lines(2);
    out.open(format!("class {}:", type_name(&m.tracker)));
    docstring(
        &mut out,
        &[format!(
            "The events of the plan {}, one method each.",
            single_line(&m.plan)
        )],
    );
    out.blank();
    out.open("def __init__(self, client: TrailhoundLike) -> None:");
    out.line("self._client = client");
    out.depth_out();
    for ev in &m.events {
        out.blank();
        method(&mut out, m, ev);
    }
    out.depth_out();
    Generated {
        file_name: format!("{}.py", m.tracker.snake()),
        source: out.finish(),
    }
}

fn method(out: &mut Out, m: &Model, ev: &EventDef) {
    let params = params(&ev.fields);
    let mut args = vec!["self".to_owned()];
    args.extend(id_param(ev, "user_id: _t.Optional[str]", "group_id: str"));
    if !params.is_empty() {
        args.push("*".to_owned());
    }
    for f in &params {
        args.push(declaration(m, f, &ident(f.words.snake(), FIXED_PARAMS)));
    }
    let name = ident(ev.func.snake(), &[]);
    if args.len() <= 2 {
        out.open(format!("def {name}({}) -> None:", args.join(", ")));
    } else {
        out.open(format!("def {name}("));
        for a in &args {
            out.line(format!("{a},"));
        }
        out.close(") -> None:");
        out.depth_in();
    }
    let mut doc = event_doc(ev, literal);
    if !params.is_empty() {
        doc.push(String::new());
        doc.push("Args:".to_owned());
        doc.extend(args_doc(&params, FIXED_PARAMS));
    }
    docstring(out, &doc);
    out.line("p_: dict[str, _t.Any] = {}");
    for f in &ev.fields {
        assign(out, f, &ident(f.words.snake(), FIXED_PARAMS));
    }
    let (call, first) = sink_call(ev, "user_id", "group_id", literal);
    out.line(format!("self._client.{call}({first}, p_)"));
    out.depth_out();
}
