"""Each family's dialect, bound to its blueprint once: a stream that fails after it started ends
with the family's own error event, framed as its other events, and a server fault is logged.

Served by the real app over real HTTP; the events come from routes of this test bound to the
real families' dialects, the one place an error can be raised at a chosen point of a stream.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import requests
from flask import Blueprint
from support.http_server import make_settings, serving

from slm_api.api.anthropic.errors import ANTHROPIC
from slm_api.api.core.dialect import Dialect, bind_dialect
from slm_api.api.core.sse import stream_response
from slm_api.api.ollama.routes import OLLAMA
from slm_api.api.responses.serving import RESPONSES
from slm_api.app import create_app
from slm_api.errors import APIError

DIALECTS: dict[str, Dialect] = {"responses": RESPONSES, "anthropic": ANTHROPIC,
                                "ollama": OLLAMA}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = create_app(make_settings(tmp_path_factory.mktemp("models")), load_model=False)
    for family, dialect in DIALECTS.items():
        bp = Blueprint(f"broken_{family}", __name__, url_prefix=f"/{family}")
        bind_dialect(bp, dialect)

        @bp.get("/<fail>")
        def broken(fail: str) -> object:
            def events() -> Iterator[dict]:
                yield {"type": "first", "sequence_number": 0}
                yield {"type": "second", "sequence_number": 1}
                if fail == "server":
                    raise APIError(502, "the model's output broke", code="bad_output")
                raise RuntimeError("a bug")

            return stream_response(events())

        @bp.get("/refused")
        def refused() -> object:
            raise APIError(400, "no such thing", param="thing")

        app.register_blueprint(bp)
    with serving(app) as base:
        yield base


def _events(r: requests.Response, family: str) -> list[dict]:
    lines = r.iter_lines(decode_unicode=True)
    if family == "ollama":
        return [json.loads(line) for line in lines if line]
    return [json.loads(line[len("data: "):]) for line in lines if line.startswith("data: ")]


@pytest.mark.parametrize("fail", ["server", "bug"])
def test_responses_numbers_its_error_event_after_the_others(url, fail):
    with requests.get(f"{url}/responses/{fail}", stream=True, timeout=30) as r:
        assert r.status_code == 200
        text = r.text
    assert "data: [DONE]" not in text and "event: error\n" in text
    events = _events(requests.get(f"{url}/responses/{fail}", timeout=30), "responses")
    last = events[-1]
    assert last["type"] == "error" and last["sequence_number"] == 2
    assert last["code"] == ("bad_output" if fail == "server" else "internal_error")


def test_anthropic_and_ollama_end_with_their_own_error_shape(url):
    events = _events(requests.get(f"{url}/anthropic/server", timeout=30), "anthropic")
    assert events[-1] == {"type": "error", "error": {
        "type": "api_error", "message": "the model's output broke"}}
    r = requests.get(f"{url}/ollama/server", timeout=30)
    assert r.headers["Content-Type"].startswith("application/x-ndjson")
    assert _events(r, "ollama")[-1] == {"error": "the model's output broke"}


def test_a_refusal_before_the_stream_is_the_family_error_body(url):
    r = requests.get(f"{url}/anthropic/refused", timeout=30)
    assert r.status_code == 400 and r.json()["type"] == "error"
    r = requests.get(f"{url}/ollama/refused", timeout=30)
    assert r.status_code == 400 and r.json() == {"error": "no such thing"}
    r = requests.get(f"{url}/responses/refused", timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "thing"


def test_a_server_fault_mid_stream_is_logged(url, caplog):
    with caplog.at_level(logging.ERROR, logger="slm_api.api.errors"):
        requests.get(f"{url}/responses/server", timeout=30).close()
    assert any("bad_output" in rec.getMessage() for rec in caplog.records)
