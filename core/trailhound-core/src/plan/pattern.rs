//! The built-in engine for `pattern` keywords (the `regex` feature): a Pike VM over the
//! portable subset that [`super::portable_pattern`] lets through, and nothing else.
//!
//! Why not regex-lite, which it replaces: regex-lite parses and compiles the whole of the
//! `regex` crate's syntax (Unicode classes, flags, captures, set operations) that plans
//! may not use, and cost about 36 KB of the mobile library (docs/plans.md, "Size"); this
//! engine is a fraction of that. Its verdicts are regex-lite's: a test compares the two
//! on the fuzz corpus's patterns and on random ones (`differs_from_regex_lite_nowhere`).
//!
//! The subset: literal characters (compared as code points, case-sensitively), `.` (any
//! character, newlines too, as JavaScript's `s` flag), classes `[...]` and `[^...]` with
//! ranges, `\d \D \w \W` (ASCII, in and out of classes), `\b \B` (ASCII word
//! boundaries), `^` and `$` (the start and end of the string), `\t \n \r \f \v`, `\xHH`,
//! `\uHHHH`, `\u{H…}`, escaped syntax characters, groups `(…)` and `(?:…)`,
//! alternation, and the quantifiers `* + ? {n} {n,} {n,m}` (lazy or not: for a yes/no
//! match it is the same). Matching is unanchored and linear in the string's length
//! times the program's size; no backtracking.
//!
//! Limits, so that a hostile plan can neither blow the stack nor memory: groups nest at
//! most [`MAX_NEST`] deep (regex-lite's default) and a program has at most
//! [`MAX_PROGRAM`] instructions (`(a{1000}){1000}` is refused, as regex-lite refuses it).

use std::sync::Mutex;

use super::{Pattern, PatternEngine, MAX_REPEAT};

/// How deep groups and repetitions may nest: regex-lite's default nest limit.
pub const MAX_NEST: u32 = 50;

/// The most instructions a compiled pattern may have: a repeated group is copied once
/// per repetition, so this bounds the memory a pattern takes (about 16 bytes per
/// instruction, and as much again for each match's thread lists).
pub const MAX_PROGRAM: usize = 1 << 18;

/// The built-in pattern engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinEngine;

impl PatternEngine for BuiltinEngine {
    fn compile(&self, pattern: &str) -> Result<Box<dyn Pattern>, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut p = Parser {
            chars: &chars,
            i: 0,
            depth: 0,
        };
        let node = p.alternation()?;
        if p.i < chars.len() {
            return Err(format!("unopened group at character {}", p.i));
        }
        let mut prog = Program {
            insts: Vec::new(),
            classes: Vec::new(),
        };
        prog.emit(&node)?;
        prog.push(Inst::Match)?;
        Ok(Box::new(Compiled {
            prog,
            cache: Mutex::new(Threads::default()),
        }))
    }
}

/// Zero-width assertions.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Look {
    Start,
    End,
    Word,
    NotWord,
}

/// The parsed pattern.
#[derive(Debug)]
enum Node {
    Empty,
    Char(char),
    Any,
    /// Inclusive code point ranges, and whether the class is negated.
    Class(Vec<(u32, u32)>, bool),
    Look(Look),
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    /// min, max (`None`: unbounded).
    Repeat(Box<Node>, u32, Option<u32>),
}

const DIGIT: &[(u32, u32)] = &[(0x30, 0x39)];
const WORD: &[(u32, u32)] = &[(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)];

/// The ranges of every code point not in `ranges` (sorted, disjoint).
fn complement(ranges: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut next = 0;
    for &(lo, hi) in ranges {
        if lo > next {
            out.push((next, lo - 1));
        }
        next = hi + 1;
    }
    out.push((next, char::MAX as u32));
    out
}

/// A class escape (`\d \D \w \W`) as ranges.
fn class_escape(e: char) -> Option<Vec<(u32, u32)>> {
    match e {
        'd' => Some(DIGIT.to_vec()),
        'D' => Some(complement(DIGIT)),
        'w' => Some(WORD.to_vec()),
        'W' => Some(complement(WORD)),
        _ => None,
    }
}

