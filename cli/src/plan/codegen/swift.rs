//! Swift: a tracker class over `TrailhoundSink`, a protocol whose requirements are exactly
//! the bindings' `Trailhound` methods (so `extension Trailhound: TrailhoundSink {}` is all
//! the glue). Required properties are labelled parameters without a default, optional ones
//! optionals with `= nil`; string enums are `String` raw-value enums, nested objects
//! structs. Not compiled here (no Swift toolchain): checked by a golden copy and a
//! structural test.

use super::ir::{EventDef, Field, Model, Ty, Words};
use super::{
    brace_escape, doc_lines, event_doc, header, id_param, line_comment, member_to_json,
    param_doc_text, params, quoted, sink_call, tracker_doc, type_expr, value_expr, Generated, Out,
    ToJsonSyntax, TypeSyntax, ValueSyntax,
};
use trailhound_core::MessageType;

/// Swift's keywords: escaped with backticks.
const KEYWORDS: &[&str] = &[
    "associatedtype",
    "class",
    "deinit",
    "enum",
    "extension",
    "fileprivate",
    "func",
    "import",
    "init",
    "inout",
    "internal",
    "let",
    "open",
    "operator",
    "private",
    "precedencegroup",
    "protocol",
    "public",
    "rethrows",
    "static",
    "struct",
    "subscript",
    "typealias",
    "var",
    "break",
    "case",
    "catch",
    "continue",
    "default",
    "defer",
    "do",
    "else",
    "fallthrough",
    "for",
    "guard",
    "if",
    "in",
    "repeat",
    "return",
    "throw",
    "switch",
    "where",
    "while",
    "Any",
    "as",
    "await",
    "false",
    "is",
    "nil",
    "super",
    "throws",
    "true",
    "try",
    "async",
];

/// Names that backticks do not make ordinary identifiers everywhere: suffixed with `_`.
const NOT_ESCAPABLE: &[&str] = &["self", "Self", "Type", "Protocol"];

/// Parameter names the generated methods use themselves.
const FIXED_PARAMS: &[&str] = &["userId", "groupId"];

/// Members that `String` raw-value, `CaseIterable` enums have already.
const ENUM_MEMBERS: &[&str] = &["rawValue", "allCases", "hashValue"];

/// Member names the generated structs use themselves.
const STRUCT_MEMBERS: &[&str] = &["toJson"];

fn ident(name: String, taken: &[&str]) -> String {
    if NOT_ESCAPABLE.contains(&name.as_str()) || taken.contains(&name.as_str()) {
        format!("{name}_")
    } else if KEYWORDS.contains(&name.as_str()) {
        format!("`{name}`")
    } else {
        name
    }
}

fn type_name(w: &Words) -> String {
    ident(w.pascal(), &[])
}

fn literal(s: &str) -> String {
    quoted(s, brace_escape, &[])
}

/// Swift expressions for JSON values.
const VALUES: ValueSyntax = ValueSyntax {
    null: "nil",
    boolean: |b| b.to_string(),
    number: |n| n.to_string(),
    string: literal,
    array: |items| format!("[{items}] as [Any?]"),
    object: |entries| {
        if entries.is_empty() {
            "[:] as [String: Any?]".to_owned()
        } else {
            format!("[{entries}] as [String: Any?]")
        }
    },
    entry: |k, v| format!("{}: {v}", literal(k)),
};

fn doc(out: &mut Out, lines: &[String]) {
    line_comment(out, "///", lines);
}

const TYPES: TypeSyntax = TypeSyntax {
    string: "String",
    integer: "Int",
    number: "Double",
    boolean: "Bool",
    any: "Any?",
    map: |v| format!("[String: {v}]"),
    array: |v| format!("[{v}]"),
    named: type_name,
};

fn sw_type(m: &Model, ty: &Ty) -> String {
    type_expr(m, ty, &TYPES)
}

const TO_JSON: ToJsonSyntax = ToJsonSyntax {
    enum_value: "rawValue",
    map_list: |e, v, x| format!("{e}.map {{ {v} in {x} }}"),
    map_values: |e, v, x| format!("{e}.mapValues {{ {v} in {x} }}"),
};

