"""Token ids a client sends (Ollama's `context`, a completions prompt as ids, detokenize) as an
attacker picks them: past the vocabulary, or the negative ids of image chunks a reply's
`context` shows. They must be refused as the client's error, never reach a decode that other
clients' sequences share, and /health answers within 1 s."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from support.http_server import MODEL

HUGE_ID = 2_000_000_000  # a valid int32, past any vocabulary


def healthy(url: str) -> None:
    start = time.monotonic()
    assert requests.get(f"{url}/health", timeout=5).status_code == 200
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("route, body", [
    ("/api/generate", {"model": MODEL, "prompt": "Hi", "context": [1, HUGE_ID],
                       "stream": False, "options": {"num_predict": 2}}),
    ("/v1/completions", {"model": MODEL, "prompt": [1, HUGE_ID], "max_tokens": 2}),
    ("/v1/completions", {"model": MODEL, "prompt": [[1, 2], [HUGE_ID]], "max_tokens": 2}),
    ("/extras/detokenize", {"model": MODEL, "tokens": [1, HUGE_ID]}),
    ("/v1/embeddings", {"model": MODEL, "input": [1, HUGE_ID]}),
])
def test_hostile_token_ids_past_the_vocabulary(server: str, route: str, body: dict) -> None:
    # A neighbour's stream runs meanwhile: it must not pay for the attacker's ids.
    neighbour: list[int] = []

    def stream() -> None:
        r = requests.post(f"{server}/v1/completions", timeout=120, json={
            "model": MODEL, "prompt": "Once upon a time", "max_tokens": 24, "temperature": 0})
        neighbour.append(r.status_code)

    t = threading.Thread(target=stream)
    t.start()
    r = requests.post(f"{server}{route}", json=body, timeout=120)
    t.join(120)
    assert r.status_code == 400, (route, r.status_code, r.text[:300])
    assert neighbour == [200]
    healthy(server)
