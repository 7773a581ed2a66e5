//! TypeScript: a module with a tracker class over `TrailhoundLike`, a structural interface
//! that the browser package's `Client` satisfies (so the file compiles without the
//! package). Each method takes one object of named properties (`…Props`), camelCased,
//! sent under their plan names.

use super::ir::{EventDef, Field, Model, Ty, Words};
use super::{
    doc_lines, event_doc, field_doc, header, id_param, sink_call, star_comment, string_literal,
    tracker_doc, type_expr, Generated, Out, TypeSyntax,
};

/// Class member names the tracker already uses.
const TAKEN_MEMBERS: &[&str] = &["constructor"];

fn type_name(w: &Words) -> String {
    w.pascal()
}

fn props_type(ev: &EventDef) -> String {
    type_name(&ev.type_name.join(&Words(vec!["props".to_owned()])))
}

fn method_name(ev: &EventDef) -> String {
    let n = ev.func.camel();
    if TAKEN_MEMBERS.contains(&n.as_str()) {
        format!("{n}_")
    } else {
        n
    }
}

fn to_json_fn(m: &Model, i: usize) -> String {
    format!("{}ToJson", m.objects[i].name.camel())
}

/// `/** … */` lines; `*/` inside cannot end the comment.
fn jsdoc(out: &mut Out, lines: &[String]) {
    let lines: Vec<String> = lines.iter().map(|l| l.replace("*/", "*\\/")).collect();
    star_comment(out, &lines);
}

const TYPES: TypeSyntax = TypeSyntax {
    string: "string",
    integer: "number",
    number: "number",
    boolean: "boolean",
    any: "unknown",
    map: |v| format!("Readonly<Record<string, {v}>>"),
    array: |v| format!("ReadonlyArray<{v}>"),
    named: type_name,
};

fn ts_type(m: &Model, ty: &Ty) -> String {
    type_expr(m, ty, &TYPES)
}

/// TypeScript's string enums are their wire strings: only objects are converted.
fn needs_conversion(ty: &Ty) -> bool {
    ty.needs_conversion(false)
}

/// An expression turning `expr` (of type `ty`) into its JSON form.
fn to_json(m: &Model, ty: &Ty, expr: &str, depth: usize) -> String {
    match ty {
        Ty::Object(i) => format!("{}({expr})", to_json_fn(m, *i)),
        Ty::Array(v) if needs_conversion(v) => {
            let var = format!("v{depth}");
            format!("{expr}.map(({var}) => {})", to_json(m, v, &var, depth + 1))
        }
        Ty::Map(v) if needs_conversion(v) => {
            let var = format!("v{depth}");
            let key = format!("k{depth}");
            format!(
                "Object.fromEntries(Object.entries({expr}).map(([{key}, {var}]) => [{key}, {}]))",
                to_json(m, v, &var, depth + 1)
            )
        }
        _ => expr.to_owned(),
    }
}

/// The field's TypeScript key and its declaration.
fn key(f: &Field) -> String {
    f.words.camel()
}

