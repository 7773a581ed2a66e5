//! Timestamps: milliseconds since the epoch to RFC 3339 and back, and HTTP-dates.
//!
//! The engine needs three things from a calendar: `timestamp`/`sentAt` written as
//! `2026-12-02T16:14:42.000Z`, a stored event's `timestamp` read back (queue import), and
//! a `Retry-After` HTTP-date read. A date-time library (chrono) carries its general
//! formatting and parsing machinery into the mobile library and the browser package for
//! these; the proleptic Gregorian arithmetic they need is Howard Hinnant's
//! `days_from_civil` / `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>),
//! a few lines each. The tests check every function against chrono (a dev-dependency)
//! over random instants and random malformed strings.

/// Days from 1970-01-01 to `y-m-d` (proleptic Gregorian; `m` 1..=12, `d` 1..=31).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day)` of the day `z` days after 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Formats milliseconds since the epoch as RFC 3339 UTC with milliseconds:
/// `2026-12-02T16:14:42.123Z`. Years outside 0..=9999 (a clock gone very wrong) are
/// written as 1970-01-01T00:00:00.000Z, as four digits cannot hold them.
pub fn iso8601(ms: i64) -> String {
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return iso8601(0);
    }
    let (s, milli) = (ms_of_day / 1000, ms_of_day % 1000);
    // Digits written by hand: `format!` costs several times more, and every event is
    // stamped (a tenth of a browser `track()` call, measured).
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, m.into());
    put(8, 2, d.into());
    put(11, 2, s / 3600);
    put(14, 2, s / 60 % 60);
    put(17, 2, s % 60);
    put(20, 3, milli);
    std::str::from_utf8(&out)
        .expect("only ASCII digits and separators")
        .to_owned()
}

/// A cursor over ASCII input.
struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor {
            s: s.as_bytes(),
            at: 0,
        }
    }

    fn done(&self) -> bool {
        self.at == self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.at += 1)
    }

    /// Exactly `n` digits.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let b = self.peek().filter(u8::is_ascii_digit)?;
            v = v * 10 + u32::from(b - b'0');
            self.at += 1;
        }
        Some(v)
    }

    /// `min..=max` digits.
    fn digits_between(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.at;
        let mut v = 0u32;
        while self.at - start < max {
            match self.peek() {
                Some(b) if b.is_ascii_digit() => {
                    v = v * 10 + u32::from(b - b'0');
                    self.at += 1;
                }
                _ => break,
            }
        }
        (self.at - start >= min).then_some(v)
    }

    fn spaces(&mut self) -> usize {
        let start = self.at;
        while self.peek() == Some(b' ') {
            self.at += 1;
        }
        self.at - start
    }

    fn word(&mut self) -> &'a [u8] {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            self.at += 1;
        }
        &self.s[start..self.at]
    }
}

/// Milliseconds since the epoch of a valid date and time of day, or `None`.
fn instant(y: i64, m: u32, d: u32, hh: u32, mm: u32, ss: u32, milli: u32) -> Option<i64> {
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) || hh > 23 || mm > 59 {
        return None;
    }
    // A leap second (`:60`) is read as the last millisecond's second, as chrono does.
    if ss > 60 {
        return None;
    }
    let secs = days_from_civil(y, m, d) * 86_400 + i64::from(hh * 3600 + mm * 60 + ss);
    Some(secs * 1000 + i64::from(milli))
}

/// A numeric zone at the cursor, `+hh:mm` (RFC 3339, `colon`) or `+hhmm` (RFC 5322), in
/// minutes east of UTC. RFC 3339 bounds the hours to 23; RFC 5322 only the minutes.
fn offset_minutes(c: &mut Cursor<'_>, colon: bool) -> Option<i64> {
    let negative = c.peek()? == b'-';
    c.at += 1;
    let oh = c.digits(2)?;
    if colon {
        c.eat(b':')?;
    }
    let om = c.digits(2)?;
    if om > 59 || (colon && oh > 23) {
        return None;
    }
    let off = i64::from(oh * 60 + om);
    Some(if negative { -off } else { off })
}

