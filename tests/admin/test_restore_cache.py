"""POST /restore_cache says how much of the prompt the cache already held."""

from __future__ import annotations

import time
from pathlib import Path

import requests


def test_restore_cache_reports_what_was_already_cached(server):
    system = "You answer questions about the lighthouse keeper's logbook, page by page. " * 20
    body = {"messages": [{"role": "system", "content": system}, {"role": "user", "content": "Hi"}]}
    first = requests.post(f"{server}/restore_cache", json=body, timeout=60).json()
    assert first["status"] == "cached" and first["prompt_tokens"] > 200
    # Nothing cached holds this text yet: at most the template's opening tokens are shared.
    assert first["cached_tokens"] < 10
    second = requests.post(f"{server}/restore_cache", json=body, timeout=60).json()
    assert second["prompt_tokens"] == first["prompt_tokens"]
    # All of it now, the last token too: the logits after it were kept when it was read, so
    # nothing is evaluated again (a chat request's prompt_tokens_details.cached_tokens alike).
    assert second["cached_tokens"] == second["prompt_tokens"]


def _body(topic: str) -> dict:
    system = f"You answer questions about the {topic}, page by page. " * 12
    return {"messages": [{"role": "system", "content": system}, {"role": "user", "content": "Hi"}]}


def _states(folder: Path, count: int) -> list[Path]:
    """The cache's saved sequences once there are `count` (written by a background thread)."""
    deadline = time.monotonic() + 20
    while len(files := sorted(folder.rglob("*.json"))) != count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(files) == count, files
    return [f.with_suffix(".state") for f in files]


def test_disk_cache_survives_a_restart_within_cache_size_bytes(models_dir: Path, tmp_path: Path):
    # PROMPT_CACHE=disk: a warmed prompt comes back whole after a restart. CACHE_SIZE_BYTES
    # under two entries: warming a second prompt deletes the older one.
    from support.http_server import make_settings, running_server

    cache = tmp_path / "cache"
    settings = make_settings(models_dir, prompt_cache="disk", cache_dir=cache, n_parallel=1)
    with running_server(settings) as url:
        first = requests.post(f"{url}/restore_cache", json=_body("logbook"), timeout=120).json()
        assert first["cached_tokens"] < 10
    [state] = _states(cache, 1)
    size = state.stat().st_size
    settings = make_settings(models_dir, prompt_cache="disk", cache_dir=cache, n_parallel=1,
                             cache_size_bytes=int(size * 1.5))
    with running_server(settings) as url:
        again = requests.post(f"{url}/restore_cache", json=_body("logbook"), timeout=120).json()
        assert again["cached_tokens"] == again["prompt_tokens"] == first["prompt_tokens"]
        other = requests.post(f"{url}/restore_cache", json=_body("atlas"), timeout=120).json()
        assert other["cached_tokens"] < 10
        deadline = time.monotonic() + 20  # the second save, then the eviction, run behind
        while state.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not state.exists(), "CACHE_SIZE_BYTES kept both entries"
        [kept] = _states(cache, 1)
    assert kept != state