/// `expr` (non-null, of type `ty`) as the SDK's map values take it.
fn to_json(ty: &Ty, expr: &str) -> String {
    member_to_json(ty, expr, 0, &TO_JSON)
}

/// `name: Type`, `name: Type? = nil`.
fn declaration(m: &Model, f: &Field, name: &str) -> String {
    let ty = sw_type(m, &f.ty);
    let optional_ty = if ty.ends_with('?') {
        ty.clone()
    } else {
        format!("{ty}?")
    };
    if !f.required {
        format!("{name}: {optional_ty} = nil")
    } else if f.nullable {
        format!("{name}: {optional_ty}")
    } else {
        format!("{name}: {ty}")
    }
}

/// `p_.updateValue(…, forKey: "wire")` (a `nil` value is kept as JSON null, unlike
/// subscript assignment, which would remove the key); optional ones only when given.
fn assign(out: &mut Out, f: &Field, access: &str) {
    let wire = literal(&f.wire);
    if let Some(c) = &f.constant {
        out.line(format!(
            "p_.updateValue({}, forKey: {wire})",
            value_expr(c, &VALUES)
        ));
        return;
    }
    if !f.required {
        out.open(format!("if let v = {access} {{"));
        out.line(format!(
            "p_.updateValue({}, forKey: {wire})",
            to_json(&f.ty, "v")
        ));
        out.close("}");
    } else if f.nullable && f.ty.needs_conversion(true) {
        out.line(format!(
            "p_.updateValue({access}.map {{ v in {} }}, forKey: {wire})",
            to_json(&f.ty, "v")
        ));
    } else {
        out.line(format!(
            "p_.updateValue({}, forKey: {wire})",
            to_json(&f.ty, access)
        ));
    }
}

fn params_doc(fields: &[&Field], taken: &[&str]) -> Vec<String> {
    let mut lines = Vec::new();
    for f in fields {
        let name = ident(f.words.camel(), taken);
        let name = name.trim_matches('`');
        let text = param_doc_text(f, name, literal);
        lines.push(if text.is_empty() {
            format!("  - {name}")
        } else {
            format!("  - {name}: {text}")
        });
    }
    lines
}

