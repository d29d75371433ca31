"""The media routes' body budget (MAX_MEDIA_REQUEST_BYTES, 32 MiB) as an attacker spends it.

The budget is there for an image's base64 text; spent on JSON structure instead it was 30 MB of
`[],` that parsed into 10 million lists (723 MiB and 11 s of CPU for one request, before any
field was checked). The structure of a body (what lies outside its strings) may be no larger
than MAX_REQUEST_BYTES on any route: a 413 in each family's own shape, while /health answers
within 1 s; a phone photo and a long prose message still pass.
"""

from __future__ import annotations

import base64
import os
import threading
import time

import pytest
import requests
from support.http_server import MODEL

SPENT = 30 << 20


def structure(unit: str) -> str:
    """A body whose `messages` is ~30 MB of `unit` repeated."""
    items = unit * (SPENT // len(unit))
    return '{"model": "' + MODEL + '", "max_tokens": 1, "messages": [' + items + "1]}"


@pytest.mark.parametrize("route, shape", [
    ("/v1/chat/completions", "openai"), ("/v1/messages", "anthropic"),
    ("/api/chat", "ollama"), ("/v1/responses", "openai"),
])
@pytest.mark.parametrize("unit", ["[],", "{},", "1.5,", '"ab",'],
                         ids=["lists", "objects", "floats", "strings"])
def test_hostile_structure_cannot_spend_the_media_budget(server: str, route: str, shape: str,
                                                         unit: str) -> None:
    slow: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.2):
            start = time.monotonic()
            requests.get(f"{server}/health", timeout=10)
            slow.extend([time.monotonic() - start] if time.monotonic() - start >= 1 else [])

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        r = requests.post(f"{server}{route}", data=structure(unit).replace(
            '"messages"', '"input"' if route == "/v1/responses" else '"messages"'),
            headers={"Content-Type": "application/json"}, timeout=120)
    finally:
        stop.set()
        thread.join(10)
    assert r.status_code == 413, (route, unit, r.status_code, r.text[:300])
    body = r.json()
    if shape == "openai":
        assert body["error"]["code"] == "body_structure_too_large", body
    elif shape == "anthropic":
        assert body["type"] == "error" and "MAX_REQUEST_BYTES" in body["error"]["message"]
    else:
        assert list(body) == ["error"] and "MAX_REQUEST_BYTES" in body["error"], body
    assert not slow, slow
    start = time.monotonic()
    assert requests.get(f"{server}/health", timeout=5).status_code == 200
    assert time.monotonic() - start < 1.0


def test_hostile_big_strings_still_use_the_media_budget(server: str) -> None:
    # 9 MB of image and 2 MB of prose with 175,000 commas (a 128k-token context holds about
    # 500 KB of text): far past MAX_REQUEST_BYTES in all, little outside the strings. The text
    # model then refuses the image, by name.
    image = base64.b64encode(b"\x89PNG\r\n\x1a\n" + os.urandom(9 << 20)).decode()
    prose = "Hello, world, and more. " * 87_000
    r = requests.post(f"{server}/v1/chat/completions", timeout=120, json={
        "model": MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": [
            {"type": "text", "text": prose},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}"}}]}]})
    assert r.status_code == 400, r.text[:300]
    assert r.json()["error"]["code"] == "model_without_image_input", r.text[:300]


def health_gaps_while(server: str, body: str, status: int, attackers: int = 3) -> list[float]:
    """/health's latencies, polled every 0.1 s while `attackers` clients post `body` to chat at
    once (each answered `status`)."""
    gaps: list[float] = []
    answers: list[int] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.1):
            start = time.monotonic()
            requests.get(f"{server}/health", timeout=10)
            gaps.append(time.monotonic() - start)

    def attack() -> None:
        r = requests.post(f"{server}/v1/chat/completions", data=body, timeout=120,
                          headers={"Content-Type": "application/json"})
        answers.append(r.status_code)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    threads = [threading.Thread(target=attack) for _ in range(attackers)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        stop.set()
        poller.join(10)
    assert answers == [status] * attackers, answers
    return gaps


def test_hostile_escapes_do_not_hold_the_interpreter(server: str) -> None:
    # 30 MB of "\n" escapes in one string, and 70 brackets: the depth scan's regex stepped
    # through the escapes one by one in a single call (1.9 s holding the interpreter's lock,
    # so /health and every stream in the process waited), three such requests at a time.
    body = ('{"model": "' + MODEL + '", "max_tokens": 1, "messages": [{"role": "user", '
            '"content": "' + "\\n" * (15 << 20) + '"}], "stop": [' + "[]," * 70 + '"x"]}')
    gaps = health_gaps_while(server, body, 400)
    assert gaps and max(gaps) < 1.0, f"/health took {max(gaps):.2f} s"


def test_hostile_data_url_header_is_bounded(server: str) -> None:
    # A data URL of 30 million ";" and no comma: the header regex stepped through each one in
    # a single call (about 5 s holding the interpreter's lock per request).
    url = "data:image/png" + ";" * (30 << 20)
    body = ('{"model": "' + MODEL + '", "max_tokens": 1, "messages": [{"role": "user", '
            '"content": [{"type": "image_url", "image_url": {"url": "' + url + '"}}]}]}')
    gaps = health_gaps_while(server, body, 400)
    assert gaps and max(gaps) < 1.0, f"/health took {max(gaps):.2f} s"
    r = requests.post(f"{server}/v1/chat/completions", data=body, timeout=120,
                      headers={"Content-Type": "application/json"})
    assert r.json()["error"]["code"] == "invalid_image_url", r.text[:300]
