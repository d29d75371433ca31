"""Stored responses (`store: true`) in SQLite, so `previous_response_id` can continue a
conversation and GET / DELETE /v1/responses/{id} work, across restarts and gunicorn workers.

Each row keeps the response object and the conversation it ended (every input item, earlier
turns included, then its output items): continuing it needs no walk up a chain of rows. Rows
belong to the client id security.py gave the request; another client's id reads as unknown.
Rows older than RESPONSES_TTL_S are invisible and deleted. A client's rows beyond
RESPONSES_MAX_BYTES_PER_CLIENT go, its oldest first; beyond RESPONSES_MAX_STORED rows in all,
the oldest rows of the client holding the most go first, so no client's rows evict another's
while it holds less. (The conversation holds only what is prompted, serving.py's `prompted`,
which the model's context bounds, so row k does not hold k copies of anything.)
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, current_app

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    created_at REAL NOT NULL,
    response TEXT NOT NULL,
    conversation TEXT NOT NULL,
    bytes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS responses_created ON responses (created_at);
CREATE INDEX IF NOT EXISTS responses_owner ON responses (owner, created_at);
"""

# A client's rows past the cap, newest kept: a running sum from the newest row back.
_OVER_OWNER_CAP = """
DELETE FROM responses WHERE id IN (
    SELECT id FROM (
        SELECT id, SUM(bytes) OVER (ORDER BY created_at DESC, rowid DESC) AS held
        FROM responses WHERE owner = ?
    ) WHERE held > ? AND id != ?
)
"""
# Past RESPONSES_MAX_STORED: the oldest rows of the client with the most rows.
_OVER_TOTAL = """
DELETE FROM responses WHERE id IN (
    SELECT id FROM responses WHERE owner = (
        SELECT owner FROM responses GROUP BY owner ORDER BY COUNT(*) DESC LIMIT 1
    ) ORDER BY created_at LIMIT ?
)
"""


@dataclass(frozen=True)
class Stored:
    response: dict[str, Any]
    conversation: list[dict[str, Any]]


class ResponseStore:
    def __init__(self, path: Path, *, ttl_s: float, max_stored: int,
                 max_bytes_per_owner: int = 64 * 1024 * 1024):
        self.path = path
        self.ttl_s = ttl_s
        self.max_stored = max_stored
        self.max_bytes_per_owner = max_bytes_per_owner
        self._ready = False
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        # A connection per call: sqlite3 connections are bound to their thread, and requests
        # run on many. WAL lets readers and the one writer of each worker overlap.
        if not self._ready:
            with self._lock:
                if not self._ready:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    with closing(sqlite3.connect(self.path, timeout=10)) as db:
                        db.execute("PRAGMA journal_mode=WAL")
                        columns = {r[1] for r in db.execute("PRAGMA table_info(responses)")}
                        if columns and "bytes" not in columns:  # a file from before the cap
                            db.execute("ALTER TABLE responses ADD COLUMN bytes INTEGER NOT NULL "
                                       "DEFAULT 0")
                        db.executescript(_SCHEMA)
                    self._ready = True
        return sqlite3.connect(self.path, timeout=10)

    def put(self, owner: str, response: dict[str, Any], conversation: list[dict[str, Any]]
            ) -> None:
        now = time.time()
        row = json.dumps(response, ensure_ascii=False)
        talk = json.dumps(conversation, ensure_ascii=False)
        size = len(row.encode()) + len(talk.encode())
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT OR REPLACE INTO responses (id, owner, created_at, response, conversation,"
                " bytes) VALUES (?, ?, ?, ?, ?, ?)",
                (response["id"], owner, now, row, talk, size),
            )
            db.execute("DELETE FROM responses WHERE created_at < ?", (now - self.ttl_s,))
            db.execute(_OVER_OWNER_CAP, (owner, self.max_bytes_per_owner, response["id"]))
            (count,) = db.execute("SELECT COUNT(*) FROM responses").fetchone()
            if count > self.max_stored:
                db.execute(_OVER_TOTAL, (count - self.max_stored,))

    def held(self, owner: str) -> tuple[int, int]:
        """(rows, bytes) `owner` holds, for tests and operators."""
        with closing(self._connect()) as db:
            rows, size = db.execute("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM responses "
                                    "WHERE owner = ?", (owner,)).fetchone()
        return int(rows), int(size)

    def get(self, owner: str, response_id: str) -> Stored | None:
        with closing(self._connect()) as db:
            row = db.execute(
                "SELECT response, conversation FROM responses "
                "WHERE id = ? AND owner = ? AND created_at >= ?",
                (response_id, owner, time.time() - self.ttl_s),
            ).fetchone()
        if row is None:
            return None
        return Stored(json.loads(row[0]), json.loads(row[1]))

    def delete(self, owner: str, response_id: str) -> bool:
        with closing(self._connect()) as db, db:
            cur = db.execute("DELETE FROM responses WHERE id = ? AND owner = ? AND created_at >= ?",
                             (response_id, owner, time.time() - self.ttl_s))
            return cur.rowcount > 0


_EXTENSION = "slm_responses"


def set_responses_store(app: Flask, store: ResponseStore) -> None:
    app.extensions[_EXTENSION] = store


def responses_store(app: Flask | None = None) -> ResponseStore:
    """Stored /v1/responses (SQLite under DATA_DIR); the accessor lives with its owner."""
    return (app if app is not None else current_app).extensions[_EXTENSION]