/// Parses an RFC 3339 date-time (`2026-12-02T16:14:42.123+01:00`, `T`, `t` or a space
/// between date and time, `Z`/`z` or a numeric offset), as milliseconds since the epoch.
/// Fractions beyond milliseconds are truncated.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let mut c = Cursor::new(s);
    let y = c.digits(4)?;
    c.eat(b'-')?;
    let m = c.digits(2)?;
    c.eat(b'-')?;
    let d = c.digits(2)?;
    match c.peek()? {
        b'T' | b't' | b' ' => c.at += 1,
        _ => return None,
    }
    let hh = c.digits(2)?;
    c.eat(b':')?;
    let mm = c.digits(2)?;
    c.eat(b':')?;
    let ss = c.digits(2)?;
    let mut milli = 0;
    if c.eat(b'.').is_some() {
        let start = c.at;
        while c.peek().is_some_and(|b| b.is_ascii_digit()) {
            let digit = u32::from(c.peek()? - b'0');
            let place = c.at - start;
            if place < 3 {
                milli += digit * 10u32.pow(2 - place as u32);
            }
            c.at += 1;
        }
        if c.at == start {
            return None;
        }
    }
    let offset_min = match c.peek()? {
        b'Z' | b'z' => {
            c.at += 1;
            0
        }
        b'+' | b'-' => offset_minutes(&mut c, true)?,
        _ => return None,
    };
    if !c.done() {
        return None;
    }
    let local = instant(i64::from(y), m, d, hh, mm, ss, milli)?;
    Some(local - offset_min * 60_000)
}

const MONTHS: [&[u8]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];
const WEEKDAYS: [&[u8]; 7] = [b"mon", b"tue", b"wed", b"thu", b"fri", b"sat", b"sun"];
const LONG_WEEKDAYS: [&[u8]; 7] = [
    b"monday",
    b"tuesday",
    b"wednesday",
    b"thursday",
    b"friday",
    b"saturday",
    b"sunday",
];

fn month(word: &[u8]) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(word))
        .map(|i| i as u32 + 1)
}

/// The weekday (0 = Monday) of a day counted from 1970-01-01 (a Thursday).
fn weekday(days: i64) -> usize {
    (days + 3).rem_euclid(7) as usize
}

/// `hh:mm:ss`.
fn time_of_day(c: &mut Cursor<'_>) -> Option<(u32, u32, u32)> {
    let hh = c.digits(2)?;
    c.eat(b':')?;
    let mm = c.digits(2)?;
    c.eat(b':')?;
    let ss = c.digits(2)?;
    Some((hh, mm, ss))
}

/// A date whose weekday, if written, must be the date's.
fn checked(
    y: i64,
    m: u32,
    d: u32,
    (hh, mm, ss): (u32, u32, u32),
    day_name: Option<usize>,
) -> Option<i64> {
    let t = instant(y, m, d, hh, mm, ss, 0)?;
    if let Some(w) = day_name {
        if weekday(days_from_civil(y, m, d)) != w {
            return None;
        }
    }
    Some(t)
}

/// Parses an HTTP-date in any of the three forms RFC 9110 (section 5.6.7) requires
/// recipients to accept, as milliseconds since the epoch:
///
/// - IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT` (also read: no weekday, a one-digit day,
///   `UT`/`UTC`/`Z` or a numeric `+hhmm` zone, as RFC 5322 allows);
/// - RFC 850, `Sunday, 06-Nov-94 08:49:37 GMT`: the two-digit year is read in the century
///   of `now_ms`, unless that is more than 50 years in the future: then it is the most
///   recent past year with those digits, as RFC 9110 says;
/// - asctime, `Sun Nov  6 08:49:37 1994` (the day space-padded, or not).
///
/// A weekday that is not the date's is refused. Month and day names in any case.
pub fn parse_http_date(value: &str, now_ms: i64) -> Option<i64> {
    if value.len() > 64 || !value.is_ascii() {
        return None;
    }
    imf_fixdate(value)
        .or_else(|| rfc850(value, now_ms))
        .or_else(|| asctime(value))
}

