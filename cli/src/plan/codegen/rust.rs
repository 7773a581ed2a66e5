//! Rust: a module for `trailhound::Client` (it needs `serde_json` beside `trailhound`).
//!
//! Required properties are positional parameters in name order; optional ones are the
//! `Option` fields of a per-event `…Options` struct (which derives `Default`, so call sites
//! can write `..Default::default()` and survive new optional properties).

use super::ir::{EventDef, Field, Model, Ty, Words};
use super::{
    brace_escape, doc_lines, event_doc, field_doc, header, id_param, line_comment, params, quoted,
    sink_call, value_expr, Generated, Out, ValueSyntax,
};

fn string_literal(s: &str) -> String {
    quoted(s, brace_escape, &[])
}

/// Rust's keywords (strict, reserved, and those of newer editions).
const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// Keywords that cannot be raw identifiers: escaped with a trailing `_`.
const NOT_RAW: &[&str] = &["self", "Self", "super", "crate"];

/// An identifier, escaped if it is a keyword (`r#type`, `self_`) or in `taken`.
fn ident(name: String, taken: &[&str]) -> String {
    if NOT_RAW.contains(&name.as_str()) || taken.contains(&name.as_str()) {
        format!("{name}_")
    } else if KEYWORDS.contains(&name.as_str()) {
        format!("r#{name}")
    } else {
        name
    }
}

/// A type name (`Self` is the only keyword a PascalCase name can be).
fn type_name(w: &Words) -> String {
    ident(w.pascal(), &[])
}

/// Parameter names of the generated methods that properties must not take.
const FIXED_PARAMS: &[&str] = &["options", "user_id", "group_id"];

struct Gen<'a> {
    m: &'a Model,
    out: Out,
}

/// The module's file name and text.
pub(super) fn generate(m: &Model) -> Generated {
    let mut g = Gen {
        m,
        out: Out::new("    "),
    };
    g.file();
    Generated {
        file_name: format!("{}.rs", m.tracker.snake()),
        source: g.out.finish(),
    }
}

