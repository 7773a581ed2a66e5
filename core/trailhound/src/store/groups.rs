//! Commit groups: how a commit of the engine's events reaches the disk in one `write`,
//! instead of one SQLite row (and its B-tree, index and WAL frames) per event.
//!
//! An insert of consecutive seqs after every stored one (the engine's commits, always) is
//! appended to a file beside the database, `trailhound.db-groups` ([`GroupsFile`]), as one
//! record: a length, a CRC-32 and the events encoded one after another ([`encode`]). A
//! commit of 256 typical events costs about 0.4 us per event this way, against 4.4 us as
//! rows (`cargo bench -p trailhound --bench report`, the floor of (h)), most of which was
//! SQLite's per-row work and two `pwrite`s per 2 KiB WAL frame, each written again at the
//! checkpoint.
//!
//! The database keeps what changes rarely and must be transactional: the state, the
//! contexts the events refer to, the watermark of delivered events, and the gaps (seq
//! ranges evicted or deleted in the middle, still in the file's records until it is
//! rewritten). Whatever a reader of the file sees is filtered by those: a seq at or below
//! the watermark, at or below the largest row's, or in a gap is not queued. So every
//! change to the queue is one SQLite transaction or one append, and a crash between a
//! transaction and the file change that follows it (emptying the file, a rewrite)
//! leaves records that the filters already skip.
//!
//! A group stays in the file while the queue is used the usual way: a load reads the rows
//! of `events` and then the groups, a delivered prefix moves the watermark, an eviction
//! of the oldest events adds a gap. The file is emptied when every group is delivered, and
//! rewritten without its dead records when they are as many bytes as the live ones (see
//! `SqliteStore::idle`). Anything else (a delete in the middle, an eviction by age of
//! events created out of order, the opt-out purge, an insert at an older seq) first turns
//! the groups into rows of `events` ("expands" them), after which the row code does what it
//! always did. So an event delivered from a group was never a row at all.
//!
//! This module holds the file, the record format and what the store keeps in memory about
//! the groups ([`Pending`]); the store decides what goes where.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// One event of a group blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub seq: i64,
    pub created_ms: i64,
    /// The row of `contexts` the event refers to, if any.
    pub context_id: Option<i64>,
    pub message_id: String,
    /// [`MessageType::as_str`](trailhound_core::message::MessageType::as_str).
    pub kind: String,
    pub name: Option<String>,
    /// The message without its shared context (see `EventJson`), as `events.json`.
    pub body: String,
}

/// Field borrowed from an event, for [`encode`].
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub seq: i64,
    pub created_ms: i64,
    pub context_id: Option<i64>,
    pub message_id: &'a str,
    pub kind: &'a str,
    pub name: Option<&'a str>,
    pub body: &'a str,
}

/// Format version, the blob's first byte: a blob of another version is refused as damage
/// (a newer build that changes the format bumps the schema version too).
const FORMAT: u8 = 1;
/// `name` absent.
const NONE: u32 = u32::MAX;

/// Starts a blob.
pub fn start(capacity: usize) -> Vec<u8> {
    let mut blob = Vec::with_capacity(capacity);
    blob.push(FORMAT);
    blob
}

/// Appends one event: `seq`, `created_ms`, `context_id` (-1: none) as little-endian i64,
/// then `message_id`, `kind`, `name` (length `u32::MAX`: none) and `body`, each a
/// little-endian u32 length and its UTF-8 bytes.
pub fn encode(blob: &mut Vec<u8>, ev: Fields<'_>) -> Result<(), TooLong> {
    blob.extend_from_slice(&ev.seq.to_le_bytes());
    blob.extend_from_slice(&ev.created_ms.to_le_bytes());
    blob.extend_from_slice(&ev.context_id.unwrap_or(-1).to_le_bytes());
    for text in [Some(ev.message_id), Some(ev.kind), ev.name, Some(ev.body)] {
        match text {
            None => blob.extend_from_slice(&NONE.to_le_bytes()),
            Some(t) => {
                let len = u32::try_from(t.len())
                    .ok()
                    .filter(|&l| l != NONE)
                    .ok_or(TooLong)?;
                blob.extend_from_slice(&len.to_le_bytes());
                blob.extend_from_slice(t.as_bytes());
            }
        }
    }
    Ok(())
}

/// A blob of `events` (read back by [`decode`], so within the lengths [`encode`] takes).
pub fn encode_all(events: &[Encoded]) -> Vec<u8> {
    let mut blob = start(events.iter().map(|e| e.body.len() + 80).sum());
    for e in events {
        let fields = Fields {
            seq: e.seq,
            created_ms: e.created_ms,
            context_id: e.context_id,
            message_id: &e.message_id,
            kind: &e.kind,
            name: e.name.as_deref(),
            body: &e.body,
        };
        encode(&mut blob, fields).expect("decoded, so within the lengths");
    }
    blob
}

