"""Stored responses (`store: true`) in SQLite, so `previous_response_id` can continue a
conversation and GET / DELETE /v1/responses/{id} work, across restarts and gunicorn workers.

Each row keeps the response object and the conversation it ended (every input item, earlier
turns included, then its output items): continuing it needs no walk up a chain of rows. Rows
belong to the client id security.py gave the request; another client's id reads as unknown.
Rows older than RESPONSES_TTL_S are invisible and deleted; beyond RESPONSES_MAX_STORED the oldest
go first.
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
    conversation TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_created ON responses (created_at);
"""


@dataclass(frozen=True)
class Stored:
    response: dict[str, Any]
    conversation: list[dict[str, Any]]


class ResponseStore:
    def __init__(self, path: Path, *, ttl_s: float, max_stored: int):
        self.path = path
        self.ttl_s = ttl_s
        self.max_stored = max_stored
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
                        db.executescript(_SCHEMA)
                    self._ready = True
        return sqlite3.connect(self.path, timeout=10)

    def put(self, owner: str, response: dict[str, Any], conversation: list[dict[str, Any]]
            ) -> None:
        now = time.time()
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
                (response["id"], owner, now, json.dumps(response, ensure_ascii=False),
                 json.dumps(conversation, ensure_ascii=False)),
            )
            db.execute("DELETE FROM responses WHERE created_at < ?", (now - self.ttl_s,))
            db.execute(
                "DELETE FROM responses WHERE id IN (SELECT id FROM responses "
                "ORDER BY created_at DESC LIMIT -1 OFFSET ?)", (self.max_stored,),
            )

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
