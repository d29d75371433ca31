"""A streaming request read on its own thread, for the tests that hold slots open (drain,
probes under load, gunicorn as deployed)."""

from __future__ import annotations

import json
import threading
import time

import requests

# The default model's end tokens (SmolLM2: 0 <|endoftext|>, 2 <|im_end|>) banned: a reply that
# runs to max_tokens, so a test that holds threads with streams, or counts a stream's frames, is
# not undone by a sampled reply that stops after a dozen tokens.
NO_END = {"0": -100, "2": -100}

# A chat stream sends its first event (the role) before its first token: a waiting one is
# visibly answered (status 200) while it waits for a slot.
CHAT = {"messages": [{"role": "user", "content": "Count from 1 to 1000."}], "stream": True,
        "logit_bias": NO_END}


class Stream:
    """A streaming request read on its own thread; keeps the status, headers and SSE data."""

    def __init__(self, url: str, path: str, body: dict):
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.events: list[str] = []
        self.first_token = threading.Event()
        self.answered = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url + path, body), daemon=True)
        self._thread.start()

    def _run(self, url: str, body: dict) -> None:
        try:
            with requests.post(url, json=body, stream=True, timeout=120) as r:
                self.status, self.headers = r.status_code, dict(r.headers)
                self.answered.set()
                if r.status_code != 200:
                    self.events.append(r.text)
                    return
                for line in r.iter_lines(decode_unicode=True):
                    if line.startswith("data: "):
                        self.events.append(line[6:])
                        if len(self.events) >= 2:
                            self.first_token.set()
                    if self._stop.is_set():
                        return
        finally:
            self.answered.set()

    def close(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def last_finish_reason(self) -> str | None:
        for data in reversed(self.events):
            if data != "[DONE]":
                choices = json.loads(data).get("choices") or [{}]
                return choices[0].get("finish_reason")
        return None


def wait_for_a_token(streams: list[Stream], timeout: float) -> bool:
    """Whether any of `streams` produces a token within `timeout`. Polled across all of them:
    waiting on each in turn would wait on a queued one until a running one had finished, and
    so see a slot come free."""
    deadline = time.monotonic() + timeout
    while not any(s.first_token.is_set() for s in streams):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