/// A text of 4 GiB or more: not storable in a group (the engine's caps keep events far
/// below; an insert that meets one is written as rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

/// A blob that is not one [`encode`] wrote: damage to the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a commit group of the queue database is damaged: {0}")]
pub struct Damaged(&'static str);

/// Reads a blob back, in order.
pub fn decode(blob: &[u8]) -> Result<Vec<Encoded>, Damaged> {
    decode_where(blob, |_| true)
}

/// Reads back the events of a blob whose seq `keep` accepts, in order; the others are
/// checked as [`decode`] checks them but nothing is allocated for them (a batch load
/// needs a piece of a group, a rewrite its queued events only).
pub fn decode_where(blob: &[u8], keep: impl Fn(i64) -> bool) -> Result<Vec<Encoded>, Damaged> {
    let Some((&format, mut rest)) = blob.split_first() else {
        return Err(Damaged("empty"));
    };
    if format != FORMAT {
        return Err(Damaged("unknown format"));
    }
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], Damaged> {
        if rest.len() < n {
            return Err(Damaged("truncated"));
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Ok(head)
    }
    fn int(rest: &mut &[u8]) -> Result<i64, Damaged> {
        let b = take(rest, 8)?;
        Ok(i64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn raw<'a>(rest: &mut &'a [u8]) -> Result<Option<&'a [u8]>, Damaged> {
        let b = take(rest, 4)?;
        let len = u32::from_le_bytes(b.try_into().expect("4 bytes"));
        if len == NONE {
            return Ok(None);
        }
        take(rest, len as usize).map(Some)
    }
    fn text(bytes: &[u8]) -> Result<String, Damaged> {
        String::from_utf8(bytes.to_vec()).map_err(|_| Damaged("not UTF-8"))
    }
    let mut out = Vec::new();
    let mut last = None;
    while !rest.is_empty() {
        let seq = int(&mut rest)?;
        let created_ms = int(&mut rest)?;
        let context = int(&mut rest)?;
        let message_id = raw(&mut rest)?.ok_or(Damaged("no message id"))?;
        let kind = raw(&mut rest)?.ok_or(Damaged("no type"))?;
        let name = raw(&mut rest)?;
        let body = raw(&mut rest)?.ok_or(Damaged("no body"))?;
        if last.is_some_and(|l| l >= seq) {
            return Err(Damaged("seqs out of order"));
        }
        last = Some(seq);
        if !keep(seq) {
            continue;
        }
        out.push(Encoded {
            seq,
            created_ms,
            context_id: (context >= 0).then_some(context),
            message_id: text(message_id)?,
            kind: text(kind)?,
            name: name.map(text).transpose()?,
            body: text(body)?,
        });
    }
    if last.is_none() {
        return Err(Damaged("no events"));
    }
    Ok(out)
}

/// What the store knows of the groups file: each group's events in seq order, with what
/// the caps and the oldest-event lookup need (creation time, stored bytes), and where its
/// record is. Kept in step with the file (and the gaps and watermark that filter it) by
/// the store, after each change.
#[derive(Debug, Default)]
pub struct Pending {
    groups: VecDeque<Group>,
    /// Events of the groups after the watermark, and their stored bytes.
    live: u64,
    live_bytes: u64,
}

#[derive(Debug, Clone)]
struct Group {
    /// Where the group's record is in the file (a record cut by an eviction is shared by
    /// the pieces left of it, each reading only its own seqs).
    at: Location,
    /// The seq of `events[0]`; the events' seqs are consecutive.
    first: i64,
    /// Events at the front at or below the watermark (delivered).
    skip: usize,
    /// `(created_ms, stored bytes)` of each event.
    events: Vec<(i64, u64)>,
}

impl Group {
    fn last(&self) -> i64 {
        self.first + self.events.len() as i64 - 1
    }
}

impl Pending {
    /// Whether no group is stored.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Events of the groups that are queued (after the watermark).
    pub fn live(&self) -> u64 {
        self.live
    }

    /// Stored bytes of the events of [`Pending::live`].
    pub fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// The seq and creation time of each queued event, newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.groups.iter().rev().flat_map(|g| {
            g.events[g.skip..]
                .iter()
                .enumerate()
                .rev()
                .map(move |(i, &(created, _))| (g.first + (g.skip + i) as i64, created))
        })
    }

    /// The largest seq of a group.
    pub fn last_seq(&self) -> Option<i64> {
        self.groups.back().map(Group::last)
    }

    /// Accounts for a committed group: `first` and the `(created_ms, stored bytes)` of its
    /// consecutive events.
    pub fn push(&mut self, at: Location, first: i64, events: Vec<(i64, u64)>) {
        self.live += events.len() as u64;
        self.live_bytes += events.iter().map(|e| e.1).sum::<u64>();
        self.groups.push_back(Group {
            at,
            first,
            skip: 0,
            events,
        });
    }

    /// Forgets every group (they were expanded into rows, or cleared).
    pub fn clear(&mut self) {
        self.groups.clear();
        self.live = 0;
        self.live_bytes = 0;
    }

    /// When `sorted` (ascending, distinct, all after the watermark) are exactly the
    /// first queued events of the groups: their count and stored bytes.
    pub fn prefix(&self, sorted: &[i64]) -> Option<(u64, u64)> {
        let mut want = sorted.iter().copied().peekable();
        let mut bytes = 0u64;
        for g in &self.groups {
            for (i, &(_, b)) in g.events.iter().enumerate().skip(g.skip) {
                let Some(seq) = want.next() else {
                    return Some((sorted.len() as u64, bytes));
                };
                if seq != g.first + i as i64 {
                    return None;
                }
                bytes += b;
            }
        }
        // Seqs beyond the last group are not all of them.
        want.peek()
            .is_none()
            .then_some((sorted.len() as u64, bytes))
    }

    /// The watermark moved to `through`: the events at or below it are delivered, and the
    /// groups wholly below it forgotten (their records stay in the file until it is emptied
    /// or rewritten).
    pub fn deliver_through(&mut self, through: i64) {
        while let Some(g) = self.groups.front_mut() {
            let covered = usize::try_from(through.saturating_sub(g.first).saturating_add(1))
                .unwrap_or(0)
                .min(g.events.len());
            if covered > g.skip {
                self.live -= (covered - g.skip) as u64;
                self.live_bytes -= g.events[g.skip..covered].iter().map(|e| e.1).sum::<u64>();
                g.skip = covered;
            }
            if g.skip == g.events.len() {
                self.groups.pop_front();
            } else {
                break;
            }
        }
    }

    /// The queued events after `spare`, oldest first: `(seq, created_ms, stored bytes)`.
    pub fn after(&self, spare: i64) -> impl Iterator<Item = (i64, i64, u64)> + '_ {
        self.groups.iter().flat_map(move |g| {
            let from = Self::index_after(g, spare).min(g.events.len());
            g.events[from..]
                .iter()
                .enumerate()
                .map(move |(i, &(created, bytes))| (g.first + (from + i) as i64, created, bytes))
        })
    }

    /// Forgets the events with seqs in `(spare, cut]` (evicted: the store saved the range
    /// as a gap), splitting a group they cut through.
    pub fn remove_range(&mut self, spare: i64, cut: i64) {
        let mut kept = VecDeque::with_capacity(self.groups.len() + 1);
        for g in self.groups.drain(..) {
            let last = g.last();
            if last <= spare || g.first > cut {
                kept.push_back(g);
                continue;
            }
            let index = |seq: i64| {
                usize::try_from(seq.saturating_sub(g.first))
                    .unwrap_or(0)
                    .min(g.events.len())
            };
            let (lo, hi) = (index(spare.saturating_add(1)), index(cut.saturating_add(1)));
            for &(_, bytes) in &g.events[lo.max(g.skip)..hi] {
                self.live -= 1;
                self.live_bytes -= bytes;
            }
            if lo > 0 {
                kept.push_back(Group {
                    at: g.at,
                    first: g.first,
                    skip: g.skip.min(lo),
                    events: g.events[..lo].to_vec(),
                });
            }
            if hi < g.events.len() {
                kept.push_back(Group {
                    at: g.at,
                    first: g.first + hi as i64,
                    skip: g.skip.saturating_sub(hi),
                    events: g.events[hi..].to_vec(),
                });
            }
        }
        self.groups = kept;
    }

    /// Each group's record and the seqs of it that are queued after `through`, in order:
    /// what a load reads.
    pub fn pieces_after(&self, through: i64) -> impl Iterator<Item = (Location, i64, i64)> + '_ {
        self.groups.iter().filter_map(move |g| {
            let from = Self::index_after(g, through);
            (from < g.events.len()).then(|| (g.at, g.first + from as i64, g.last()))
        })
    }

    /// After a rewrite of the file that wrote, for each group with queued events, in
    /// order, one record of those events only (`moved[i]` for the i-th): points each at
    /// its record and forgets the delivered ones.
    pub fn compact(&mut self, moved: &[Location]) {
        self.groups.retain(|g| g.skip < g.events.len());
        debug_assert_eq!(self.groups.len(), moved.len());
        for (g, &at) in self.groups.iter_mut().zip(moved) {
            g.events.drain(..g.skip);
            g.first += g.skip as i64;
            g.skip = 0;
            g.at = at;
        }
    }

    /// The index of the first event of `g` after `through` (at least its first queued).
    fn index_after(g: &Group, through: i64) -> usize {
        usize::try_from(through.saturating_sub(g.first).saturating_add(1))
            .unwrap_or(0)
            .max(g.skip)
    }

    /// The seq and creation time of the first event after `through` (the watermark, or
    /// where a delete not yet committed is moving it).
    pub fn first_queued_after(&self, through: i64) -> Option<(i64, i64)> {
        self.groups.iter().find_map(|g| {
            let i = Self::index_after(g, through);
            let (created, _) = g.events.get(i)?;
            Some((g.first + i as i64, *created))
        })
    }

    /// The smallest creation time of the events after `through`: a walk of them all (the
    /// store asks only when their order is not known: see `Ages`).
    pub fn oldest_after(&self, through: i64) -> Option<i64> {
        self.groups
            .iter()
            .flat_map(|g| {
                let from = Self::index_after(g, through).min(g.events.len());
                g.events[from..].iter().map(|&(c, _)| c)
            })
            .min()
    }
}

