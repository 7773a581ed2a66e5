//! Kotlin: a tracker class over `TrailhoundSink` (an interface a test can fake), with a
//! second constructor that takes the bindings' `dev.trailhound.Trailhound`. Required
//! properties are parameters without a default, optional ones nullable with `= null`;
//! string enums are enum classes carrying their wire `value`, nested objects data classes.

use super::ir::{EventDef, Field, Model, Ty, Words};
use super::{
    doc_lines, event_doc, header, id_param, member_to_json, param_doc_text, params, quoted,
    sink_call, star_comment, tracker_doc, type_expr, value_expr, Generated, Out, ToJsonSyntax,
    TypeSyntax, ValueSyntax,
};

/// Kotlin's hard keywords: escaped with backticks.
const KEYWORDS: &[&str] = &[
    "as",
    "break",
    "class",
    "continue",
    "do",
    "else",
    "false",
    "for",
    "fun",
    "if",
    "in",
    "interface",
    "is",
    "null",
    "object",
    "package",
    "return",
    "super",
    "this",
    "throw",
    "true",
    "try",
    "typealias",
    "typeof",
    "val",
    "var",
    "when",
    "while",
];

/// Whether `s` is a hard keyword of Kotlin.
pub(super) fn is_keyword(s: &str) -> bool {
    KEYWORDS.contains(&s)
}

/// Parameter names the generated methods use themselves.
const FIXED_PARAMS: &[&str] = &["userId", "groupId"];

/// Method names `Any` has already (a method without parameters would clash).
const ANY_METHODS: &[&str] = &["equals", "hashCode", "toString"];

fn ident(name: String, taken: &[&str]) -> String {
    if taken.contains(&name.as_str()) {
        format!("{name}_")
    } else if is_keyword(&name) {
        format!("`{name}`")
    } else {
        name
    }
}

fn type_name(w: &Words) -> String {
    w.pascal()
}

fn literal(s: &str) -> String {
    quoted(s, |c| format!("\\u{c:04x}"), &['$'])
}

/// Kotlin expressions for JSON values (maps and lists of the plain values).
const VALUES: ValueSyntax = ValueSyntax {
    null: "null",
    boolean: |b| b.to_string(),
    number: |n| match n.as_i64() {
        Some(i) => format!("{i}L"),
        None => format!("{:?}", n.as_f64().unwrap_or(0.0)),
    },
    string: literal,
    array: |items| format!("listOf<Any?>({items})"),
    object: |entries| format!("mapOf<String, Any?>({entries})"),
    entry: |k, v| format!("{} to {v}", literal(k)),
};

/// KDoc; `*/` and `/*` (Kotlin's comments nest) cannot end or open one.
fn kdoc(out: &mut Out, lines: &[String]) {
    let lines: Vec<String> = lines
        .iter()
        .map(|l| l.replace("*/", "*&#47;").replace("/*", "&#47;*"))
        .collect();
    star_comment(out, &lines);
}

const TYPES: TypeSyntax = TypeSyntax {
    string: "String",
    integer: "Long",
    number: "Double",
    boolean: "Boolean",
    any: "Any?",
    map: |v| format!("Map<String, {v}>"),
    array: |v| format!("List<{v}>"),
    named: type_name,
};

fn kt_type(m: &Model, ty: &Ty) -> String {
    type_expr(m, ty, &TYPES)
}

const TO_JSON: ToJsonSyntax = ToJsonSyntax {
    enum_value: "value",
    map_list: |e, v, x| format!("{e}.map {{ {v} -> {x} }}"),
    map_values: |e, v, x| format!("{e}.mapValues {{ (_, {v}) -> {x} }}"),
};

/// `expr` (non-null, of type `ty`) as the SDK's map values take it.
fn to_json(ty: &Ty, expr: &str) -> String {
    member_to_json(ty, expr, 0, &TO_JSON)
}

fn declaration(m: &Model, f: &Field, name: &str) -> String {
    let ty = kt_type(m, &f.ty);
    let nullable = ty.ends_with('?');
    if !f.required {
        if nullable {
            format!("{name}: {ty} = null")
        } else {
            format!("{name}: {ty}? = null")
        }
    } else if f.nullable && !nullable {
        format!("{name}: {ty}?")
    } else {
        format!("{name}: {ty}")
    }
}

fn assign(out: &mut Out, f: &Field, access: &str) {
    let wire = literal(&f.wire);
    if let Some(c) = &f.constant {
        out.line(format!("p_[{wire}] = {}", value_expr(c, &VALUES)));
        return;
    }
    let may_be_null = f.is_optional_type() || f.ty == Ty::Any;
    if !f.required {
        let value = to_json(&f.ty, access);
        out.line(format!("if ({access} != null) p_[{wire}] = {value}"));
    } else if may_be_null && f.ty.needs_conversion(true) {
        out.line(format!(
            "p_[{wire}] = {access}?.let {{ v -> {} }}",
            to_json(&f.ty, "v")
        ));
    } else {
        out.line(format!("p_[{wire}] = {}", to_json(&f.ty, access)));
    }
}

fn params_doc(fields: &[&Field], taken: &[&str]) -> Vec<String> {
    let mut lines = Vec::new();
    for f in fields {
        let name = ident(f.words.camel(), taken);
        let name = name.trim_matches('`');
        let text = param_doc_text(f, name, literal);
        lines.push(format!("@param {name} {text}").trim_end().to_owned());
    }
    lines
}

