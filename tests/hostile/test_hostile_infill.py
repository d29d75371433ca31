"""Fill-in-the-middle as an attacker sends it (/infill, Ollama's and OpenAI's `suffix`): the
most `input_extra` files a body can carry, one file too many, a suffix far larger than any
context, and FIM asked of a model without FIM tokens. Each is bounded before its text is
tokenized past what fits, answered in its API's own error shape, and /health answers within
1 s during and after.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support.ggufs import with_fim_tokens
from support.http_server import MODEL, make_settings, running_server

FIM = "smollm2-fim"
HALF = "x = 1 " * 75_000  # two of them fit one body
HUGE = "x = 1 " * 150_000  # 900 KB: under MAX_REQUEST_BYTES, far past n_ctx x any token


@pytest.fixture(scope="module")
def url(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("hostile-fim")
    os.link(model_path, folder / model_path.name)
    with_fim_tokens(model_path, folder / f"{FIM}.gguf", pre=11, suf=12, mid=13, rep=3, sep=5)
    settings = make_settings(folder, model_path=folder / f"{FIM}.gguf", max_loaded_models=2,
                             n_parallel=1, prompt_cache="off")
    with running_server(settings) as base:
        yield base


class Health:
    """/health polled every 0.2 s in the background; `check()` fails on any slow or bad poll."""

    def __init__(self, url: str):
        self.url, self.slow = url, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()

    def poll(self) -> None:
        while not self.stop.wait(0.2):
            start = time.monotonic()
            r = requests.get(f"{self.url}/health", timeout=5)
            took = time.monotonic() - start
            if r.status_code != 200 or took >= 1.0:
                self.slow.append((r.status_code, took))

    def check(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.slow, self.slow
        start = time.monotonic()
        assert requests.get(f"{self.url}/health", timeout=5).status_code == 200
        assert time.monotonic() - start < 1.0


def infill(url: str, **body) -> requests.Response:
    base = {"input_prefix": "def f():\n", "input_suffix": "\n", "n_predict": 2,
            "temperature": 0}
    return requests.post(f"{url}/infill", json={**base, **body}, timeout=120)


def test_hostile_the_most_extra_files_a_body_holds_cost_what_fits(url: str) -> None:
    # 256 files of 3 KB (770 KB): read back from the last only while the context has room.
    health = Health(url)
    files = [{"filename": f"f{k}.py", "text": f"# file {k}\n" + "y = 2\n" * 500}
             for k in range(256)]
    r = infill(url, input_extra=files)
    assert r.status_code == 200, r.text
    assert r.json()["tokens_evaluated"] <= 2048
    r = infill(url, input_extra=[*files, files[0]])
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "input_extra"
    health.check()


@pytest.mark.parametrize("route, body, field", [
    ("/infill", {"input_prefix": "a", "input_suffix": HUGE}, "input_suffix"),
    ("/infill", {"input_prefix": "a", "input_suffix": "b",
                 "input_extra": [{"text": HUGE}]}, "input_extra"),
    ("/v1/completions", {"model": FIM, "prompt": "a", "suffix": HUGE, "max_tokens": 1},
     "suffix"),
    ("/api/generate", {"model": FIM, "prompt": "a", "suffix": HUGE, "stream": False}, None),
])
def test_hostile_a_suffix_past_any_context_is_refused(url: str, route: str, body: dict,
                                                      field: str | None) -> None:
    health = Health(url)
    r = requests.post(f"{url}{route}", json=body, timeout=120)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    if field is None:  # Ollama's shape: a string
        assert isinstance(error, str) and "context" in error, error
    else:
        assert error["code"] == "context_length_exceeded" and field in error["param"], error
    health.check()


@pytest.mark.parametrize("route, body", [
    ("/infill", {"model": MODEL, "input_prefix": HALF, "input_suffix": HALF}),
    ("/v1/completions", {"model": MODEL, "prompt": HALF, "suffix": HALF, "max_tokens": 1}),
    ("/api/generate", {"model": MODEL, "prompt": HALF, "suffix": HALF, "stream": False}),
])
def test_hostile_fim_of_a_model_without_fim_tokens_is_refused_first(url: str, route: str,
                                                                    body: dict) -> None:
    health = Health(url)
    r = requests.post(f"{url}{route}", json=body, timeout=120)
    assert r.status_code == 400, r.text
    assert "fill-in-the-middle" in str(r.json()["error"])
    health.check()
