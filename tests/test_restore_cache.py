"""POST /restore_cache says how much of the prompt the cache already held."""

from __future__ import annotations

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