impl Gen<'_> {
    fn doc(&mut self, prefix: &str, lines: &[String]) {
        line_comment(&mut self.out, prefix, lines);
    }

    fn file(&mut self) {
        let m = self.m;
        for l in header(m) {
            self.out.line(format!("// {l}"));
        }
        self.out.line("//");
        self.out.line(format!(
            "// Include it as a module (`mod {};`); it needs the `trailhound` and `serde_json` crates.",
            m.tracker.snake()
        ));
        self.out.blank();
        self.out.line(format!(
            "//! Typed tracking for the plan {}, version {}.",
            string_literal(&m.plan),
            string_literal(&m.version)
        ));
        if let Some(d) = &m.description {
            self.out.line("//!");
            self.doc("//!", &doc_lines(d));
        }
        self.out.blank();
        self.out.line("/// The plan's id.");
        self.out.line(format!(
            "pub const PLAN_ID: &str = {};",
            string_literal(&m.plan)
        ));
        self.out.line("/// The plan's version.");
        self.out.line(format!(
            "pub const PLAN_VERSION: &str = {};",
            string_literal(&m.version)
        ));
        self.out.blank();
        self.tracker();
        for ev in &m.events {
            self.options(ev);
        }
        for e in &m.enums {
            self.out.blank();
            let name = type_name(&e.name);
            self.doc("///", &e.doc.as_deref().map(doc_lines).unwrap_or_default());
            self.out
                .line("#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]");
            self.out.open(format!("pub enum {name} {{"));
            for (wire, w) in &e.values {
                self.out.line(format!("/// {}", string_literal(wire)));
                self.out.line(format!("{},", type_name(w)));
            }
            self.out.close("}");
            self.out.blank();
            self.out.open(format!("impl {name} {{"));
            self.out.line("/// The value as sent.");
            self.out.open("pub fn as_str(self) -> &'static str {");
            self.out.open("match self {");
            for (wire, w) in &e.values {
                self.out.line(format!(
                    "{name}::{} => {},",
                    type_name(w),
                    string_literal(wire)
                ));
            }
            self.out.close("}");
            self.out.close("}");
            self.out.close("}");
            self.out.blank();
            self.out.open(format!("impl ToJson for {name} {{"));
            self.out.open("fn to_json(&self) -> serde_json::Value {");
            self.out.line("serde_json::Value::from(self.as_str())");
            self.out.close("}");
            self.out.close("}");
        }
        for o in &m.objects {
            self.out.blank();
            let name = type_name(&o.name);
            self.doc("///", &o.doc.as_deref().map(doc_lines).unwrap_or_default());
            self.out.line("#[derive(Debug, Clone, PartialEq)]");
            self.out.open(format!("pub struct {name} {{"));
            for f in params(&o.fields) {
                self.doc("///", &field_doc(f));
                let ty = owned(m, &f.ty);
                let ty = if f.is_optional_type() {
                    format!("Option<{ty}>")
                } else {
                    ty
                };
                self.out
                    .line(format!("pub {}: {ty},", ident(f.words.snake(), &[])));
            }
            self.out.close("}");
            self.out.blank();
            self.out.open(format!("impl ToJson for {name} {{"));
            self.out.open("fn to_json(&self) -> serde_json::Value {");
            self.out.line("let mut props_ = serde_json::Map::new();");
            for f in &o.fields {
                let access = format!("self.{}", ident(f.words.snake(), &[]));
                self.insert(f, &access, !f.required);
            }
            self.out.line("serde_json::Value::Object(props_)");
            self.out.close("}");
            self.out.close("}");
        }
        self.out.blank();
        self.helpers();
    }

    fn tracker(&mut self) {
        let m = self.m;
        let name = type_name(&m.tracker);
        self.out
            .line("/// The plan's events, one method each, sent through a `trailhound::Client`.");
        self.out.line("#[derive(Debug, Clone, Copy)]");
        self.out.open(format!("pub struct {name}<'a> {{"));
        self.out.line("client: &'a trailhound::Client,");
        self.out.close("}");
        self.out.blank();
        self.out.open(format!("impl<'a> {name}<'a> {{"));
        self.out
            .line("/// Sends the plan's events through `client`.");
        self.out
            .open("pub fn new(client: &'a trailhound::Client) -> Self {");
        self.out.line(format!("{name} {{ client }}"));
        self.out.close("}");
        for ev in &m.events {
            self.out.blank();
            self.method(ev);
        }
        self.out.close("}");
    }

    fn method(&mut self, ev: &EventDef) {
        let m = self.m;
        let mut doc = event_doc(ev, string_literal);
        let params: Vec<&Field> = ev
            .fields
            .iter()
            .filter(|f| f.is_param() && f.required)
            .collect();
        let has_options = ev.fields.iter().any(|f| f.is_param() && !f.required);
        let mut args = vec!["&self".to_owned()];
        args.extend(id_param(ev, "user_id: Option<&str>", "group_id: &str"));
        if !params.is_empty() {
            doc.push(String::new());
        }
        for f in &params {
            let name = ident(f.words.snake(), FIXED_PARAMS);
            let text = field_doc(f).join(" ");
            let wire = if name == f.wire {
                String::new()
            } else {
                format!(" (sent as {})", string_literal(&f.wire))
            };
            doc.push(if text.is_empty() {
                format!("- `{name}`{wire}")
            } else {
                format!("- `{name}`{wire}: {text}")
            });
            let ty = borrowed(m, &f.ty);
            let ty = if f.nullable {
                format!("Option<{ty}>")
            } else {
                ty
            };
            args.push(format!("{name}: {ty}"));
        }
        if has_options {
            args.push(format!(
                "options: {}",
                type_name(&ev.type_name.join(&Words(vec!["options".to_owned()])))
            ));
        }
        self.doc("///", &doc);
        if args.len() > 7 {
            self.out.line("#[allow(clippy::too_many_arguments)]");
        }
        self.out
            .open(format!("pub fn {}(", ident(ev.func.snake(), &["new"])));
        for a in &args {
            self.out.line(format!("{a},"));
        }
        self.out.close(") -> Result<(), trailhound::Error> {");
        self.out.depth_in();
        self.out.line(if ev.fields.is_empty() {
            "let props_ = serde_json::Map::new();"
        } else {
            "let mut props_ = serde_json::Map::new();"
        });
        for f in &ev.fields {
            if f.is_param() && !f.required {
                let access = format!("options.{}", ident(f.words.snake(), &[]));
                self.insert(f, &access, true);
            } else {
                self.insert(f, &ident(f.words.snake(), FIXED_PARAMS), false);
            }
        }
        let props = "serde_json::Value::Object(props_)";
        let (call, first) = sink_call(ev, "user_id", "group_id", string_literal);
        self.out
            .line(format!("self.client.{call}({first}, {props})"));
        self.out.close("}");
    }

    /// `props_.insert(wire, value)`; an optional field only when set.
    fn insert(&mut self, f: &Field, access: &str, optional: bool) {
        let key = format!("{}.to_owned()", string_literal(&f.wire));
        if let Some(c) = &f.constant {
            self.out
                .line(format!("props_.insert({key}, {});", value_expr(c, &VALUES)));
        } else if optional {
            self.out.open(format!("if let Some(v) = &{access} {{"));
            self.out.line(format!("props_.insert({key}, v.to_json());"));
            self.out.close("}");
        } else {
            self.out
                .line(format!("props_.insert({key}, {access}.to_json());"));
        }
    }

    fn options(&mut self, ev: &EventDef) {
        let m = self.m;
        let optional: Vec<&Field> = ev
            .fields
            .iter()
            .filter(|f| f.is_param() && !f.required)
            .collect();
        if optional.is_empty() {
            return;
        }
        self.out.blank();
        self.out.line(format!(
            "/// The optional properties of `{}`: unset ones are not sent.",
            ident(ev.func.snake(), &["new"])
        ));
        self.out.line("#[derive(Debug, Clone, Default, PartialEq)]");
        self.out.open(format!(
            "pub struct {} {{",
            type_name(&ev.type_name.join(&Words(vec!["options".to_owned()])))
        ));
        for f in optional {
            self.doc("///", &field_doc(f));
            self.out.line(format!(
                "pub {}: Option<{}>,",
                ident(f.words.snake(), &[]),
                owned(m, &f.ty)
            ));
        }
        self.out.close("}");
    }

    fn helpers(&mut self) {
        for l in [
            "/// How the generated types become JSON.",
            "trait ToJson {",
            "    fn to_json(&self) -> serde_json::Value;",
            "}",
            "",
            "impl ToJson for str {",
            "    fn to_json(&self) -> serde_json::Value {",
            "        serde_json::Value::String(self.to_owned())",
            "    }",
            "}",
            "",
            "impl ToJson for String {",
            "    fn to_json(&self) -> serde_json::Value {",
            "        serde_json::Value::String(self.clone())",
            "    }",
            "}",
            "",
            "impl ToJson for i64 {",
            "    fn to_json(&self) -> serde_json::Value {",
            "        serde_json::Value::from(*self)",
            "    }",
            "}",
            "",
            "/// A non-finite number becomes null (JSON has none), which the plan then refuses.",
            "impl ToJson for f64 {",
            "    fn to_json(&self) -> serde_json::Value {",
            "        serde_json::Value::from(*self)",
            "    }",
            "}",
            "",
            "impl ToJson for bool {",
            "    fn to_json(&self) -> serde_json::Value {",
            "        serde_json::Value::Bool(*self)",
            "    }",
            "}",
            "",
            "impl ToJson for serde_json::Value {",
            "    fn to_json(&self) -> serde_json::Value {",
            "        self.clone()",
            "    }",
            "}",
            "",
            "impl<T: ToJson + ?Sized> ToJson for &T {",
            "    fn to_json(&self) -> serde_json::Value {",
            "        (**self).to_json()",
            "    }",
            "}",
            "",
            "impl<T: ToJson> ToJson for Option<T> {",
            "    fn to_json(&self) -> serde_json::Value {",
            "        match self {",
            "            Some(v) => v.to_json(),",
            "            None => serde_json::Value::Null,",
            "        }",
            "    }",
            "}",
            "",
            "impl<T: ToJson> ToJson for Vec<T> {",
            "    fn to_json(&self) -> serde_json::Value {",
            "        serde_json::Value::Array(self.iter().map(ToJson::to_json).collect())",
            "    }",
            "}",
            "",
            "impl<T: ToJson> ToJson for std::collections::BTreeMap<String, T> {",
            "    fn to_json(&self) -> serde_json::Value {",
            "        serde_json::Value::Object(self.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())",
            "    }",
            "}",
        ] {
            self.out.line(l);
        }
    }
}

