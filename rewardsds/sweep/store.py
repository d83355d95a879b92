"""The sweep's SQLite store (stdlib sqlite3, WAL): one row per run, one row per (run, metric).

A run is keyed by ``(prompt, method, seed, config_hash)``, where ``config_hash`` is the SHA-256 of the
canonical config JSON (`config_hash`). Life cycle of a row::

    pending --claim--> running --finish--> done
                          |  \\--fail (attempts <= retries)--> pending
                          |   \\-fail (attempts >  retries)--> failed
                          \\--owner died / lease expired (recover)--> pending

A row is ``done`` only after the run's ``summary.json`` exists (the runner checks before `finish`)
and the UPDATE is committed, so a crash between the two leaves a row that is re-checked, never a
half-written "done". Only the sweep driver writes (workers return results to it), and every
multi-statement change runs in a ``BEGIN IMMEDIATE`` transaction, so two drivers on the same store
never claim the same row.

A third table, ``equal_time``, created when first needed, keeps the seconds-per-image ratio that a
sweep's --equal-time-of measured (`Store.keep_equal_time`), so that reruns plan the same control runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

STATUSES = ("pending", "running", "done", "failed")
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id           INTEGER PRIMARY KEY,
    prompt       TEXT NOT NULL,
    method       TEXT NOT NULL,
    seed         INTEGER NOT NULL,
    config_hash  TEXT NOT NULL,
    config       TEXT NOT NULL,              -- the canonical config JSON that was hashed
    run_dir      TEXT NOT NULL,              -- relative to the sweep folder
    status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','running','done','failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    owner        TEXT,                       -- host:pid:token of the driver holding the lease
    lease_until  REAL,
    seconds      REAL,
    prior_calls  INTEGER,
    created_at   REAL NOT NULL,
    started_at   REAL,
    finished_at  REAL,
    UNIQUE (prompt, method, seed, config_hash)
);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status);
CREATE TABLE IF NOT EXISTS metrics (
    run_id  INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    metric  TEXT NOT NULL,
    value   REAL NOT NULL,
    PRIMARY KEY (run_id, metric)
);
"""


def config_hash(config: dict) -> str:
    """SHA-256 of the config as canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def variant_key(config: dict) -> str:
    """What identifies a run's variant: the hash of its config without the sweep's axes (prompt, seed).
    Controls name the variant they control for by this key."""
    return config_hash({k: v for k, v in config.items() if k not in ("prompt", "seed")})[:16]


def new_owner() -> str:
    """A lease-holder id: host and pid (to tell whether it is still alive) plus a per-call token."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_dead(owner: str | None, me: str) -> bool:
    """True when the owner is certainly gone: a process of this host that no longer exists, or an
    earlier driver of this very process (its token differs from ours). Other hosts: only the lease says."""
    if not owner or owner == me:
        return False
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    my_host, my_pid, _ = me.split(":", 2)
    if host != my_host or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if str(pid) == my_pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by someone else
        return False
    return False


@dataclass(frozen=True)
class RunSpec:
    """What to run: the key fields, the canonical config and the run folder (relative)."""

    prompt: str
    method: str
    seed: int
    config: dict
    run_dir: str

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)


@dataclass(frozen=True)
class Run:
    id: int
    prompt: str
    method: str
    seed: int
    config_hash: str
    config: dict
    run_dir: str
    status: str
    attempts: int
    error: str | None
    seconds: float | None
    prior_calls: int | None