/// The file's name and text.
pub(super) fn generate(m: &Model) -> Generated {
    let mut out = Out::new("    ");
    for l in header(m) {
        out.line(format!("// {l}"));
    }
    out.blank();
    out.line("import Trailhound");
    out.blank();
    doc(
        &mut out,
        &[
            "What the generated code needs of a client: exactly the methods of the bindings'"
                .to_owned(),
            "`Trailhound`, which conforms below; a test can pass a recording fake.".to_owned(),
        ],
    );
    out.open("public protocol TrailhoundSink {");
    out.line("func track(_ event: String, properties: [String: Any?]) throws");
    out.line("func identify(_ userId: String?, traits: [String: Any?]) throws");
    out.line("func screen(_ name: String, properties: [String: Any?]) throws");
    out.line("func page(_ name: String, properties: [String: Any?]) throws");
    out.line("func group(_ groupId: String, traits: [String: Any?]) throws");
    out.close("}");
    out.blank();
    out.line("extension Trailhound: TrailhoundSink {}");

    for e in &m.enums {
        out.blank();
        doc(
            &mut out,
            &e.doc.as_deref().map(doc_lines).unwrap_or_default(),
        );
        out.open(format!(
            "public enum {}: String, CaseIterable, Sendable {{",
            type_name(&e.name)
        ));
        for (wire, w) in &e.values {
            out.line(format!(
                "case {} = {}",
                ident(w.camel(), ENUM_MEMBERS),
                literal(wire)
            ));
        }
        out.close("}");
    }

    for o in &m.objects {
        out.blank();
        let params = params(&o.fields);
        let mut lines = o.doc.as_deref().map(doc_lines).unwrap_or_default();
        if !params.is_empty() {
            if !lines.is_empty() {
                lines.push(String::new());
            }
            lines.push("- Properties:".to_owned());
            lines.extend(params_doc(&params, STRUCT_MEMBERS));
        }
        doc(&mut out, &lines);
        out.open(format!("public struct {} {{", type_name(&o.name)));
        for f in &params {
            let name = ident(f.words.camel(), STRUCT_MEMBERS);
            let ty = sw_type(m, &f.ty);
            let ty = if f.is_optional_type() && !ty.ends_with('?') {
                format!("{ty}?")
            } else {
                ty
            };
            out.line(format!("public var {name}: {ty}"));
        }
        out.blank();
        out.line("/// Every property; optional ones default to not sent.");
        let args: Vec<String> = params
            .iter()
            .map(|f| declaration(m, f, &ident(f.words.camel(), STRUCT_MEMBERS)))
            .collect();
        out.open(format!("public init({}) {{", args.join(", ")));
        for f in &params {
            let name = ident(f.words.camel(), STRUCT_MEMBERS);
            out.line(format!("self.{name} = {name}"));
        }
        out.close("}");
        out.blank();
        out.line("/// The properties as sent, under their plan names.");
        out.open("public func toJson() -> [String: Any?] {");
        out.line("var p_: [String: Any?] = [:]");
        for f in &o.fields {
            assign(
                &mut out,
                f,
                &format!("self.{}", ident(f.words.camel(), STRUCT_MEMBERS)),
            );
        }
        out.line("return p_");
        out.close("}");
        out.close("}");
    }

    out.blank();
    let lines = tracker_doc(
        m,
        format!(
            "Use: `{}(Trailhound.shared)`; a test can pass a `TrailhoundSink` fake.",
            type_name(&m.tracker)
        ),
    );
    doc(&mut out, &lines);
    out.open(format!("public final class {} {{", type_name(&m.tracker)));
    out.line("/// The plan's id.");
    out.line(format!("public static let planId = {}", literal(&m.plan)));
    out.line("/// The plan's version.");
    out.line(format!(
        "public static let planVersion = {}",
        literal(&m.version)
    ));
    out.blank();
    out.line("private let sink: TrailhoundSink");
    out.blank();
    out.line("/// Sends the plan's events through `sink` (such as `Trailhound.shared`).");
    out.open("public init(_ sink: TrailhoundSink) {");
    out.line("self.sink = sink");
    out.close("}");
    for ev in &m.events {
        out.blank();
        method(&mut out, m, ev);
    }
    out.close("}");
    Generated {
        file_name: format!("{}.swift", type_name(&m.tracker)),
        source: out.finish(),
    }
}

fn method(out: &mut Out, m: &Model, ev: &EventDef) {
    let params = params(&ev.fields);
    let mut args: Vec<String> = id_param(ev, "_ userId: String?", "_ groupId: String")
        .into_iter()
        .collect();
    for f in &params {
        args.push(declaration(m, f, &ident(f.words.camel(), FIXED_PARAMS)));
    }
    let mut lines = event_doc(ev, literal);
    if !params.is_empty() {
        lines.push(String::new());
        lines.push("- Parameters:".to_owned());
        lines.extend(params_doc(&params, FIXED_PARAMS));
    }
    doc(out, &lines);
    let name = ident(ev.func.camel(), &[]);
    if args.is_empty() {
        out.open(format!("public func {name}() throws {{"));
    } else {
        out.open(format!("public func {name}("));
        for (i, a) in args.iter().enumerate() {
            let comma = if i + 1 < args.len() { "," } else { "" };
            out.line(format!("{a}{comma}"));
        }
        out.close(") throws {");
        out.depth_in();
    }
    out.line(if ev.fields.is_empty() {
        "let p_: [String: Any?] = [:]"
    } else {
        "var p_: [String: Any?] = [:]"
    });
    for f in &ev.fields {
        assign(out, f, &ident(f.words.camel(), FIXED_PARAMS));
    }
    let label = match ev.kind {
        MessageType::Identify | MessageType::Group => "traits",
        _ => "properties",
    };
    let (call, first) = sink_call(ev, "userId", "groupId", literal);
    out.line(format!("try self.sink.{call}({first}, {label}: p_)"));
    out.close("}");
}