/// What one escape stands for.
enum Escape {
    Char(char),
    Set(Vec<(u32, u32)>),
    Look(Look),
}

struct Parser<'a> {
    chars: &'a [char],
    i: usize,
    depth: u32,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        let yes = self.peek() == Some(c);
        if yes {
            self.i += 1;
        }
        yes
    }

    fn alternation(&mut self) -> Result<Node, String> {
        let mut alts = vec![self.concat()?];
        while self.eat('|') {
            alts.push(self.concat()?);
        }
        Ok(if alts.len() == 1 {
            alts.pop().unwrap_or(Node::Empty)
        } else {
            Node::Alt(alts)
        })
    }

    fn concat(&mut self) -> Result<Node, String> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.quantified(atom)?);
        }
        Ok(Node::Concat(items))
    }

    fn nest(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_NEST {
            return Err(format!("nested deeper than {MAX_NEST}"));
        }
        Ok(())
    }

    fn atom(&mut self) -> Result<Node, String> {
        let at = self.i;
        let c = self.chars[self.i];
        self.i += 1;
        Ok(match c {
            '(' => {
                self.nest()?;
                if self.eat('?') && !self.eat(':') {
                    return Err(format!("unsupported group at character {at}"));
                }
                let inner = self.alternation()?;
                if !self.eat(')') {
                    return Err(format!("unclosed group at character {at}"));
                }
                self.depth -= 1;
                inner
            }
            '[' => self.class(at)?,
            '.' => Node::Any,
            '^' => Node::Look(Look::Start),
            '$' => Node::Look(Look::End),
            '\\' => match self.escape(false)? {
                Escape::Char(c) => Node::Char(c),
                Escape::Set(ranges) => Node::Class(ranges, false),
                Escape::Look(l) => Node::Look(l),
            },
            '*' | '+' | '?' | '{' | '}' | ']' => {
                return Err(format!("{c:?} at character {at} is not an atom"))
            }
            c => Node::Char(c),
        })
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        if self.i == start {
            return None;
        }
        let digits: String = self.chars[start..self.i].iter().collect();
        // Too long to parse is above MAX_REPEAT too.
        Some(digits.parse().unwrap_or(u32::MAX))
    }

    fn quantified(&mut self, atom: Node) -> Result<Node, String> {
        let at = self.i;
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                self.i += 1;
                let min = self.number();
                let max = if self.eat(',') { self.number() } else { min };
                let (Some(min), true) = (min, self.peek() == Some('}')) else {
                    return Err(format!("malformed repetition at character {at}"));
                };
                if min > MAX_REPEAT || max.is_some_and(|m| m > MAX_REPEAT || m < min) {
                    return Err(format!("invalid repetition count at character {at}"));
                }
                (min, max)
            }
            _ => return Ok(atom),
        };
        self.i += 1;
        self.eat('?');
        if let Node::Look(_) = atom {
            return Err(format!("repeated assertion at character {at}"));
        }
        Ok(Node::Repeat(Box::new(atom), min, max))
    }

    fn hex(&mut self, digits: usize) -> Option<u32> {
        let end = self.i + digits;
        let text: String = self.chars.get(self.i..end)?.iter().collect();
        if !text.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let v = u32::from_str_radix(&text, 16).ok()?;
        self.i = end;
        Some(v)
    }

    fn escape(&mut self, in_class: bool) -> Result<Escape, String> {
        let at = self.i - 1;
        let Some(e) = self.peek() else {
            return Err("trailing backslash".into());
        };
        self.i += 1;
        let code = match e {
            'b' if !in_class => return Ok(Escape::Look(Look::Word)),
            'B' if !in_class => return Ok(Escape::Look(Look::NotWord)),
            't' => 9,
            'n' => 10,
            'v' => 11,
            'f' => 12,
            'r' => 13,
            'x' => self.hex(2).ok_or("malformed \\x escape")?,
            'u' if self.eat('{') => {
                let start = self.i;
                while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                    self.i += 1;
                }
                let digits = self.i - start;
                self.i = start;
                let v = self.hex(digits).filter(|_| digits <= 8);
                match (v, self.eat('}')) {
                    (Some(v), true) => v,
                    _ => return Err(format!("malformed \\u{{…}} escape at character {at}")),
                }
            }
            'u' => self.hex(4).ok_or("malformed \\u escape")?,
            '^' | '$' | '\\' | '.' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|'
            | '/' | '-' => e as u32,
            _ => {
                return class_escape(e)
                    .map(Escape::Set)
                    .ok_or_else(|| format!("unsupported escape \\{e} at character {at}"))
            }
        };
        char::from_u32(code)
            .map(Escape::Char)
            .ok_or_else(|| format!("escape at character {at} is not a Unicode scalar value"))
    }

    /// One class member after `[`: a character or a set.
    fn class_item(&mut self) -> Result<Escape, String> {
        match self.peek() {
            None => Err("unclosed class".into()),
            Some('\\') => {
                self.i += 1;
                self.escape(true)
            }
            Some('[') => Err("nested class".into()),
            Some(c) => {
                self.i += 1;
                Ok(Escape::Char(c))
            }
        }
    }

    fn class(&mut self, at: usize) -> Result<Node, String> {
        let negated = self.eat('^');
        if self.peek() == Some(']') {
            return Err(format!("empty class at character {at}"));
        }
        let mut ranges = Vec::new();
        while !self.eat(']') {
            match self.class_item()? {
                Escape::Set(set) => ranges.extend(set),
                Escape::Look(_) => return Err("assertion in a class".into()),
                Escape::Char(lo) => {
                    let range =
                        self.peek() == Some('-') && self.chars.get(self.i + 1) != Some(&']');
                    if !range {
                        ranges.push((lo as u32, lo as u32));
                        continue;
                    }
                    self.i += 1;
                    match self.class_item()? {
                        Escape::Char(hi) if hi >= lo => ranges.push((lo as u32, hi as u32)),
                        _ => return Err(format!("invalid class range at character {at}")),
                    }
                }
            }
        }
        Ok(Node::Class(ranges, negated))
    }
}

