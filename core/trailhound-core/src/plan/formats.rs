//! The `format` keyword's checks (`date-time`, `email`, `uri`) and the naming conventions,
//! hand-written so that every platform has the same small code (no date or URL library).
//!
//! - `date-time`: RFC 3339 `date-time`: `YYYY-MM-DD`, `T` or `t`, `hh:mm:ss`, an optional
//!   fraction (`.` and one or more digits), then `Z`, `z` or `+hh:mm`/`-hh:mm`. Months
//!   1-12, days per month (29 February only in leap years), hours < 24, minutes < 60,
//!   seconds <= 60 (a leap second is accepted at any time of day: the offset makes the
//!   UTC minute unknowable without a table), offsets < 24:00.
//! - `email`: `local@domain` in RFC 5321's dot-atom form, ASCII only: the local part is
//!   atoms of `atext` joined by single dots (at most 64 characters); the domain is one or
//!   more labels of letters, digits and inner hyphens (each at most 63 characters, the
//!   whole at most 253). Quoted local parts and address literals (`[127.0.0.1]`) are
//!   refused: nobody instruments an app to send those.
//! - `uri`: an absolute URI (RFC 3986 `absolute-URI` or `URI`): a scheme
//!   (`[A-Za-z][A-Za-z0-9+.-]*`), `:`, then only URI characters (unreserved, reserved)
//!   and `%HH` escapes. The structure of the authority and path is not checked.
//!
//! Naming conventions ([`Case`]): words are ASCII letters and digits and a name may not
//! start with a digit. `snake_case` and `kebab-case`: lowercase words joined by single
//! `_` or `-`; `camelCase`: a lowercase letter then letters and digits; `PascalCase`: an
//! uppercase letter then letters and digits; `Title Case`: words joined by single spaces,
//! each starting with an uppercase letter or a digit (the first with a letter), the rest
//! of each word letters and digits in any case (`Song Played`, `Top 10 Viewed`, `MP3
//! Played`).

use super::model::{Case, Format};

/// Whether `s` is valid for `format`.
pub fn is_valid(format: Format, s: &str) -> bool {
    match format {
        Format::DateTime => is_date_time(s),
        Format::Email => is_email(s),
        Format::Uri => is_uri(s),
    }
}

/// The format's name as written in plans (`date-time`, `email`, `uri`).
pub fn format_name(format: Format) -> &'static str {
    match format {
        Format::DateTime => "date-time",
        Format::Email => "email",
        Format::Uri => "uri",
    }
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let part = b.get(at..at + n)?;
    let mut v = 0u32;
    for &c in part {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// RFC 3339 `date-time` (see the module docs).
pub fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    let (Some(year), Some(month), Some(day)) = (digits(b, 0, 4), digits(b, 5, 2), digits(b, 8, 2))
    else {
        return false;
    };
    if b[4] != b'-' || b[7] != b'-' || !(1..=12).contains(&month) {
        return false;
    }
    if day < 1 || day > days_in_month(year, month) {
        return false;
    }
    if !matches!(b.get(10), Some(b'T' | b't')) {
        return false;
    }
    let (Some(h), Some(m), Some(sec)) = (digits(b, 11, 2), digits(b, 14, 2), digits(b, 17, 2))
    else {
        return false;
    };
    if b[13] != b':' || b[16] != b':' || h > 23 || m > 59 || sec > 60 {
        return false;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match b.get(i) {
        Some(b'Z' | b'z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            let (Some(oh), Some(om)) = (digits(b, i + 1, 2), digits(b, i + 4, 2)) else {
                return false;
            };
            b[i + 3] == b':' && oh < 24 && om < 60 && i + 6 == b.len()
        }
        _ => false,
    }
}

fn is_atext(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&c)
}

/// An email address in dot-atom form (see the module docs).
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 || domain.is_empty() || domain.len() > 253 {
        return false;
    }
    let atoms_ok = local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext));
    atoms_ok && domain.split('.').all(is_domain_label)
}

fn is_domain_label(label: &str) -> bool {
    let b = label.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
}

/// An absolute URI (see the module docs).
pub fn is_uri(s: &str) -> bool {
    let b = s.as_bytes();
    let Some(colon) = b.iter().position(|&c| c == b':') else {
        return false;
    };
    let scheme = &b[..colon];
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'.' | b'-'));
    if !scheme_ok {
        return false;
    }
    let rest = &b[colon + 1..];
    let mut i = 0;
    while i < rest.len() {
        let c = rest[i];
        if c == b'%' {
            let hex = |k: usize| rest.get(k).is_some_and(u8::is_ascii_hexdigit);
            if !hex(i + 1) || !hex(i + 2) {
                return false;
            }
            i += 3;
            continue;
        }
        let ok = c.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&c);
        if !ok {
            return false;
        }
        i += 1;
    }
    true
}

/// The convention's name as written in plans (`snake_case`, …).
pub fn case_name(case: Case) -> &'static str {
    match case {
        Case::SnakeCase => "snake_case",
        Case::CamelCase => "camel_case",
        Case::PascalCase => "pascal_case",
        Case::TitleCase => "title_case",
        Case::KebabCase => "kebab_case",
    }
}

/// Whether `name` follows `case` (see the module docs).
pub fn follows(case: Case, name: &str) -> bool {
    let b = name.as_bytes();
    let Some(&first) = b.first() else {
        return false;
    };
    match case {
        Case::SnakeCase => joined_lower(b, b'_'),
        Case::KebabCase => joined_lower(b, b'-'),
        Case::CamelCase => first.is_ascii_lowercase() && b.iter().all(u8::is_ascii_alphanumeric),
        Case::PascalCase => first.is_ascii_uppercase() && b.iter().all(u8::is_ascii_alphanumeric),
        Case::TitleCase => {
            first.is_ascii_uppercase()
                && name.split(' ').all(|w| {
                    let w = w.as_bytes();
                    w.first()
                        .is_some_and(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                        && w.iter().all(u8::is_ascii_alphanumeric)
                })
        }
    }
}

fn joined_lower(b: &[u8], sep: u8) -> bool {
    b[0].is_ascii_lowercase()
        && b[b.len() - 1] != sep
        && !b.windows(2).any(|w| w[0] == sep && w[1] == sep)
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == sep)
}
