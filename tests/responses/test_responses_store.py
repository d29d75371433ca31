"""Stored responses in SQLite: owners, retention by age and by count, across store objects."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from slm_api.api.responses.store import ResponseStore

pytestmark = pytest.mark.fast  # needs no model: `make test-fast`


def _resp(i: int) -> dict:
    return {"id": f"resp_{i}", "object": "response", "output": []}


def test_rows_belong_to_their_owner_and_survive_a_new_store(tmp_path: Path):
    path = tmp_path / "data" / "responses.sqlite3"
    store = ResponseStore(path, ttl_s=3600, max_stored=10)
    store.put("alice", _resp(1), [{"type": "message", "role": "user", "content": "hi"}])
    again = ResponseStore(path, ttl_s=3600, max_stored=10)  # another worker, or a restart
    stored = again.get("alice", "resp_1")
    assert stored is not None and stored.response == _resp(1)
    assert stored.conversation == [{"type": "message", "role": "user", "content": "hi"}]
    assert again.get("bob", "resp_1") is None
    assert not again.delete("bob", "resp_1")
    assert again.delete("alice", "resp_1") and again.get("alice", "resp_1") is None


def test_oldest_go_first_beyond_the_limit(tmp_path: Path):
    store = ResponseStore(tmp_path / "r.sqlite3", ttl_s=3600, max_stored=2)
    for i in range(3):
        store.put("alice", _resp(i), [])
        time.sleep(0.01)
    assert [store.get("alice", f"resp_{i}") is not None for i in range(3)] == [False, True, True]


def test_expired_rows_are_not_found(tmp_path: Path):
    store = ResponseStore(tmp_path / "r.sqlite3", ttl_s=0.2, max_stored=10)
    store.put("alice", _resp(1), [])
    assert store.get("alice", "resp_1") is not None
    time.sleep(0.3)
    assert store.get("alice", "resp_1") is None
    assert not store.delete("alice", "resp_1")
