"""Per-client limits through real HTTP: OpenAI's x-ratelimit-* headers, tokens per minute, and
counters shared by two servers through a real Redis (and what happens when it is gone)."""

from __future__ import annotations

import logging
from pathlib import Path

import openai
import pytest
import requests
from support.http_server import MODEL, make_settings, running_server
from support.redis_server import free_port, running_redis

from slm_api.plumbing.ratelimit import duration

CHAT = {"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 2}


@pytest.fixture(scope="module")
def empty_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rl-models")


def _serve(folder: Path, **overrides: object):
    return running_server(make_settings(folder, **overrides), load_model=False)


def _models(url: str, key: str = "k") -> requests.Response:
    return requests.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"},
                        timeout=10)


def test_reset_durations_read_like_openais():
    assert [duration(s) for s in (0.02, 1.0, 1.46, 59.9, 360.0, 61.4)] == [
        "20ms", "1s", "1.5s", "59.9s", "6m0s", "1m1s"]


def test_tokens_per_minute_with_the_sdk(models_dir):
    settings = make_settings(models_dir, rate_limit_rpm=10, rate_limit_tpm=10,
                             openai_api_keys=("k1:one", "k2:two"))
    with running_server(settings) as url:
        one = openai.OpenAI(base_url=f"{url}/v1", api_key="k1", max_retries=0, timeout=60)
        raw = one.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "Count to five"}], max_tokens=8)
        used = raw.parse().usage.total_tokens
        assert used >= 10  # one templated prompt and 8 tokens spend this budget
        h = raw.headers
        assert (h["x-ratelimit-limit-requests"], h["x-ratelimit-remaining-requests"]) == (
            "10", "9")
        # Checked before the generation: the budget was whole then.
        assert (h["x-ratelimit-limit-tokens"], h["x-ratelimit-remaining-tokens"]) == ("10", "10")
        assert h["x-ratelimit-reset-requests"].endswith("s")
        with pytest.raises(openai.RateLimitError) as caught:
            one.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}],
                                        max_tokens=2)
        response = caught.value.response
        assert caught.value.code == "rate_limit_exceeded"
        assert "10 tokens per minute" in caught.value.message
        assert response.headers["x-ratelimit-remaining-tokens"] == "0"
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        # Another key has its own budget; streams are charged too.
        two = openai.OpenAI(base_url=f"{url}/v1", api_key="k2", max_retries=0, timeout=60)
        stream = two.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Count to five"}], max_tokens=8,
            stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        with pytest.raises(openai.RateLimitError):
            two.models.list()


def test_requests_per_minute_shared_through_redis(empty_dir):
    with running_redis() as uri:
        shared = dict(rate_limit_rpm=3, openai_api_keys=("k:team",), rate_limit_storage_uri=uri)
        with _serve(empty_dir, **shared) as a, _serve(empty_dir, **shared) as b:
            assert [_models(u).status_code for u in (a, b, a)] == [200, 200, 200]
            r = _models(b)
            assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
            assert r.headers["x-ratelimit-remaining-requests"] == "0"
            assert _models(a).status_code == 429


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_store_down_never_500(empty_dir, mode, caplog):
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    with _serve(empty_dir, rate_limit_rpm=2, rate_limit_tpm=100, rate_limit_storage_uri=dead,
                rate_limit_fail=mode, openai_api_keys=("k:team",)) as url:
        statuses = [_models(url).status_code for _ in range(3)]
        metrics = requests.get(f"{url}/metrics", timeout=10).text
        failures = next(float(line.split()[-1]) for line in metrics.splitlines()
                        if line.startswith("slm_rate_limit_storage_errors_total"))
        assert failures >= 3
        if mode == "open":
            assert statuses == [200, 200, 200]  # past the limit of 2: no store, no limit
        else:
            assert statuses == [503, 503, 503]
            error = _models(url).json()["error"]
            assert error["code"] == "rate_limit_store_unavailable"
        assert requests.get(f"{url}/health", timeout=10).status_code == 503  # not limited
    # One clear line (at most one a second), not a traceback per request.
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert 1 <= len(lines) <= 2 and "rate-limit store redis://" in lines[0], lines
    assert f"RATE_LIMIT_FAIL={mode}" in lines[0]
