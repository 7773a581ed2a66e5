#!/usr/bin/env python3
"""Writes the hand-made seeds of fuzz/corpus/ (real inputs in each target's layout).

Run from the repository root: `python3 fuzz/seeds/make_seeds.py [path/to/trailhound]`.
With the `trailhound` binary, the sqlite_store seeds are real queue databases made by
`trailhound queue import` (and a WAL written by SQLite itself); without it they are skipped.
The corpus dirs also hold inputs the fuzzer found (cmin-reduced); this script only adds.
"""
import gzip
import hashlib
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def put(target, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def event(kind="track", mid="m-1", ts="2026-11-26T12:03:04.123Z", **extra):
    ev = {
        "type": kind,
        "messageId": mid,
        "timestamp": ts,
        "anonymousId": "00000000-0000-4000-8000-000000000007",
        "context": {"library": {"name": "trailhound", "version": "0.1.0"}},
    }
    ev.update(extra)
    return ev


EVENTS = [
    event(event="Song Played", properties={"title": "Nachtmusik", "seconds": 215, "ratio": 0.5}),
    event("identify", "m-2", userId="u1", traits={"plan": "pro", "tags": ["a", "b"]}),
    event("screen", "m-3", name="Player", properties={}),
    event("page", "m-4", name="Home", properties={"url": "https://example.com/?q=1"}),
    event("group", "m-5", groupId="g1", traits={"seats": 12}),
    event("alias", "m-6", userId="u2", previousId="u1"),
    event(event="Nested", properties={"a": {"b": {"c": [1, [2, [3]]]}}}, ts="1970-01-01T00:00:00.000Z"),
    event(event="Unicode ♪", properties={"s": "\u00e9\u0000\ud7ff", "big": 18446744073709551615}),
]


def retry_after():
    for mode, now, cap, value in [
        (0, 1445412420000, 0, "120"),
        (0, 1445412420000, 0, "Wed, 21 Oct 2015 07:28:00 GMT"),
        (0, 1445412420000, 0, "Tue, 20 Oct 2015 07:28:00 GMT"),
        (1, 0, 0, "Wed, 21 Oct 2015 07:28:00 GMT"),
        (2, 0, 0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (3, 0, 0, "0"),
        (0, 0, 0, "-1"),
        (0, 0, 0, "99999999999999999999"),
        (4, 0, 2**64 - 1, "18446744073709551615"),
        (4, 0, 0, "1"),
        (0, 0, 0, " 30 "),
        (0, 0, 0, "soon"),
    ]:
        put("retry_after", bytes([mode]) + struct.pack("<qQ", now, cap) + value.encode())


def endpoint():
    for e in [
        "https://api.example.com",
        "https://api.example.com/prefix/",
        "http://127.0.0.1:8080",
        "http://localhost:1/x",
        "http://[::1]:99",
        "http://example.com",
        "http://localhost@evil.example",
        "http://127.0.0.1.evil.example",
        "https://user:pw@example.com",
        "https://example.com/?q",
        "https://example.com/#f",
        "ftp://localhost",
        "HTTPS://EXAMPLE.COM:443",
        "http://0x7f.1/",
        "http://[::ffff:127.0.0.1]/",
        "https://",
    ]:
        put("endpoint", e.encode())


def import_line():
    for ev in EVENTS:
        put("import_line", json.dumps(ev, separators=(",", ":")).encode())
    put("import_line", b'{"type":"track","messageId":"","timestamp":"x"}')
    put("import_line", b'{"type":"track","messageId":"m","event":"e","timestamp":"+262143-12-31T23:59:59Z","context":{}}')


def collector():
    def header(enc, path, flags, received_ms):
        return bytes([enc, path, flags]) + struct.pack("<q", received_ms)

    now = 1_795_000_000_000
    batch = {"batch": EVENTS, "sentAt": "2026-11-26T12:03:05.000Z", "writeKey": "k"}
    body = json.dumps(batch).encode()
    put("collector", header(0, 0x80, 1, now) + body)
    put("collector", header(1, 0x80, 0, now) + body)
    put("collector", header(0, 0, 0, now) + json.dumps(EVENTS[0]).encode())
    put("collector", header(2, 0x80, 0, now) + gzip.compress(body))
    skew = {"batch": [dict(EVENTS[0], originalTimestamp="0001-01-01T00:00:00Z")],
            "sentAt": "9999-12-31T23:59:59Z"}
    put("collector", header(0, 0x80, 0, now) + json.dumps(skew).encode())
    put("collector", header(0, 0x80, 0, I64_MIN) + b'{"batch":[{}],"sentAt":1}')
    put("collector", header(4, 0x80, 0, I64_MAX) + b"[]")


def sqlite_store(cli):
    if not cli:
        print("sqlite_store: no trailhound binary given, skipped")
        return
    tmp = tempfile.mkdtemp()
    try:
        lines = os.path.join(tmp, "events.ndjson")
        with open(lines, "w") as f:
            for ev in EVENTS:
                f.write(json.dumps(ev) + "\n")
        data = os.path.join(tmp, "data")
        subprocess.run([cli, "queue", "import", lines, "--into", data], check=True,
                       stdout=subprocess.DEVNULL)
        db = os.path.join(data, "trailhound.db")
        ops = bytes(range(32))
        with open(db, "rb") as f:
            content = f.read()
        put("sqlite_store", ops + bytes([0]) + struct.pack("<I", 0) + content)
        # The same database with a WAL that SQLite wrote: copied while the writer is open.
        wal_dir = os.path.join(tmp, "wal")
        os.makedirs(wal_dir)
        copy = os.path.join(wal_dir, "trailhound.db")
        shutil.copy(db, copy)
        conn = sqlite3.connect(copy)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("DELETE FROM events WHERE seq % 2 = 0")
        conn.commit()
        with open(copy, "rb") as f:
            main = f.read()
        with open(copy + "-wal", "rb") as f:
            wal = f.read()
        conn.close()
        put("sqlite_store", ops[::-1] + bytes([1]) + struct.pack("<I", len(wal)) + main + wal)
        # Not a database at all, and an empty file.
        put("sqlite_store", bytes(32) + bytes([0]) + struct.pack("<I", 0) + b"not a database")
        put("sqlite_store", bytes(32) + bytes([0]) + struct.pack("<I", 0))
    finally:
        shutil.rmtree(tmp)


def plan():
    """A plan, `---`, then events: the shared tables' plans with a few of their events
    each, the music app's plan with one event, and the plans lint refuses."""
    tables = [os.path.join(ROOT, "tests", "plan", f) for f in ("cases.json", "cases-unplanned.json")]
    for path in tables:
        with open(path) as f:
            table = json.load(f)
        head = json.dumps(table["plan"], separators=(",", ":"))
        cases = table["cases"]
        for i in range(0, len(cases), 8):
            lines = [json.dumps(c["event"], separators=(",", ":")) for c in cases[i : i + 8]]
            put("plan", (head + "\n---\n" + "\n".join(lines)).encode())
    with open(os.path.join(ROOT, "examples", "music", "plan.json")) as f:
        music = json.dumps(json.load(f), separators=(",", ":"))
    song = {"type": "track", "event": "Song Played", "properties": {"song_id": "s1", "position_ms": 0}}
    put("plan", (music + "\n---\n" + json.dumps(song)).encode())
    with open(os.path.join(ROOT, "tests", "plan", "lint-cases.json")) as f:
        for c in json.load(f)["cases"]:
            put("plan", json.dumps(c["plan"], separators=(",", ":")).encode())


if __name__ == "__main__":
    retry_after()
    endpoint()
    import_line()
    collector()
    plan()
    sqlite_store(sys.argv[1] if len(sys.argv) > 1 else None)