/// Where a record is: the offset of its header in the file and its blob's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub offset: u64,
    pub len: u64,
}

/// A record's header: the blob's length and its CRC-32, little-endian u32s.
pub const HEADER: u64 = 8;

/// The file of commit groups beside the database: records appended one after another,
/// each a [`HEADER`] and a blob of [`encode`]. Appending is one `write` of the whole
/// record, with no sync: like the database's WAL with `synchronous = NORMAL`, a commit
/// survives the app being killed (it is in the OS's cache) and the file is synced when
/// the runtime idles ([`GroupsFile::sync_behind`]) and when it is closed. A record that a crash
/// cut short, or whose checksum fails, ends the file: it and what follows are cut off when
/// the file is opened for writing.
#[derive(Debug)]
pub struct GroupsFile {
    file: File,
    path: PathBuf,
    end: u64,
    /// Bytes appended since the last sync.
    unsynced: u64,
    /// Largest size, for tests that fill the disk ([`GroupsFile::limit`]).
    limit: Option<u64>,
    /// The sync started by [`GroupsFile::sync_behind`], if any.
    syncing: Option<std::thread::JoinHandle<()>>,
}

/// Reads the records of `reader` (`size` bytes) from the start: each one's location and
/// blob, until the end or the first record that is cut short or fails its checksum (a
/// length past the end is refused before anything is allocated for it). Returns the end
/// of the last whole one.
fn scan(
    reader: impl Read,
    size: u64,
    mut f: impl FnMut(Location, &[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut offset = 0u64;
    let mut blob = Vec::new();
    loop {
        let mut header = [0u8; HEADER as usize];
        match read_full(&mut reader, &mut header)? {
            0 => return Ok(offset),
            n if n < header.len() => return Ok(offset),
            _ => {}
        }
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if offset + HEADER + u64::from(len) > size {
            return Ok(offset);
        }
        blob.resize(len as usize, 0);
        if read_full(&mut reader, &mut blob)? < blob.len() || crc32fast::hash(&blob) != crc {
            return Ok(offset);
        }
        f(
            Location {
                offset,
                len: u64::from(len),
            },
            &blob,
        )?;
        offset += HEADER + u64::from(len);
    }
}

/// Reads until `buf` is full or the end; returns how much was read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Calls `f` with each whole record of the file at `path`, without writing to it (QA
/// readers). A missing file has none.
pub fn read_records(
    path: &Path,
    f: impl FnMut(Location, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    match File::open(path) {
        Ok(file) => {
            let size = file.metadata()?.len();
            scan(file, size, f).map(drop)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl GroupsFile {
    /// Opens the file at `path` for appending (created with `options`, which say its
    /// permissions), calling `f` with each whole record, and cuts off a damaged tail.
    pub fn open(
        path: &Path,
        options: &OpenOptions,
        f: impl FnMut(Location, &[u8]) -> io::Result<()>,
    ) -> io::Result<GroupsFile> {
        let mut file = options
            .clone()
            .read(true)
            .write(true)
            .create(true)
            .open(path)?;
        let len = file.metadata()?.len();
        let end = scan(&mut file, len, f)?;
        if len != end {
            log::warn!(
                "{}: {} bytes after the last whole commit group (a crash mid-write, or damage) cut off",
                path.display(),
                len - end
            );
            file.set_len(end)?;
        }
        Ok(GroupsFile {
            file,
            path: path.to_owned(),
            end,
            unsynced: 0,
            limit: None,
            syncing: None,
        })
    }

    /// Makes appends that would grow the file past `bytes` fail as a full disk does
    /// (`ENOSPC`), so that tests can fill it for real.
    pub fn limit(&mut self, bytes: Option<u64>) {
        self.limit = bytes;
    }

    /// Appends a record holding `blob`; returns where. A failed append (a full disk) is
    /// cut off again, so that the next one follows the last whole record.
    pub fn append(&mut self, blob: &[u8]) -> io::Result<Location> {
        let len = u32::try_from(blob.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "commit group over 4 GiB"))?;
        let mut record = Vec::with_capacity(blob.len() + HEADER as usize);
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(blob).to_le_bytes());
        record.extend_from_slice(blob);
        let at = Location {
            offset: self.end,
            len: u64::from(len),
        };
        if self
            .limit
            .is_some_and(|limit| self.end + record.len() as u64 > limit)
        {
            return Err(io::Error::from_raw_os_error(28));
        }
        let written = self
            .file
            .seek(SeekFrom::Start(self.end))
            .and_then(|_| self.file.write_all(&record));
        if let Err(e) = written {
            if let Err(cut) = self.file.set_len(self.end) {
                log::warn!(
                    "{}: cutting off a failed append: {cut}",
                    self.path.display()
                );
            }
            return Err(e);
        }
        self.end += record.len() as u64;
        self.unsynced += record.len() as u64;
        Ok(at)
    }

    /// The blob of the record at `at`, its checksum checked.
    pub fn read(&mut self, at: Location) -> io::Result<Vec<u8>> {
        let mut record = vec![0u8; (HEADER + at.len) as usize];
        self.file.seek(SeekFrom::Start(at.offset))?;
        self.file.read_exact(&mut record)?;
        let (header, blob) = record.split_at(HEADER as usize);
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        if u64::from(len) != at.len || crc32fast::hash(blob) != crc {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a commit group changed on disk",
            ));
        }
        record.drain(..HEADER as usize);
        Ok(record)
    }

    /// Bytes in the file.
    pub fn len(&self) -> u64 {
        self.end
    }

    /// Empties the file (every group delivered or expanded into rows).
    pub fn truncate(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.end = 0;
        self.unsynced = 0;
        Ok(())
    }

    /// Starts a rewrite of the file (without what was delivered or evicted): records go to
    /// a new file beside it, which [`GroupsFile::replace`] then renames over it, so that
    /// a crash leaves one or the other whole.
    pub fn rewriter(&self, options: &OpenOptions) -> io::Result<Rewriter> {
        let tmp = temp_path(&self.path);
        let file = options
            .clone()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        Ok(Rewriter {
            file: io::BufWriter::with_capacity(64 * 1024, file),
            tmp,
            end: 0,
        })
    }

    /// Ends a rewrite: syncs the new file and renames it over this one.
    pub fn replace(&mut self, rewriter: Rewriter) -> io::Result<()> {
        let file = rewriter.file.into_inner().map_err(|e| e.into_error())?;
        file.sync_data()?;
        std::fs::rename(&rewriter.tmp, &self.path)?;
        self.file = file;
        self.end = rewriter.end;
        self.unsynced = 0;
        Ok(())
    }

    /// Starts syncing what was appended, when at least `min` bytes were, on a thread of
    /// its own, unless the sync it started before is still running (it then waits for
    /// the next call): the caller (the engine's thread) goes on appending meanwhile. A
    /// sync of a few MiB took 5-30 ms (strace), as long as the call queue lasts in a burst
    /// of calls; the runtime idles between two drains of such a burst.
    pub fn sync_behind(&mut self, min: u64) {
        if self.unsynced == 0 || self.unsynced < min {
            return;
        }
        if self.syncing.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let file = match self.file.try_clone() {
            Ok(f) => f,
            Err(e) => {
                log::warn!("syncing the queue's commit groups: {e}");
                return;
            }
        };
        let spawned = std::thread::Builder::new()
            .name("trailhound-sync".into())
            .spawn(move || {
                if let Err(e) = file.sync_data() {
                    log::warn!("syncing the queue's commit groups: {e}");
                }
            });
        match spawned {
            Ok(h) => {
                self.syncing = Some(h);
                self.unsynced = 0;
            }
            // No thread to be had: synced here, as before.
            Err(_) => {
                if let Err(e) = self.sync(min) {
                    log::warn!("syncing the queue's commit groups: {e}");
                }
            }
        }
    }

    /// Syncs what was appended, when at least `min` bytes were.
    pub fn sync(&mut self, min: u64) -> io::Result<()> {
        if self.unsynced > 0 && self.unsynced >= min {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(())
    }
}

/// A rewrite under way: see [`GroupsFile::rewriter`].
#[derive(Debug)]
pub struct Rewriter {
    file: io::BufWriter<File>,
    tmp: PathBuf,
    end: u64,
}

impl Rewriter {
    /// Writes a record holding `blob`; returns where it will be.
    pub fn push(&mut self, blob: &[u8]) -> io::Result<Location> {
        let len = u32::try_from(blob.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "commit group over 4 GiB"))?;
        self.file.write_all(&len.to_le_bytes())?;
        self.file.write_all(&crc32fast::hash(blob).to_le_bytes())?;
        self.file.write_all(blob)?;
        let at = Location {
            offset: self.end,
            len: u64::from(len),
        };
        self.end += HEADER + u64::from(len);
        Ok(at)
    }
}

/// Where [`GroupsFile::rewriter`] writes the new file before renaming it.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".tmp");
    PathBuf::from(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(seq: i64, name: Option<&'static str>, ctx: Option<i64>) -> Fields<'static> {
        Fields {
            seq,
            created_ms: 1_700_000_000_000 + seq,
            context_id: ctx,
            message_id: "6f1c7b4e-1d2a-4c3b-9e8f-0a1b2c3d4e5f",
            kind: "track",
            name,
            body: r#"{"type":"track","event":"Sóng \"Played\"","properties":{}}"#,
        }
    }

    /// A blob of `evs`, encoded in order.
    fn blob_from(evs: &[Fields<'_>]) -> Vec<u8> {
        let mut blob = start(0);
        for &e in evs {
            encode(&mut blob, e).unwrap();
        }
        blob
    }

    #[test]
    fn round_trips_every_field() {
        let evs = [
            fields(7, Some("Song Played"), Some(3)),
            fields(8, None, None),
            fields(9, Some(""), Some(0)),
        ];
        let blob = blob_from(&evs);
        let back = decode(&blob).unwrap();
        assert_eq!(back.len(), 3);
        for (b, e) in back.iter().zip(evs) {
            assert_eq!(b.seq, e.seq);
            assert_eq!(b.created_ms, e.created_ms);
            assert_eq!(b.context_id, e.context_id);
            assert_eq!(b.message_id, e.message_id);
            assert_eq!(b.kind, e.kind);
            assert_eq!(b.name.as_deref(), e.name);
            assert_eq!(b.body, e.body);
        }
    }

    #[test]
    fn damage_is_refused_not_misread() {
        let mut blob = start(0);
        encode(&mut blob, fields(1, Some("a"), None)).unwrap();
        encode(&mut blob, fields(2, Some("b"), None)).unwrap();
        assert!(decode(&[]).is_err());
        assert!(decode(&start(0)).is_err(), "a group has events");
        let mut other = blob.clone();
        other[0] = 2;
        assert!(decode(&other).is_err(), "another format");
        // Every truncation is refused (none happens to decode to fewer events).
        for cut in 1..blob.len() {
            let one_event = {
                let mut b = start(0);
                encode(&mut b, fields(1, Some("a"), None)).unwrap();
                b.len()
            };
            if cut != one_event {
                assert!(decode(&blob[..cut]).is_err(), "cut at {cut}");
            }
        }
        // A length running past the end.
        let mut long = blob.clone();
        long[25..29].copy_from_slice(&u32::MAX.wrapping_sub(1).to_le_bytes());
        assert!(decode(&long).is_err());
        // Invalid UTF-8 in a text.
        let mut bad = start(0);
        encode(&mut bad, fields(1, Some("ab"), None)).unwrap();
        let at = bad.windows(2).position(|w| w == b"ab").unwrap();
        bad[at] = 0xff;
        assert!(decode(&bad).is_err());
        // Seqs must increase.
        let mut backwards = start(0);
        encode(&mut backwards, fields(5, None, None)).unwrap();
        encode(&mut backwards, fields(5, None, None)).unwrap();
        assert!(decode(&backwards).is_err());
    }

    /// `decode_where` gives the events it keeps, as `decode` does, and still refuses a
    /// blob whose skipped events are damaged.
    #[test]
    fn decode_where_keeps_a_range_and_checks_the_rest() {
        let blob = blob_from(&[
            fields(3, Some("a"), Some(1)),
            fields(4, None, None),
            fields(5, Some("c"), Some(2)),
            fields(6, Some("d"), None),
        ]);
        let all = decode(&blob).unwrap();
        let kept = decode_where(&blob, |seq| (4..=5).contains(&seq)).unwrap();
        assert_eq!(kept, all[1..3]);
        assert!(decode_where(&blob, |_| false).unwrap().is_empty());
        // A cut in an event that is skipped, and seqs going back after the kept ones.
        assert!(decode_where(&blob[..blob.len() - 1], |seq| seq == 3).is_err());
        let mut backwards = blob.clone();
        encode(&mut backwards, fields(2, None, None)).unwrap();
        assert!(decode_where(&backwards, |seq| seq == 3).is_err());
        assert!(
            decode_where(&start(0), |_| true).is_err(),
            "a group has events"
        );
    }

    /// `sync_behind` starts one sync once `min` bytes were appended, and none below it.
    #[test]
    fn sync_behind_syncs_on_a_thread_past_min() {
        let dir = tempfile::tempdir().unwrap();
        let (mut file, _) = open_file(&dir.path().join("q-groups"));
        let blob = blob_of(1..=3);
        file.append(&blob).unwrap();
        file.sync_behind(u64::MAX);
        assert!(file.syncing.is_none());
        assert!(file.unsynced > 0);
        file.sync_behind(1);
        let sync = file.syncing.take().expect("a sync started");
        assert_eq!(sync.thread().name(), Some("trailhound-sync"));
        sync.join().unwrap();
        assert_eq!(file.unsynced, 0);
        // Nothing appended since: nothing to sync.
        file.sync_behind(1);
        assert!(file.syncing.is_none());
    }

    fn pending(groups: &[(i64, &[(i64, u64)])]) -> Pending {
        let mut p = Pending::default();
        for (first, evs) in groups {
            p.push(
                Location {
                    offset: *first as u64,
                    len: 1,
                },
                *first,
                evs.to_vec(),
            );
        }
        p
    }

    #[test]
    fn prefix_is_exactly_the_first_queued_events() {
        let p = pending(&[(1, &[(10, 5), (11, 6), (12, 7)]), (4, &[(13, 8), (14, 9)])]);
        assert_eq!(p.live(), 5);
        assert_eq!(p.prefix(&[1]), Some((1, 5)));
        assert_eq!(p.prefix(&[1, 2, 3, 4]), Some((4, 26)));
        assert_eq!(p.prefix(&[1, 2, 3, 4, 5]), Some((5, 35)));
        assert_eq!(p.prefix(&[2]), None, "not from the front");
        assert_eq!(p.prefix(&[1, 3]), None, "a gap");
        assert_eq!(p.prefix(&[1, 2, 3, 4, 5, 6]), None, "beyond the groups");
        assert_eq!(p.prefix(&[]), Some((0, 0)));
    }

    #[test]
    fn delivering_trims_and_drops_groups() {
        let mut p = pending(&[(1, &[(30, 1), (10, 1), (20, 1)]), (4, &[(5, 1), (40, 1)])]);
        assert_eq!(p.oldest_after(0), Some(5));
        assert_eq!(p.first_queued_after(0), Some((1, 30)));
        // Where a delete is moving the watermark, before it is applied.
        assert_eq!(p.first_queued_after(3), Some((4, 5)));
        assert_eq!(p.oldest_after(4), Some(40));
        assert_eq!(p.first_queued_after(5), None);
        p.deliver_through(2);
        assert_eq!(p.live(), 3);
        assert_eq!(p.first_queued_after(2), Some((3, 20)));
        assert_eq!(
            p.first_queued_after(-1),
            Some((3, 20)),
            "delivered ones skipped"
        );
        assert_eq!(p.prefix(&[3, 4]), Some((2, 2)));
        assert_eq!(p.live_bytes(), 3);
        assert_eq!(
            p.newest_first().collect::<Vec<_>>(),
            vec![(5, 40), (4, 5), (3, 20)]
        );
        assert_eq!(p.prefix(&[1]), None, "delivered already");
        p.deliver_through(2); // again: nothing changes
        assert_eq!(p.live(), 3);
        p.deliver_through(4);
        assert_eq!(p.live(), 1);
        assert_eq!(p.last_seq(), Some(5));
        assert_eq!(p.oldest_after(4), Some(40));
        p.deliver_through(100);
        assert!(p.is_empty());
        assert_eq!(p.live(), 0);
        assert_eq!(p.first_queued_after(100), None);
        assert_eq!(p.oldest_after(100), None);
        // A watermark below every group changes nothing.
        let mut q = pending(&[(10, &[(1, 1)])]);
        q.deliver_through(-1);
        q.deliver_through(9);
        assert_eq!(q.live(), 1);
    }

    fn blob_of(seqs: std::ops::RangeInclusive<i64>) -> Vec<u8> {
        blob_from(
            &seqs
                .map(|seq| fields(seq, Some("x"), None))
                .collect::<Vec<_>>(),
        )
    }

    fn records_of(path: &Path) -> Vec<(Location, Vec<i64>)> {
        let mut out = Vec::new();
        read_records(path, |at, blob| {
            out.push((at, decode(blob).unwrap().iter().map(|e| e.seq).collect()));
            Ok(())
        })
        .unwrap();
        out
    }

    fn open_file(path: &Path) -> (GroupsFile, Vec<Location>) {
        let mut seen = Vec::new();
        let file = GroupsFile::open(path, &OpenOptions::new(), |at, _| {
            seen.push(at);
            Ok(())
        })
        .unwrap();
        (file, seen)
    }

    /// Records append, read back by location and by a scan, and survive reopening.
    #[test]
    fn file_appends_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q-groups");
        let (mut file, seen) = open_file(&path);
        assert!(seen.is_empty());
        let a = file.append(&blob_of(1..=3)).unwrap();
        let b = file.append(&blob_of(4..=4)).unwrap();
        assert_eq!(a.offset, 0);
        assert_eq!(b.offset, HEADER + a.len);
        assert_eq!(file.read(b).unwrap(), blob_of(4..=4));
        assert_eq!(file.read(a).unwrap(), blob_of(1..=3));
        drop(file);
        let (file, seen) = open_file(&path);
        assert_eq!(seen, vec![a, b]);
        assert_eq!(file.len(), std::fs::metadata(&path).unwrap().len());
        assert_eq!(
            records_of(&path)
                .into_iter()
                .map(|r| r.1)
                .collect::<Vec<_>>(),
            vec![vec![1, 2, 3], vec![4]]
        );
    }

    /// A record cut short (a crash mid-append) or damaged ends the file: a reader stops
    /// there, and opening for writing cuts it off, so that the next append follows the
    /// last whole record and is read back.
    #[test]
    fn torn_or_damaged_tail_is_cut_off() {
        for damage in ["cut", "flip", "length"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("q-groups");
            let (mut file, _) = open_file(&path);
            let a = file.append(&blob_of(1..=2)).unwrap();
            let b = file.append(&blob_of(3..=5)).unwrap();
            drop(file);
            let mut bytes = std::fs::read(&path).unwrap();
            match damage {
                "cut" => bytes.truncate((b.offset + HEADER + b.len / 2) as usize),
                "flip" => bytes[(b.offset + HEADER + 3) as usize] ^= 0x40,
                _ => bytes[b.offset as usize..b.offset as usize + 4]
                    .copy_from_slice(&u32::MAX.to_le_bytes()),
            }
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(records_of(&path).len(), 1, "{damage}: the reader stops");
            assert_eq!(
                std::fs::read(&path).unwrap(),
                bytes,
                "{damage}: reading writes nothing"
            );
            let (mut file, seen) = open_file(&path);
            assert_eq!(seen, vec![a], "{damage}");
            assert_eq!(
                std::fs::metadata(&path).unwrap().len(),
                b.offset,
                "{damage}"
            );
            let c = file.append(&blob_of(6..=6)).unwrap();
            assert_eq!(c.offset, b.offset, "{damage}");
            drop(file);
            assert_eq!(
                records_of(&path)
                    .into_iter()
                    .map(|r| r.1)
                    .collect::<Vec<_>>(),
                vec![vec![1, 2], vec![6]],
                "{damage}"
            );
        }
    }

    /// A record that changed on disk after it was appended is refused when read.
    #[test]
    fn read_checks_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q-groups");
        let (mut file, _) = open_file(&path);
        let a = file.append(&blob_of(1..=2)).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[(HEADER + 5) as usize] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = file.read(a).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let wrong = Location {
            offset: a.offset,
            len: a.len - 1,
        };
        assert!(file.read(wrong).is_err());
    }

    /// A rewrite replaces the file whole (no temporary left), and appends follow it.
    #[test]
    fn rewrite_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q-groups");
        let (mut file, _) = open_file(&path);
        for i in 0..5 {
            file.append(&blob_of(i * 10..=i * 10 + 3)).unwrap();
        }
        let mut rewriter = file.rewriter(&OpenOptions::new()).unwrap();
        let moved = [
            rewriter.push(&blob_of(30..=33)).unwrap(),
            rewriter.push(&blob_of(41..=42)).unwrap(),
        ];
        assert!(temp_path(&path).exists());
        file.replace(rewriter).unwrap();
        assert_eq!(moved[0].offset, 0);
        assert_eq!(file.read(moved[1]).unwrap(), blob_of(41..=42));
        file.append(&blob_of(50..=50)).unwrap();
        drop(file);
        assert!(!temp_path(&path).exists());
        assert_eq!(
            records_of(&path)
                .into_iter()
                .map(|r| r.1)
                .collect::<Vec<_>>(),
            vec![vec![30, 31, 32, 33], vec![41, 42], vec![50]]
        );
        let (mut file, _) = open_file(&path);
        file.truncate().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn compact_points_groups_at_their_new_records() {
        let at = |offset| Location { offset, len: 1 };
        let mut p = Pending::default();
        p.push(at(0), 1, vec![(1, 1), (2, 1), (3, 1)]);
        p.push(at(10), 4, vec![(4, 1), (5, 1)]);
        p.push(at(20), 6, vec![(6, 1)]);
        p.deliver_through(2);
        p.remove_range(3, 4);
        // Left: seq 3 (first group, after the delivered 1 and 2), 5, and 6.
        assert_eq!(
            p.pieces_after(2).collect::<Vec<_>>(),
            vec![(at(0), 3, 3), (at(10), 5, 5), (at(20), 6, 6)]
        );
        p.compact(&[at(100), at(200), at(300)]);
        assert_eq!(
            p.pieces_after(-1).collect::<Vec<_>>(),
            vec![(at(100), 3, 3), (at(200), 5, 5), (at(300), 6, 6)]
        );
        assert_eq!((p.live(), p.live_bytes()), (3, 3));
    }
}
