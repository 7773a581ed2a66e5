//! The deletes a page owes its queue, kept in `localStorage` until IndexedDB has done them.
//!
//! When the collector acknowledges a batch, the engine asks the store to delete its events
//! ([`Engine::deletes_owed`](trailhound_core::Engine::deletes_owed) lists them until the
//! store confirms). IndexedDB does that in a transaction of its own, a few milliseconds
//! later; a page that goes away meanwhile (a reload, a navigation, a closed tab) aborts
//! it, and the next page sent the acknowledged events again (the browser benchmark's
//! reload (a): 20 of 20 sent twice after a reload right after the answer). So, in the same
//! task as the answer, before anyone hears of the delivery, the seqs owed go to
//! `localStorage`, whose writes are synchronous and survive the page; they leave it when
//! the store has confirmed the delete. The next page to open the queue hands what it
//! finds there to its engine, which deletes them before anything else ([`take`]).
//!
//! The seqs are the database's own (`IdbStore::allocate_seqs`), which only grow, so an
//! entry names the same events whenever it is read, with one exception: a database
//! evicted and created again (browsers evict IndexedDB under storage pressure and keep
//! `localStorage`) numbers its events from 1 again. The entry carries the seq after the
//! largest it names, and is applied only to a database that holds a seq at least that
//! large: the page that wrote it had not deleted those events, and a database created
//! since holds none when the entry is read, at its first open.
//!
//! Where there is no `localStorage` (Node, a worker, storage blocked) nothing is kept and
//! deliveries are at least once, as before. Another tab that opens the queue while this
//! one owes deletes does them itself: they are acknowledged events, deleted once either
//! way.

use crate::platform;

/// The most seqs an entry may name: a few batches (`Policy::max_batch_events`, 500) are
/// owed at most; more is a damaged or foreign entry, ignored rather than expanded.
pub const MAX_OWED: u64 = 100_000;

/// The deletes this page owes, as last kept.
#[derive(Debug, Default)]
pub struct Journal {
    key: String,
    kept: Vec<u64>,
}

impl Journal {
    /// The journal of the queue in database `db`, holding `kept` (what [`take`] gave).
    pub fn new(db: &str, kept: Vec<u64>) -> Journal {
        Journal { key: key(db), kept }
    }

    /// Keeps `owed` (sorted seqs), or removes the entry when it is empty; nothing when it
    /// is what is kept already.
    pub fn keep(&mut self, owed: Vec<u64>) {
        if owed == self.kept {
            return;
        }
        let text = (!owed.is_empty()).then(|| encode(&owed));
        if platform::keep(&self.key, text.as_deref()) {
            self.kept = owed;
        }
    }
}

fn key(db: &str) -> String {
    format!("trailhound:{db}:owed")
}

/// `1 <after> <ranges>`: the format's version, the seq after the largest named, and the
/// seqs as ranges (`4-9,12`). Digits written by hand, as [`decode`] reads them: the
/// formatting and parsing machinery cost the package more than the journal itself.
pub fn encode(seqs: &[u64]) -> String {
    let mut out = String::from("1 ");
    push_number(&mut out, seqs.iter().max().map_or(0, |m| m + 1));
    out.push(' ');
    let mut i = 0;
    while i < seqs.len() {
        if i > 0 {
            out.push(',');
        }
        let start = seqs[i];
        while i + 1 < seqs.len() && seqs[i + 1] == seqs[i] + 1 {
            i += 1;
        }
        push_number(&mut out, start);
        if seqs[i] > start {
            out.push('-');
            push_number(&mut out, seqs[i]);
        }
        i += 1;
    }
    out
}

fn push_number(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(d as char);
    }
}

/// The seqs of an entry and the seq after the largest, or `None` for a damaged entry
/// (or one of another version, or naming more than [`MAX_OWED`] seqs).
pub fn decode(text: &str) -> Option<(Vec<u64>, u64)> {
    let rest = text.strip_prefix("1 ")?.as_bytes();
    let (after, mut rest) = number(rest)?;
    rest = rest.strip_prefix(b" ")?;
    let mut seqs = Vec::new();
    loop {
        let (start, tail) = number(rest)?;
        let (end, tail) = match tail.strip_prefix(b"-") {
            Some(tail) => number(tail)?,
            None => (start, tail),
        };
        if start == 0 || end < start || end >= after {
            return None;
        }
        if seqs.len() as u64 + (end - start + 1) > MAX_OWED {
            return None;
        }
        seqs.extend(start..=end);
        rest = match tail {
            [] => return Some((seqs, after)),
            [b',', tail @ ..] => tail,
            _ => return None,
        };
    }
}

/// A decimal number at the start of `bytes` (at least one digit, no overflow), and what
/// follows it.
fn number(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in &bytes[..len] {
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some((n, &bytes[len..]))
}

/// The deletes an earlier page owed the queue in database `db` (see the module docs), for
/// [`Engine::handle_owed_deletes`](trailhound_core::Engine::handle_owed_deletes), given the
/// largest seq the database holds (`StoreSnapshot::max_seq`): none if there is no entry.
/// An entry that cannot be applied is removed: a damaged one, or one naming seqs past the
/// largest stored, which only a database created since the entry was written has (the
/// page that wrote it had not deleted them). The others stay until the deletes are done.
pub fn take(db: &str, max_seq: u64) -> Vec<u64> {
    let key = key(db);
    let Some(text) = platform::kept(&key) else {
        return Vec::new();
    };
    match decode(&text) {
        Some((seqs, after)) if after - 1 <= max_seq => seqs,
        _ => {
            platform::keep(&key, None);
            Vec::new()
        }
    }
}