class Store:
    """The store at ``path`` (created if missing). Use as a context manager or call `close`."""

    def __init__(self, path: str | os.PathLike, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit; transactions are explicit (BEGIN IMMEDIATE) where needed
        self.db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: never corrupt; may lose the last commit
        self.db.execute("PRAGMA foreign_keys=ON")
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise ValueError(f"{self.path} has store schema {version}; this version reads {SCHEMA_VERSION}")
        if version == 0:  # idempotent (IF NOT EXISTS), so two drivers creating it at once is fine
            self.db.executescript(_SCHEMA)
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _tx(self):
        return _Transaction(self.db)

    # --- planning ----------------------------------------------------------------------------------

    def add_runs(self, specs: list[RunSpec]) -> list[int]:
        """Insert the runs that are new (existing rows keep their state); their ids, in order."""
        now, ids = time.time(), []
        with self._tx():
            for s in specs:
                h = s.config_hash
                self.db.execute(
                    "INSERT OR IGNORE INTO runs (prompt, method, seed, config_hash, config, run_dir, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (s.prompt, s.method, s.seed, h, json.dumps(s.config, sort_keys=True, default=str), s.run_dir,
                     now))
                ids.append(self.db.execute(
                    "SELECT id FROM runs WHERE prompt=? AND method=? AND seed=? AND config_hash=?",
                    (s.prompt, s.method, s.seed, h)).fetchone()[0])
        return ids

    def recover(self, me: str, now: float | None = None) -> int:
        """Reset to pending every running row whose driver is dead or whose lease has expired."""
        now = time.time() if now is None else now
        with self._tx():
            rows = self.db.execute("SELECT id, owner, lease_until FROM runs WHERE status='running'").fetchall()
            stale = [r["id"] for r in rows
                     if _owner_dead(r["owner"], me) or (r["lease_until"] is not None and r["lease_until"] < now)]
            self.db.executemany("UPDATE runs SET status='pending', owner=NULL, lease_until=NULL WHERE id=?",
                                [(i,) for i in stale])
        return len(stale)

    def rearm(self, ids: list[int]) -> None:
        """A new sweep invocation gives its unfinished runs a fresh retry budget (failed -> pending)."""
        with self._tx():
            self.db.executemany("UPDATE runs SET status='pending', attempts=0 WHERE id=? AND status IN "
                                "('pending','failed')", [(i,) for i in ids])

    def reopen(self, run_id: int) -> None:
        """A done run whose folder lost its summary.json is not done any more."""
        with self._tx():
            self.db.execute("UPDATE runs SET status='pending', attempts=0 WHERE id=?", (run_id,))
            self.db.execute("DELETE FROM metrics WHERE run_id=?", (run_id,))

    # --- execution ---------------------------------------------------------------------------------

    def claim(self, ids: list[int], owner: str, lease_s: float) -> Run | None:
        """Atomically move one pending run of ``ids`` (lowest id first) to running for ``owner``."""
        if not ids:
            return None
        now = time.time()
        with self._tx():
            row = None
            for chunk in _chunks(ids, 500):  # SQLite caps the number of bound parameters
                marks = ",".join("?" * len(chunk))
                row = self.db.execute(f"SELECT id FROM runs WHERE status='pending' AND id IN ({marks}) "
                                      "ORDER BY id LIMIT 1", chunk).fetchone()
                if row is not None:
                    break
            if row is None:
                return None
            self.db.execute("UPDATE runs SET status='running', owner=?, lease_until=?, attempts=attempts+1, "
                            "started_at=? WHERE id=?", (owner, now + lease_s, now, row["id"]))
        return self.get(row["id"])

    def renew(self, owner: str, lease_s: float) -> None:
        """Push the lease of every run this owner holds (the driver's heartbeat)."""
        self.db.execute("UPDATE runs SET lease_until=? WHERE owner=? AND status='running'",
                        (time.time() + lease_s, owner))

    def finish(self, run_id: int, seconds: float | None, prior_calls: int | None) -> None:
        self.db.execute("UPDATE runs SET status='done', error=NULL, seconds=?, prior_calls=?, finished_at=?, "
                        "owner=NULL, lease_until=NULL WHERE id=?", (seconds, prior_calls, time.time(), run_id))

    def fail(self, run_id: int, error: str, retries: int, final: bool = False) -> str:
        """Record a failed attempt; pending again while attempts <= retries (unless final). New status."""
        with self._tx():
            attempts = self.db.execute("SELECT attempts FROM runs WHERE id=?", (run_id,)).fetchone()[0]
            status = "failed" if final or attempts > retries else "pending"
            self.db.execute("UPDATE runs SET status=?, error=?, finished_at=?, owner=NULL, lease_until=NULL "
                            "WHERE id=?", (status, error, time.time(), run_id))
        return status

    def release(self, run_id: int, refund: bool = True) -> None:
        """Back to pending without blaming the run (interrupted, or it shared a crashed worker pool)."""
        self.db.execute("UPDATE runs SET status='pending', owner=NULL, lease_until=NULL, "
                        f"attempts=MAX(attempts-{int(refund)}, 0) WHERE id=? AND status='running'", (run_id,))

    # --- reading -----------------------------------------------------------------------------------

    def get(self, run_id: int) -> Run:
        return _run(self.db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone())

    def runs(self, status: str | None = None, ids: list[int] | None = None) -> list[Run]:
        rows = self.db.execute("SELECT * FROM runs" + (" WHERE status=?" if status else "") + " ORDER BY id",
                               (status,) if status else ()).fetchall()
        wanted = set(ids) if ids is not None else None
        return [_run(r) for r in rows if wanted is None or r["id"] in wanted]

    def counts(self, ids: list[int] | None = None) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for r in self.runs(ids=ids):
            out[r.status] += 1
        return out

    # --- metrics -----------------------------------------------------------------------------------

    def set_metrics(self, values: list[tuple[int, str, float]]) -> None:
        """Insert or replace (run_id, metric, value) rows in one transaction."""
        with self._tx():
            self.db.executemany("INSERT OR REPLACE INTO metrics (run_id, metric, value) VALUES (?, ?, ?)",
                                [(int(r), str(m), float(v)) for r, m, v in values])

    def metrics(self) -> dict[int, dict[str, float]]:
        out: dict[int, dict[str, float]] = {}
        for r in self.db.execute("SELECT run_id, metric, value FROM metrics ORDER BY run_id, metric"):
            out.setdefault(r["run_id"], {})[r["metric"]] = r["value"]
        return out


    # --- equal-time measurements -------------------------------------------------------------------

    _EQUAL_TIME = """CREATE TABLE IF NOT EXISTS equal_time (
        pair            TEXT PRIMARY KEY,   -- variant keys of the method and of its plain version
        ratio           REAL NOT NULL,      -- method seconds / plain seconds, per image
        method_seconds  REAL NOT NULL,
        plain_seconds   REAL NOT NULL,
        n               INTEGER NOT NULL,   -- (prompt, seed) pairs measured
        created_at      REAL NOT NULL)"""

    def equal_time(self, pair: str) -> dict | None:
        """The time measurement kept for ``pair``, or None (a store without the table has none)."""
        try:
            row = self.db.execute("SELECT * FROM equal_time WHERE pair=?", (pair,)).fetchone()
        except sqlite3.OperationalError:  # no such table: nothing measured yet
            return None
        return dict(row) if row is not None else None

    def keep_equal_time(self, pair: str, ratio: float, method_seconds: float, plain_seconds: float, n: int) -> dict:
        """Record a measurement unless one exists (a concurrent sweep's wins); the one kept."""
        with self._tx():
            self.db.execute(self._EQUAL_TIME)
            self.db.execute("INSERT OR IGNORE INTO equal_time (pair, ratio, method_seconds, plain_seconds, n, "
                            "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                            (pair, float(ratio), float(method_seconds), float(plain_seconds), int(n), time.time()))
        return self.equal_time(pair)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): takes the write lock up front, so a concurrent
    writer waits (busy timeout) instead of failing half-way through."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def _chunks(xs: list, n: int):
    for i in range(0, len(xs), n):
        yield xs[i:i + n]


def _run(row: sqlite3.Row) -> Run:
    return Run(id=row["id"], prompt=row["prompt"], method=row["method"], seed=row["seed"],
               config_hash=row["config_hash"], config=json.loads(row["config"]), run_dir=row["run_dir"],
               status=row["status"], attempts=row["attempts"], error=row["error"], seconds=row["seconds"],
               prior_calls=row["prior_calls"])