fn imf_fixdate(value: &str) -> Option<i64> {
    let mut c = Cursor::new(value);
    let mut day_name = None;
    if c.peek()?.is_ascii_alphabetic() {
        let w = c.word();
        day_name = Some(WEEKDAYS.iter().position(|d| d.eq_ignore_ascii_case(w))?);
        c.eat(b',')?;
        c.spaces();
    }
    let d = c.digits_between(1, 2)?;
    (c.spaces() > 0).then_some(())?;
    let m = month(c.word())?;
    (c.spaces() > 0).then_some(())?;
    let y = c.digits(4)?;
    (c.spaces() > 0).then_some(())?;
    let hh = c.digits(2)?;
    c.eat(b':')?;
    let mm = c.digits(2)?;
    let ss = if c.eat(b':').is_some() {
        c.digits(2)?
    } else {
        0
    };
    (c.spaces() > 0).then_some(())?;
    let offset_min: i64 = match c.peek()? {
        b'+' | b'-' => offset_minutes(&mut c, false)?,
        _ => {
            let zone = c.word();
            if !["GMT", "UT", "UTC", "Z"]
                .iter()
                .any(|z| z.as_bytes().eq_ignore_ascii_case(zone))
            {
                return None;
            }
            0
        }
    };
    c.spaces();
    if !c.done() {
        return None;
    }
    let t = checked(i64::from(y), m, d, (hh, mm, ss), day_name)?;
    Some(t - offset_min * 60_000)
}

fn rfc850(value: &str, now_ms: i64) -> Option<i64> {
    let mut c = Cursor::new(value);
    let w = c.word();
    let day_name = LONG_WEEKDAYS
        .iter()
        .position(|d| d.eq_ignore_ascii_case(w))?;
    c.eat(b',')?;
    (c.spaces() > 0).then_some(())?;
    let d = c.digits(2)?;
    c.eat(b'-')?;
    let m = month(c.word())?;
    c.eat(b'-')?;
    let yy = i64::from(c.digits(2)?);
    let this_year = civil_from_days(now_ms.div_euclid(86_400_000)).0;
    let mut y = this_year - this_year.rem_euclid(100) + yy;
    if y > this_year + 50 {
        y -= 100;
    }
    (c.spaces() > 0).then_some(())?;
    let tod = time_of_day(&mut c)?;
    (c.spaces() > 0).then_some(())?;
    if !c.word().eq_ignore_ascii_case(b"GMT") || !c.done() {
        return None;
    }
    checked(y, m, d, tod, Some(day_name))
}