/// The type of a field stored in a struct.
fn owned(m: &Model, ty: &Ty) -> String {
    match ty {
        Ty::String => "String".to_owned(),
        Ty::Integer => "i64".to_owned(),
        Ty::Number => "f64".to_owned(),
        Ty::Boolean => "bool".to_owned(),
        Ty::Any => "serde_json::Value".to_owned(),
        Ty::Map(v) => format!("std::collections::BTreeMap<String, {}>", owned(m, v)),
        Ty::Array(v) => format!("Vec<{}>", owned(m, v)),
        Ty::Enum(i) => type_name(&m.enums[*i].name),
        Ty::Object(i) => type_name(&m.objects[*i].name),
    }
}

/// The type of a parameter: strings borrowed, the rest as stored.
fn borrowed(m: &Model, ty: &Ty) -> String {
    match ty {
        Ty::String => "&str".to_owned(),
        other => owned(m, other),
    }
}

/// Rust expressions building JSON values.
const VALUES: ValueSyntax = ValueSyntax {
    null: "serde_json::Value::Null",
    boolean: |b| format!("serde_json::Value::Bool({b})"),
    number: |n| {
        if let Some(i) = n.as_i64() {
            format!("serde_json::Value::from({i}i64)")
        } else if let Some(u) = n.as_u64() {
            format!("serde_json::Value::from({u}u64)")
        } else {
            format!(
                "serde_json::Value::from({:?}f64)",
                n.as_f64().unwrap_or(0.0)
            )
        }
    },
    string: |s| {
        format!(
            "serde_json::Value::String({}.to_owned())",
            string_literal(s)
        )
    },
    array: |items| format!("serde_json::Value::Array(vec![{items}])"),
    object: |entries| format!("serde_json::Value::Object([{entries}].into_iter().collect())"),
    entry: |k, v| format!("({}.to_owned(), {v})", string_literal(k)),
};
