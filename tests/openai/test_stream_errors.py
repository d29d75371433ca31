"""An error raised after a stream has started reaches the client as an error event, then [DONE].

The status line is already sent by then, so the envelope travels as an SSE frame. The stream is
served by the real app over real HTTP; only its events come from a route of this test, the one
place where an error can be raised at a chosen point of a stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
from flask import Blueprint
from support.http_server import make_settings, serving

from slm_api.api.core.sse import sse_response
from slm_api.app import create_app
from slm_api.errors import APIError, InvalidRequest, QueueFull, SlmError
from slm_api.hub import DownloadError

# An HTTP-layer error, two engine errors and a download error: every kind of SlmError.
RAISED: dict[str, SlmError] = {
    "api": APIError(409, "the model changed under this stream", code="model_changed"),
    "invalid": InvalidRequest("grammar rejected the next token"),
    "queue": QueueFull("no free slot"),
    "download": DownloadError("the Hub went away"),
}
EXPECTED = {
    "api": ("invalid_request_error", "model_changed"),
    "invalid": ("invalid_request_error", "invalid_request"),
    "queue": ("server_overloaded", "queue_full"),
    "download": ("invalid_request_error", "invalid_download"),
}


@pytest.fixture(scope="module")
def streaming_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    app = create_app(make_settings(tmp_path_factory.mktemp("models")), load_model=False)
    bp = Blueprint("broken_stream", __name__)

    @bp.get("/broken/<name>")
    def broken(name: str):
        def events() -> Iterator[dict]:
            yield {"object": "chat.completion.chunk", "choices": [{"delta": {"content": "Hi"}}]}
            raise RAISED[name]

        return sse_response(events())

    app.register_blueprint(bp)
    with serving(app) as url:
        yield url


def _frames(r: requests.Response) -> list[str]:
    return [line[len("data: "):] for line in r.iter_lines(decode_unicode=True)
            if line.startswith("data: ")]


@pytest.mark.parametrize("name", sorted(RAISED))
def test_error_mid_stream_is_an_error_event_then_done(streaming_server: str, name: str):
    with requests.get(f"{streaming_server}/broken/{name}", stream=True, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        frames = _frames(r)
    assert len(frames) == 3, frames
    assert json.loads(frames[0])["choices"][0]["delta"]["content"] == "Hi"
    exc = RAISED[name]
    error = json.loads(frames[1])["error"]
    assert error == {"message": exc.message, "type": exc.type, "param": exc.param,
                     "code": exc.code}
    assert (error["type"], error["code"]) == EXPECTED[name]
    assert frames[2] == "[DONE]"