/// The module's file name and text.
pub(super) fn generate(m: &Model) -> Generated {
    let mut out = Out::new("  ");
    for l in header(m) {
        out.line(format!("// {l}"));
    }
    out.blank();
    out.line("/** The plan's id. */");
    out.line(format!(
        "export const PLAN_ID = {};",
        string_literal(&m.plan)
    ));
    out.line("/** The plan's version. */");
    out.line(format!(
        "export const PLAN_VERSION = {};",
        string_literal(&m.version)
    ));
    out.blank();
    jsdoc(
        &mut out,
        &[
            "What the generated code needs of a Trailhound client: the browser package's"
                .to_owned(),
            "`Client` (from `Trailhound.load`) has it, and so can a test's recording fake."
                .to_owned(),
        ],
    );
    out.open("export interface TrailhoundLike {");
    out.line("track(event: string, properties?: Record<string, unknown> | null): unknown;");
    out.line("identify(userId?: string | null, traits?: Record<string, unknown> | null): unknown;");
    out.line("screen(name: string, properties?: Record<string, unknown> | null): unknown;");
    out.line("page(name?: string | null, properties?: Record<string, unknown> | null): unknown;");
    out.line("group(groupId: string, traits?: Record<string, unknown> | null): unknown;");
    out.close("}");

    for e in &m.enums {
        out.blank();
        jsdoc(
            &mut out,
            &e.doc.as_deref().map(doc_lines).unwrap_or_default(),
        );
        out.open(format!("export enum {} {{", type_name(&e.name)));
        for (wire, w) in &e.values {
            out.line(format!("{} = {},", w.pascal(), string_literal(wire)));
        }
        out.close("}");
    }

    for (i, o) in m.objects.iter().enumerate() {
        out.blank();
        jsdoc(
            &mut out,
            &o.doc.as_deref().map(doc_lines).unwrap_or_default(),
        );
        fields_interface(&mut out, m, &type_name(&o.name), &o.fields);
        out.blank();
        out.open(format!(
            "function {}(v: {}): Record<string, unknown> {{",
            to_json_fn(m, i),
            type_name(&o.name)
        ));
        out.line("const p: Record<string, unknown> = {};");
        for f in &o.fields {
            assign(&mut out, m, f, "v");
        }
        out.line("return p;");
        out.close("}");
    }

    for ev in &m.events {
        if ev.fields.iter().any(Field::is_param) {
            out.blank();
            jsdoc(
                &mut out,
                &[format!("The properties of `{}`.", method_name(ev))],
            );
            fields_interface(&mut out, m, &props_type(ev), &ev.fields);
        }
    }

    out.blank();
    let doc = tracker_doc(
        m,
        format!(
            "Use: `new {}(await Trailhound.load({{ writeKey, endpoint }}))`.",
            type_name(&m.tracker)
        ),
    );
    jsdoc(&mut out, &doc);
    out.open(format!("export class {} {{", type_name(&m.tracker)));
    out.line("readonly #client: TrailhoundLike;");
    out.blank();
    out.line("/** Sends the plan's events through `client`. */");
    out.open("constructor(client: TrailhoundLike) {");
    out.line("this.#client = client;");
    out.close("}");
    for ev in &m.events {
        out.blank();
        method(&mut out, m, ev);
    }
    out.close("}");
    Generated {
        file_name: format!("{}.ts", kebab(&m.tracker)),
        source: out.finish(),
    }
}

fn kebab(w: &Words) -> String {
    w.0.join("-")
}

fn fields_interface(out: &mut Out, m: &Model, name: &str, fields: &[Field]) {
    out.open(format!("export interface {name} {{"));
    for f in fields.iter().filter(|f| f.is_param()) {
        let mut doc = field_doc(f);
        if key(f) != f.wire {
            doc.push(format!("Sent as {}.", string_literal(&f.wire)));
        }
        jsdoc(out, &doc);
        let ty = match &f.literals {
            Some(values) => values
                .iter()
                .map(serde_json::Value::to_string)
                .collect::<Vec<_>>()
                .join(" | "),
            None => ts_type(m, &f.ty),
        };
        let ty = if f.nullable {
            format!("{ty} | null")
        } else {
            ty
        };
        let q = if f.required { "" } else { "?" };
        out.line(format!("readonly {}{q}: {ty};", key(f)));
    }
    out.close("}");
}

/// `p["wire"] = …` from `source.key`; optional ones only when given.
fn assign(out: &mut Out, m: &Model, f: &Field, source: &str) {
    let wire = string_literal(&f.wire);
    if let Some(c) = &f.constant {
        out.line(format!("p[{wire}] = {c};"));
        return;
    }
    let access = format!("{source}.{}", key(f));
    let value = to_json(m, &f.ty, &access, 0);
    let value = if f.nullable && value != access {
        format!("{access} === null ? null : {value}")
    } else {
        value
    };
    if f.required {
        out.line(format!("p[{wire}] = {value};"));
    } else {
        out.open(format!("if ({access} !== undefined) {{"));
        out.line(format!("p[{wire}] = {value};"));
        out.close("}");
    }
}

fn method(out: &mut Out, m: &Model, ev: &EventDef) {
    jsdoc(out, &event_doc(ev, string_literal));
    let mut params = Vec::new();
    params.extend(id_param(ev, "userId: string | null", "groupId: string"));
    let has_props = ev.fields.iter().any(Field::is_param);
    if has_props {
        let all_optional = ev
            .fields
            .iter()
            .filter(|f| f.is_param())
            .all(|f| !f.required);
        params.push(if all_optional {
            format!("props: {} = {{}}", props_type(ev))
        } else {
            format!("props: {}", props_type(ev))
        });
    }
    out.open(format!(
        "{}({}): void {{",
        method_name(ev),
        params.join(", ")
    ));
    out.line("const p: Record<string, unknown> = {};");
    for f in &ev.fields {
        assign(out, m, f, "props");
    }
    let (call, first) = sink_call(ev, "userId", "groupId", string_literal);
    out.line(format!("this.#client.{call}({first}, p);"));
    out.close("}");
}
