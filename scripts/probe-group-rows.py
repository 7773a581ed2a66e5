# Probe for issue 10's next step: what SQLite costs per event when a commit group of 256
# events is one row (a blob) instead of 256 rows, same file settings as the queue
# (WAL, synchronous=NORMAL, secure_delete=FAST), 100k events of the typical body.
# Python's per-statement overhead is in both figures (about 1 us per row in the per-row
# case, negligible per group). Not part of the test suite.
#
#   python3 scripts/probe-group-rows.py [page_size]     # 2048 (the queue's), 4096, ...
import os, sys, tempfile, time, uuid
import sqlite3
DIR = tempfile.mkdtemp()
PS=sys.argv[1] if len(sys.argv)>1 else "2048"
body=('{"type":"track","event":"Song Played","properties":{"title":"Eine kleine Nachtmusik","artist":"W. A. Mozart","seconds":215,"shuffle":true,"rating":4.5},"anonymousId":"'+str(uuid.uuid4())+'","messageId":"'+str(uuid.uuid4())+'","timestamp":"2026-12-02T08:00:00.000Z"}').encode()
def fresh(p):
    for s in ["","-wal","-shm"]:
        try: os.remove(p+s)
        except: pass
    c=sqlite3.connect(p, isolation_level=None)
    c.execute("PRAGMA page_size=%s" % PS); c.execute("PRAGMA journal_mode=WAL"); c.execute("PRAGMA synchronous=NORMAL"); c.execute("PRAGMA secure_delete=FAST")
    return c
N=100000; G=256
c=fresh(os.path.join(DIR, "rows.db"))
c.execute("CREATE TABLE events(seq INTEGER PRIMARY KEY, message_id TEXT NOT NULL, created_ms INTEGER NOT NULL, bytes INTEGER NOT NULL, json TEXT NOT NULL, type TEXT, name TEXT, context_id INTEGER)")
c.execute("CREATE INDEX events_created_ms ON events(created_ms)")
rows=[(i, str(uuid.uuid4()), 1700000000000+i, len(body), body.decode(), "track", "Song Played", 1) for i in range(1,N+1)]
t=time.perf_counter()
for g in range(0,N,G):
    c.execute("BEGIN IMMEDIATE"); c.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)", rows[g:g+G]); c.execute("COMMIT")
print("per-row insert us/event %.2f"%((time.perf_counter()-t)*1e6/N))
c=fresh(os.path.join(DIR, "groups.db"))
c.execute("CREATE TABLE groups(first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, count INTEGER NOT NULL, bytes INTEGER NOT NULL, min_created_ms INTEGER NOT NULL, data BLOB NOT NULL)")
c.execute("CREATE INDEX groups_created ON groups(min_created_ms)")
# encoding cost excluded (would be a memcpy per event in Rust); pre-build blobs
blobs=[]
for g in range(0,N,G):
    parts=[]
    for i in range(g, min(g+G,N)):
        mid=rows[i][1].encode()
        parts.append(len(body).to_bytes(4,'little')+ (rows[i][2]).to_bytes(8,'little') + mid + body)
    blobs.append((g+1, min(g+G,N), min(G,N-g), sum(len(p) for p in parts), 1700000000000+g, b"".join(parts)))
t=time.perf_counter()
for b in blobs:
    c.execute("BEGIN IMMEDIATE"); c.execute("INSERT INTO groups VALUES (?,?,?,?,?,?)", b); c.execute("COMMIT")
print("group insert us/event %.2f"%((time.perf_counter()-t)*1e6/N))
import shutil
shutil.rmtree(DIR)