/// The file's name and text.
pub(super) fn generate(m: &Model, package: &str) -> Generated {
    let mut out = Out::new("    ");
    for l in header(m) {
        out.line(format!("// {l}"));
    }
    out.line(format!("package {package}"));
    out.blank();
    kdoc(
        &mut out,
        &[
            "What the generated code needs of a client: the tracker's second constructor"
                .to_owned(),
            "adapts `dev.trailhound.Trailhound`; a test can pass a recording fake.".to_owned(),
        ],
    );
    out.open("interface TrailhoundSink {");
    out.line("fun track(event: String, properties: Map<String, Any?>)");
    out.line("fun identify(userId: String?, traits: Map<String, Any?>)");
    out.line("fun screen(name: String, properties: Map<String, Any?>)");
    out.line("fun page(name: String, properties: Map<String, Any?>)");
    out.line("fun group(groupId: String, traits: Map<String, Any?>)");
    out.close("}");

    for e in &m.enums {
        out.blank();
        kdoc(
            &mut out,
            &e.doc.as_deref().map(doc_lines).unwrap_or_default(),
        );
        out.open(format!(
            "enum class {}(val value: String) {{",
            type_name(&e.name)
        ));
        for (wire, w) in &e.values {
            out.line(format!("{}({}),", w.screaming(), literal(wire)));
        }
        out.close("}");
    }

    for o in &m.objects {
        out.blank();
        let params = params(&o.fields);
        let mut doc = o.doc.as_deref().map(doc_lines).unwrap_or_default();
        if !params.is_empty() {
            if !doc.is_empty() {
                doc.push(String::new());
            }
            doc.extend(
                params_doc(&params, &[])
                    .into_iter()
                    .map(|l| l.replacen("@param", "@property", 1)),
            );
        }
        kdoc(&mut out, &doc);
        if params.is_empty() {
            out.open(format!("class {} {{", type_name(&o.name)));
        } else {
            out.open(format!("data class {}(", type_name(&o.name)));
            for f in &params {
                out.line(format!(
                    "val {},",
                    declaration(m, f, &ident(f.words.camel(), &[]))
                ));
            }
            out.close(") {");
            out.depth_in();
        }
        out.line("/** The properties as sent, under their plan names. */");
        out.open("fun toJson(): Map<String, Any?> {");
        out.line("val p_ = LinkedHashMap<String, Any?>()");
        for f in &o.fields {
            assign(
                &mut out,
                f,
                &format!("this.{}", ident(f.words.camel(), &[])),
            );
        }
        out.line("return p_");
        out.close("}");
        out.close("}");
    }

    out.blank();
    let doc = tracker_doc(
        m,
        format!(
            "Use: `{}(Trailhound.shared)`; a test can pass a `TrailhoundSink` fake.",
            type_name(&m.tracker)
        ),
    );
    kdoc(&mut out, &doc);
    out.open(format!(
        "class {}(private val sink: TrailhoundSink) {{",
        type_name(&m.tracker)
    ));
    out.open("companion object {");
    out.line("/** The plan's id. */");
    out.line(format!("const val PLAN_ID: String = {}", literal(&m.plan)));
    out.line("/** The plan's version. */");
    out.line(format!(
        "const val PLAN_VERSION: String = {}",
        literal(&m.version)
    ));
    out.close("}");
    out.blank();
    out.line("/** Sends the plan's events through the bindings' client. */");
    out.open("constructor(trailhound: dev.trailhound.Trailhound) : this(");
    out.open("object : TrailhoundSink {");
    for l in [
        "override fun track(event: String, properties: Map<String, Any?>) { trailhound.track(event, properties) }",
        "override fun identify(userId: String?, traits: Map<String, Any?>) { trailhound.identify(userId, traits) }",
        "override fun screen(name: String, properties: Map<String, Any?>) { trailhound.screen(name, properties) }",
        "override fun page(name: String, properties: Map<String, Any?>) { trailhound.page(name, properties) }",
        "override fun group(groupId: String, traits: Map<String, Any?>) { trailhound.group(groupId, traits) }",
    ] {
        out.line(l);
    }
    out.close("},");
    out.close(")");
    for ev in &m.events {
        out.blank();
        method(&mut out, m, ev);
    }
    out.close("}");
    Generated {
        file_name: format!("{}.kt", type_name(&m.tracker)),
        source: out.finish(),
    }
}

fn method(out: &mut Out, m: &Model, ev: &EventDef) {
    let params = params(&ev.fields);
    let mut args: Vec<String> = id_param(ev, "userId: String?", "groupId: String")
        .into_iter()
        .collect();
    for f in &params {
        args.push(declaration(m, f, &ident(f.words.camel(), FIXED_PARAMS)));
    }
    let mut doc = event_doc(ev, literal);
    if !params.is_empty() {
        doc.push(String::new());
        doc.extend(params_doc(&params, FIXED_PARAMS));
    }
    kdoc(out, &doc);
    let name = ident(ev.func.camel(), ANY_METHODS);
    if args.is_empty() {
        out.open(format!("fun {name}() {{"));
    } else {
        out.open(format!("fun {name}("));
        for a in &args {
            out.line(format!("{a},"));
        }
        out.close(") {");
        out.depth_in();
    }
    out.line("val p_ = LinkedHashMap<String, Any?>()");
    for f in &ev.fields {
        assign(out, f, &ident(f.words.camel(), FIXED_PARAMS));
    }
    let (call, first) = sink_call(ev, "userId", "groupId", literal);
    out.line(format!("this.sink.{call}({first}, p_)"));
    out.close("}");
}