fn asctime(value: &str) -> Option<i64> {
    let mut c = Cursor::new(value);
    c.spaces();
    let w = c.word();
    let day_name = WEEKDAYS.iter().position(|d| d.eq_ignore_ascii_case(w))?;
    (c.spaces() > 0).then_some(())?;
    let m = month(c.word())?;
    (c.spaces() > 0).then_some(())?;
    let d = c.digits_between(1, 2)?;
    (c.spaces() > 0).then_some(())?;
    let tod = time_of_day(&mut c)?;
    (c.spaces() > 0).then_some(())?;
    let y = c.digits(4)?;
    c.spaces();
    if !c.done() {
        return None;
    }
    checked(i64::from(y), m, d, tod, Some(day_name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::Jitter;

    fn chrono_ms(s: &str) -> Option<i64> {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis())
    }

    /// Formatting agrees with chrono's RFC 3339 with milliseconds over random instants in
    /// years 0 to 9999, day boundaries and the epoch's neighbours.
    #[test]
    fn iso8601_matches_chrono() {
        let mut j = Jitter::new(3);
        let lo = -62_167_219_200_000i64; // 0000-01-01
        let hi = 253_402_300_799_999i64; // 9999-12-31T23:59:59.999
        let mut cases = vec![0, -1, 1, 86_399_999, 86_400_000, -86_400_000, lo, hi];
        cases.extend((0..20_000).map(|_| lo + (j.next_f64() * (hi - lo) as f64) as i64));
        for ms in cases {
            let want = chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            assert_eq!(iso8601(ms), want, "{ms}");
            assert_eq!(parse_rfc3339(&want), Some(ms), "{want}");
        }
        assert_eq!(iso8601(hi + 1), "1970-01-01T00:00:00.000Z");
    }

    /// Parsing agrees with chrono's `parse_from_rfc3339` on random offsets, fractions,
    /// separators, and on random corruptions of valid strings (both refuse, or both read
    /// the same instant).
    #[test]
    fn parse_rfc3339_matches_chrono() {
        let mut j = Jitter::new(9);
        let mut pick = |n: usize| (j.next_f64() * n as f64) as usize;
        let alphabet = b"0123456789-:T tzZ.+,x";
        for i in 0..30_000 {
            let y = 1900 + pick(200);
            let mut s = format!(
                "{y:04}-{:02}-{:02}{}{:02}:{:02}:{:02}",
                1 + pick(12),
                1 + pick(31),
                ["T", "t", " "][pick(3)],
                pick(24),
                pick(60),
                pick(61),
            );
            match pick(3) {
                0 => {}
                1 => s.push_str(&format!(".{}", pick(1000))),
                _ => s.push_str(&format!(".{:09}", pick(1_000_000_000))),
            }
            match pick(3) {
                0 => s.push('Z'),
                1 => s.push('z'),
                _ => s.push_str(&format!(
                    "{}{:02}:{:02}",
                    ["+", "-"][pick(2)],
                    pick(24),
                    pick(60)
                )),
            }
            if i % 2 == 1 {
                // Corrupt one byte: both parsers must agree on what is left.
                let mut b = s.into_bytes();
                let at = pick(b.len());
                b[at] = alphabet[pick(alphabet.len())];
                s = String::from_utf8(b).unwrap();
            }
            assert_eq!(parse_rfc3339(&s), chrono_ms(&s), "{s:?}");
        }
    }

    /// The three HTTP-date forms agree with chrono (RFC 2822 and the two strftime
    /// formats the engine used before) over random instants, and wrong weekdays, days
    /// and zones are refused.
    #[test]
    fn http_dates_match_chrono() {
        // 2026-12-02: two-digit years read as 1977..=2076.
        let now = 1_796_227_200_000;
        let (lo, hi) = (220_924_800_000i64, 3_376_684_799_000i64); // 1977 ..= 2076
        let mut j = Jitter::new(5);
        for _ in 0..10_000 {
            let ms = (lo + (j.next_f64() * (hi - lo) as f64) as i64) / 1000 * 1000;
            let t = chrono::DateTime::from_timestamp_millis(ms).unwrap();
            let imf = t.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            let rfc850 = t.format("%A, %d-%b-%y %H:%M:%S GMT").to_string();
            let asctime = t.format("%a %b %e %H:%M:%S %Y").to_string();
            let rfc2822 = chrono::DateTime::parse_from_rfc2822(&imf).unwrap();
            assert_eq!(rfc2822.timestamp_millis(), ms);
            assert_eq!(parse_http_date(&imf, now), Some(ms), "{imf}");
            assert_eq!(parse_http_date(&rfc850, now), Some(ms), "{rfc850}");
            assert_eq!(parse_http_date(&asctime, now), Some(ms), "{asctime}");
        }
        // RFC 9110's rule for two-digit years, against a clock in 2026.
        let year = |s: &str| {
            let ms = parse_http_date(s, now).unwrap();
            chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .format("%Y")
                .to_string()
        };
        assert_eq!(year("Sunday, 06-Nov-94 08:49:37 GMT"), "1994");
        assert_eq!(year("Friday, 06-Nov-76 08:49:37 GMT"), "2076");
        assert_eq!(year("Sunday, 06-Nov-77 08:49:37 GMT"), "1977");
        assert_eq!(year("Thursday, 06-Nov-25 08:49:37 GMT"), "2025");
        for bad in [
            "Mon, 06 Nov 1994 08:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 XYZ",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
            "Monday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 94",
            "",
            "soon",
        ] {
            assert_eq!(parse_http_date(bad, now), None, "{bad}");
        }
        let gmt = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", now);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 09:49:37 +0100", now), gmt);
        assert_eq!(parse_http_date("06 Nov 1994 08:49:37 GMT", now), gmt);
    }
}