/// One instruction of the program.
#[derive(Debug, Clone, Copy)]
enum Inst {
    Char(char),
    Any,
    /// An index into [`Program::classes`].
    Class(u32),
    Look(Look),
    /// Continue at both.
    Split(u32, u32),
    Jump(u32),
    Match,
}

#[derive(Debug)]
struct Program {
    insts: Vec<Inst>,
    classes: Vec<(Vec<(u32, u32)>, bool)>,
}

impl Program {
    fn push(&mut self, inst: Inst) -> Result<u32, String> {
        if self.insts.len() >= MAX_PROGRAM {
            return Err(format!(
                "the pattern compiles to more than {MAX_PROGRAM} instructions"
            ));
        }
        self.insts.push(inst);
        Ok(self.insts.len() as u32 - 1)
    }

    fn next(&self) -> u32 {
        self.insts.len() as u32
    }

    fn emit(&mut self, node: &Node) -> Result<(), String> {
        match node {
            Node::Empty => {}
            Node::Char(c) => {
                self.push(Inst::Char(*c))?;
            }
            Node::Any => {
                self.push(Inst::Any)?;
            }
            Node::Class(ranges, negated) => {
                self.classes.push((ranges.clone(), *negated));
                self.push(Inst::Class(self.classes.len() as u32 - 1))?;
            }
            Node::Look(l) => {
                self.push(Inst::Look(*l))?;
            }
            Node::Concat(items) => {
                for item in items {
                    self.emit(item)?;
                }
            }
            Node::Alt(alts) => {
                // split(a, next split) … each branch jumps to the end, patched after.
                let mut jumps = Vec::new();
                for (k, alt) in alts.iter().enumerate() {
                    let split = (k + 1 < alts.len()).then(|| self.push(Inst::Split(0, 0)));
                    let split = split.transpose()?;
                    self.emit(alt)?;
                    jumps.push(self.push(Inst::Jump(0))?);
                    if let Some(s) = split {
                        self.insts[s as usize] = Inst::Split(s + 1, self.next());
                    }
                }
                let end = self.next();
                for j in jumps {
                    self.insts[j as usize] = Inst::Jump(end);
                }
            }
            Node::Repeat(body, min, max) => {
                for _ in 0..*min {
                    self.emit(body)?;
                }
                match max {
                    None => {
                        let split = self.push(Inst::Split(0, 0))?;
                        self.emit(body)?;
                        self.push(Inst::Jump(split))?;
                        self.insts[split as usize] = Inst::Split(split + 1, self.next());
                    }
                    Some(max) => {
                        let mut splits = Vec::new();
                        for _ in *min..*max {
                            splits.push(self.push(Inst::Split(0, 0))?);
                            self.emit(body)?;
                        }
                        let end = self.next();
                        for s in splits {
                            self.insts[s as usize] = Inst::Split(s + 1, end);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The thread lists of one match: reused between matches (an event that passes
/// allocates nothing).
#[derive(Debug, Default)]
struct Threads {
    cur: Vec<u32>,
    next: Vec<u32>,
    stack: Vec<u32>,
    /// `seen[pc] == generation` when `pc` is in the list being built.
    seen: Vec<u32>,
    generation: u32,
}

struct Compiled {
    prog: Program,
    cache: Mutex<Threads>,
}

/// Not derived: a derived Debug of the program costs about 1 KB in the mobile library,
/// and the pattern's text is beside it in the compiled schema anyway.
impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BuiltinPattern")
    }
}

fn is_word(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Program {
    /// Adds `pc` and every instruction reachable from it without consuming a character
    /// to `list`, between `prev` and `next`; true if that reaches `Match`.
    fn add(&self, t: &mut Threads, pc: u32, prev: Option<char>, next: Option<char>) -> bool {
        let mut stack = std::mem::take(&mut t.stack);
        stack.push(pc);
        let mut matched = false;
        while let Some(pc) = stack.pop() {
            let seen = &mut t.seen[pc as usize];
            if *seen == t.generation {
                continue;
            }
            *seen = t.generation;
            match self.insts[pc as usize] {
                Inst::Split(a, b) => {
                    stack.push(b);
                    stack.push(a);
                }
                Inst::Jump(to) => stack.push(to),
                Inst::Look(look) => {
                    let holds = match look {
                        Look::Start => prev.is_none(),
                        Look::End => next.is_none(),
                        Look::Word => is_word(prev) != is_word(next),
                        Look::NotWord => is_word(prev) == is_word(next),
                    };
                    if holds {
                        stack.push(pc + 1);
                    }
                }
                Inst::Match => matched = true,
                Inst::Char(_) | Inst::Any | Inst::Class(_) => t.next.push(pc),
            }
        }
        t.stack = stack;
        matched
    }

    fn step_matches(&self, pc: u32, c: char) -> bool {
        match self.insts[pc as usize] {
            Inst::Char(x) => x == c,
            Inst::Any => true,
            Inst::Class(k) => {
                let (ranges, negated) = &self.classes[k as usize];
                let c = c as u32;
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
            _ => false,
        }
    }

    fn new_generation(&self, t: &mut Threads) {
        t.generation = t.generation.wrapping_add(1);
        if t.generation == 0 {
            t.seen.iter_mut().for_each(|s| *s = u32::MAX);
            t.generation = 1;
        }
    }

    fn run(&self, t: &mut Threads, s: &str) -> bool {
        let n = self.insts.len();
        if t.seen.len() != n {
            // Sized once for the worst case (every instruction a thread; each one seen
            // pushes at most two), so that no later match allocates.
            t.seen = vec![u32::MAX; n];
            t.generation = 0;
            t.cur = Vec::with_capacity(n);
            t.next = Vec::with_capacity(n);
            t.stack = Vec::with_capacity(2 * n + 1);
        }
        t.next.clear();
        let mut chars = s.chars();
        let mut prev = None;
        let mut next = chars.clone().next();
        self.new_generation(t);
        loop {
            // A new thread at every position: the match is unanchored.
            if self.add(t, 0, prev, next) {
                return true;
            }
            let Some(c) = chars.next() else {
                return false;
            };
            std::mem::swap(&mut t.cur, &mut t.next);
            t.next.clear();
            let (after, following) = (Some(c), chars.clone().next());
            self.new_generation(t);
            for k in 0..t.cur.len() {
                let pc = t.cur[k];
                if self.step_matches(pc, c) && self.add(t, pc + 1, after, following) {
                    return true;
                }
            }
            (prev, next) = (after, following);
        }
    }
}

impl Pattern for Compiled {
    fn is_match(&self, s: &str) -> bool {
        match self.cache.try_lock() {
            Ok(mut t) => self.prog.run(&mut t, s),
            // Another thread is matching with this pattern: lists of our own.
            Err(_) => self.prog.run(&mut Threads::default(), s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::portable_pattern;
    use serde_json::Value;

    /// A small deterministic generator (xorshift), as the plan tests use.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn string(&mut self, alphabet: &[char], max: usize) -> String {
            let len = (self.next() % (max as u64 + 1)) as usize;
            (0..len)
                .map(|_| alphabet[(self.next() % alphabet.len() as u64) as usize])
                .collect()
        }
    }

    fn strings_in(
        v: &Value,
        key: Option<&str>,
        patterns: &mut Vec<String>,
        texts: &mut Vec<String>,
    ) {
        match v {
            Value::String(s) if key == Some("pattern") => patterns.push(s.clone()),
            Value::String(s) => texts.push(s.clone()),
            Value::Array(items) => items
                .iter()
                .for_each(|i| strings_in(i, None, patterns, texts)),
            Value::Object(map) => {
                for (k, v) in map {
                    texts.push(k.clone());
                    strings_in(v, Some(k), patterns, texts);
                }
            }
            _ => {}
        }
    }

    /// Compares the two engines on one pattern: both compile it or both refuse it, and
    /// they agree on every text. Returns whether it compiled.
    fn compare(p: &str, texts: &[String], failures: &mut Vec<String>) -> bool {
        let reference = regex_lite::RegexBuilder::new(p)
            .dot_matches_new_line(true)
            .build();
        let ours = BuiltinEngine.compile(p);
        match (&reference, &ours) {
            (Ok(r), Ok(o)) => {
                for t in texts {
                    if r.is_match(t) != o.is_match(t) {
                        failures.push(format!(
                            "{p:?} on {t:?}: regex-lite {}, built-in {}",
                            r.is_match(t),
                            o.is_match(t)
                        ));
                    }
                }
                true
            }
            (Err(_), Err(_)) => false,
            (r, o) => {
                failures.push(format!(
                    "{p:?}: regex-lite {:?}, built-in {:?}",
                    r.as_ref().err(),
                    o.as_ref().err()
                ));
                false
            }
        }
    }

    const FIXED: &[&str] = &[
        "^s[0-9]+$",
        "a|",
        "()",
        "(?:ab)+",
        "^(?:a|bc)*d{2,3}$",
        "[^a-c\\d]x",
        "[\\w-]+@[\\w-]+",
        "\\bfoo\\B",
        "^$",
        "a{0}b",
        "a{2,}",
        "a{3}?",
        "(a|b)*?c",
        "\\x41\\u0042\\u{1F3B5}",
        "[\\u{1F3B5}-\\u{1F3BF}]",
        "\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\/\\^\\$\\\\",
        "[\\-\\]a]",
        "[a-]",
        "[-a]",
        "\\t\\n\\r\\f\\v",
        ".",
        "^.{2}$",
        "\\D\\W",
        "[\\D]",
        "[^\\W]",
        "é+",
        "(((a)))",
        "a{2,1}",
        "(a",
        "a)",
        "[z-a]",
        "(a{1000}){1000}",
        "(?:a*)*b",
        "(|a)+",
        "$a",
        "a^",
        "\\b",
        "\\B",
        "a\\bb",
        "a\\b ",
        " \\B ",
        "\\b_",
        "é\\b",
        "^\\b",
        "\\B$",
    ];

    const TEXTS: &[&str] = &[
        "",
        "a",
        "b",
        "ab",
        "abc",
        "s12",
        "s",
        "x12",
        "bcd",
        "aadd",
        "bcbcddd",
        "foo",
        "foobar",
        "foo bar",
        "a-b",
        "a\nb",
        "a😀b",
        "🎵",
        "AB🎵",
        "ABx",
        "é",
        "éé",
        "u@d.x",
        "\t\n\r\x0c\x0b",
        ".*+?()[]{}|/^$\\",
        "-",
        "]",
        "xx",
        "_",
        "0",
        "9x",
        "dx",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
    ];

    /// The built-in engine and regex-lite (what it replaced) agree on every portable
    /// pattern of the fuzz corpus's plans, a fixed list covering the subset, and 20 000
    /// random ones: both compile it or both refuse it, and they match the same texts.
    #[test]
    fn differs_from_regex_lite_nowhere() {
        let mut patterns: Vec<String> = FIXED.iter().map(|s| s.to_string()).collect();
        let mut texts: Vec<String> = TEXTS.iter().map(|s| s.to_string()).collect();
        let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/plan");
        let mut files = 0;
        for entry in std::fs::read_dir(corpus).expect("the fuzz corpus") {
            let bytes = std::fs::read(entry.expect("entry").path()).expect("a corpus file");
            let Ok(text) = String::from_utf8(bytes) else {
                continue;
            };
            files += 1;
            let (plan, events) = text.split_once("\n---\n").unwrap_or((&text, ""));
            for json in std::iter::once(plan).chain(events.lines()) {
                if let Ok(v) = serde_json::from_str::<Value>(json) {
                    strings_in(&v, None, &mut patterns, &mut texts);
                }
            }
        }
        assert!(files > 50, "{files} corpus files");
        let from_corpus = patterns.len() - FIXED.len();
        assert!(from_corpus > 20, "{from_corpus} patterns in the corpus");
        texts.sort();
        texts.dedup();
        let mut failures = Vec::new();
        let mut compiled = 0;
        for p in &patterns {
            if portable_pattern(p).is_ok() && compare(p, &texts, &mut failures) {
                compiled += 1;
            }
        }
        let alphabet: Vec<char> = "ab\\[]{}()^$.*+?|-:,0123456789dwDWbBtnxu_é🎵 "
            .chars()
            .collect();
        let text_alphabet: Vec<char> = "ab01_-:é🎵 \n".chars().collect();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut random_compiled = 0;
        for _ in 0..20_000 {
            let p = rng.string(&alphabet, 10);
            if portable_pattern(&p).is_err() {
                continue;
            }
            let texts: Vec<String> = (0..8).map(|_| rng.string(&text_alphabet, 8)).collect();
            if compare(&p, &texts, &mut failures) {
                random_compiled += 1;
            }
        }
        failures.truncate(40);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        assert!(
            compiled > 30 && random_compiled > 500,
            "{compiled} {random_compiled}"
        );
    }

    /// Groups nest at most MAX_NEST deep, as in regex-lite; deeper is an error, not a
    /// stack overflow.
    #[test]
    fn nesting_is_bounded() {
        let deep = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
        let ok = BuiltinEngine
            .compile(&deep(MAX_NEST as usize))
            .expect("at the limit");
        assert!(ok.is_match("a"));
        assert!(BuiltinEngine.compile(&deep(MAX_NEST as usize + 1)).is_err());
        assert!(BuiltinEngine.compile(&deep(100_000)).is_err());
    }

    /// A pattern whose program would exceed MAX_PROGRAM is refused before it is built.
    #[test]
    fn program_size_is_bounded() {
        assert!(BuiltinEngine.compile("(a{1000}){1000}").is_err());
        assert!(BuiltinEngine.compile("((a{1000}){1000}){1000}").is_err());
        assert!(BuiltinEngine.compile("(a{1000}){100}").is_ok());
    }
}
