"""Malformed input is a 400 in the API's own envelope, never a 500 (issue 36, class 4).

JSON nested 50,000 deep, lone UTF-16 surrogates ("\\ud800") and bytes that are not UTF-8 are
refused at the door, at every POST route of every family, streamed or not. A stream that fails
after its first frame ends with the family's error frame, never a cut connection. Corrupt,
truncated, empty and hostile `.gguf` files in MODELS_DIR are listed as unreadable; showing or
loading one is a 400 and the model that was serving goes on serving.
"""

from __future__ import annotations

import json
import os
import re
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Blueprint
from support.http_server import MODEL, make_settings, running_server, serving

from slm_api.api.core.contract import contract_of
from slm_api.api.core.sse import sse_response
from slm_api.api.ollama.routes import ndjson
from slm_api.app import create_app
from slm_api.config import Settings

DEEP = 50_000
MAX_DEPTH = Settings().max_json_depth


def _post_routes() -> list[str]:
    """Every POST route that takes a JSON body, without a path parameter, read from the app
    (new routes are covered as they appear; a form upload such as /v1/audio/transcriptions has
    its own bounds, tests/media/)."""
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / "slm-api-hostile-routes"
    app = create_app(make_settings(folder), load_model=False)

    def takes_json(endpoint: str) -> bool:
        declared = contract_of(app.view_functions[endpoint])
        return declared is None or declared.body_content_type == "application/json"

    return sorted(rule.rule for rule in app.url_map.iter_rules()
                  if "POST" in rule.methods and "<" not in rule.rule
                  and takes_json(rule.endpoint))


POST_ROUTES = _post_routes()


def _family(route: str) -> str:
    if route.startswith("/v1/messages"):
        return "anthropic"
    if route.startswith("/api/"):
        return "ollama"
    return "openai"


def assert_refused(r: requests.Response, route: str, code: str | None = None) -> str:
    """A 400 in `route`'s family envelope; returns its message."""
    assert r.status_code == 400, f"{route}: {r.status_code} {r.text[:300]}"
    assert r.headers["Content-Type"].startswith("application/json"), r.text[:300]
    body = r.json()
    family = _family(route)
    if family == "anthropic":
        assert body["type"] == "error", body
        assert body["error"]["type"] == "invalid_request_error", body
        return body["error"]["message"]
    if family == "ollama":
        assert isinstance(body["error"], str) and body["error"], body
        return body["error"]
    error = body["error"]
    assert error["type"] == "invalid_request_error", body
    if code is not None:
        assert error["code"] == code, body
    return error["message"]


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """No model: what is refused at the door needs none."""
    folder = tmp_path_factory.mktemp("hostile-bare")
    with running_server(make_settings(folder), load_model=False) as url:
        yield url


def _post(url: str, route: str, data: bytes) -> requests.Response:
    return requests.post(url + route, data=data, timeout=30,
                         headers={"Content-Type": "application/json"})


# -- at the door, every route ----------------------------------------------------------------


def test_every_family_has_post_routes():
    families = {_family(r) for r in POST_ROUTES}
    assert families == {"openai", "anthropic", "ollama"}
    for route in ("/v1/chat/completions", "/v1/responses", "/v1/messages", "/api/chat",
                  "/v1/extract", "/v1/rerank", "/extras/tokenize", "/reload"):
        assert route in POST_ROUTES


@pytest.mark.parametrize("route", POST_ROUTES)
def test_json_nested_50000_deep_is_a_400(bare_server: str, route: str):
    body = b'{"messages": ' + b"[" * DEEP + b"]" * DEEP + b"}"
    message = assert_refused(_post(bare_server, route, body), route, "json_too_deep")
    assert str(MAX_DEPTH) in message


@pytest.mark.parametrize("route", POST_ROUTES)
def test_lone_surrogate_is_a_400(bare_server: str, route: str):
    body = json.dumps({"model": "m", "input": "x", "messages": [
        {"role": "user", "content": "hi \ud800 there"}]}).encode()
    assert b"\\ud800" in body  # json.dumps escapes it: the bytes on the wire are ASCII
    message = assert_refused(_post(bare_server, route, body), route, "invalid_unicode")
    assert "surrogate" in message and "messages.0.content" in message


@pytest.mark.parametrize("route", POST_ROUTES)
def test_bytes_that_are_not_utf8_are_a_400(bare_server: str, route: str):
    body = b'{"messages": [{"role": "user", "content": "\xed\xa0\x80 \xff"}]}'
    assert_refused(_post(bare_server, route, body), route, "invalid_json")


def test_depth_bound_counts_brackets_not_text(bare_server: str):
    # Brackets inside strings are text; nesting at the bound is served, one past it is not.
    text = {"input": "[" * 5000}
    r = requests.post(f"{bare_server}/v1/embeddings", json=text, timeout=30)
    assert r.json()["error"]["code"] != "json_too_deep", r.text
    at_bound = b'{"input": ' + b"[" * (MAX_DEPTH - 1) + b"1" + b"]" * (MAX_DEPTH - 1) + b"}"
    r = _post(bare_server, "/v1/embeddings", at_bound)
    assert r.json()["error"]["code"] != "json_too_deep", r.text
    past = b'{"input": ' + b"[" * MAX_DEPTH + b"1" + b"]" * MAX_DEPTH + b"}"
    assert_refused(_post(bare_server, "/v1/embeddings", past), "/v1/embeddings",
                   "json_too_deep")


def test_surrogate_in_a_key_and_in_metadata_names_the_field(bare_server: str):
    body = json.dumps({"model": "m", "input": "hi", "metadata": {"k\udc00": "v"}}).encode()
    r = _post(bare_server, "/v1/responses", body)
    assert_refused(r, "/v1/responses", "invalid_unicode")
    assert r.json()["error"]["param"] == "metadata"


def test_health_answers_within_1s_throughout_the_attack(bare_server: str):
    bodies = [b"[" * DEEP, json.dumps({"input": "\udfff"}).encode(), b"[]" * 400_000,
              b"\xff" * 1000]
    stop = threading.Event()
    statuses: list[int] = []

    def attack() -> None:
        while not stop.is_set():
            for body in bodies:
                statuses.append(_post(bare_server, "/v1/chat/completions", body).status_code)

    # Two attackers: the server shares this process (and its GIL) with them.
    attackers = [threading.Thread(target=attack) for _ in range(2)]
    for t in attackers:
        t.start()
    slowest = 0.0
    try:
        for _ in range(20):
            start = time.perf_counter()
            requests.get(f"{bare_server}/health", timeout=10)
            slowest = max(slowest, time.perf_counter() - start)
            time.sleep(0.05)
    finally:
        stop.set()
        for t in attackers:
            t.join()
    assert slowest < 1.0, f"/health took {slowest:.2f} s under attack"
    assert statuses and set(statuses) == {400}, set(statuses)


# -- with a model: the refusals are the only difference ---------------------------------------


def test_surrogates_in_the_issues_examples_whole_and_streamed(server: str):
    cases = [
        ("/v1/chat/completions", {"model": MODEL, "max_tokens": 2,
                                  "messages": [{"role": "user", "content": "\ud800"}]}),
        ("/extras/tokenize", {"input": "tokens \udbff!"}),
        ("/v1/responses", {"model": MODEL, "input": "hi", "max_output_tokens": 16,
                           "metadata": {"note": "\ud800"}}),
        ("/v1/messages", {"model": MODEL, "max_tokens": 2,
                          "messages": [{"role": "user", "content": "\ud800"}]}),
        ("/api/chat", {"model": MODEL, "messages": [{"role": "user", "content": "\ud800"}]}),
        ("/v1/embeddings", {"model": MODEL, "input": ["fine", "\ud800"]}),
    ]
    for route, body in cases:
        for stream in (False, True):
            payload = {**body, "stream": True} if stream else body
            if route in ("/extras/tokenize", "/v1/embeddings") and stream:
                continue
            r = _post(server, route, json.dumps(payload).encode())
            assert_refused(r, route, "invalid_unicode")


def test_valid_pairs_and_escaped_backslashes_still_pass(server: str):
    # "\ud83d\ude00" is one emoji; "\\ud800" is six characters of text.
    body = b'{"input": "smile \\ud83d\\ude00 and \\\\ud800 as text"}'
    r = _post(server, "/extras/tokenize", body)
    assert r.status_code == 200, r.text
    r = _post(server, "/extras/detokenize", json.dumps({"tokens": r.json()["tokens"]}).encode())
    assert "\U0001F600" in r.json()["text"] and "\\ud800" in r.json()["text"], r.text


# -- after the first frame: the stream's own error frame ------------------------------------


@pytest.fixture(scope="module")
def breaking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app with one extra route per stream framing whose events fail after the first
    (the one place a failure can be raised at a chosen point of a stream)."""
    app = create_app(make_settings(tmp_path_factory.mktemp("hostile-streams")),
                     load_model=False)
    bp = Blueprint("hostile_streams", __name__)

    def events(fail: str) -> Iterator[dict]:
        yield {"type": "first", "text": "ok"}
        if fail == "surrogate":
            yield {"type": "odd", "text": "half a pair: \ud800"}
            return
        raise {"runtime": RuntimeError("boom"), "unicode": UnicodeEncodeError(
            "utf-8", "\ud800", 0, 1, "surrogates not allowed")}[fail]

    @bp.get("/hostile/sse/<fail>")
    def sse(fail: str):
        return sse_response(events(fail))

    @bp.get("/hostile/ndjson/<fail>")
    def lines(fail: str):
        return ndjson(events(fail))

    app.register_blueprint(bp)
    with serving(app) as url:
        yield url


@pytest.mark.parametrize("fail", ["runtime", "unicode"])
def test_sse_failure_mid_stream_is_an_error_frame_then_done(breaking_server: str, fail: str):
    r = requests.get(f"{breaking_server}/hostile/sse/{fail}", timeout=30)
    assert r.status_code == 200 and "<html" not in r.text.lower(), r.text
    frames = re.findall(r"^data: (.*)$", r.text, re.M)
    assert json.loads(frames[0])["text"] == "ok"
    error = json.loads(frames[1])["error"]
    assert (error["type"], error["code"]) == ("server_error", "internal_error")
    assert "boom" not in r.text and "Traceback" not in r.text
    assert frames[2] == "[DONE]"


@pytest.mark.parametrize("fail", ["runtime", "unicode"])
def test_ndjson_failure_mid_stream_is_an_error_line(breaking_server: str, fail: str):
    r = requests.get(f"{breaking_server}/hostile/ndjson/{fail}", timeout=30)
    assert r.status_code == 200
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert lines == [{"type": "first", "text": "ok"}, {"error": "Internal server error"}]


@pytest.mark.parametrize("kind", ["sse", "ndjson"])
def test_a_lone_surrogate_in_an_event_goes_out_escaped(breaking_server: str, kind: str):
    r = requests.get(f"{breaking_server}/hostile/{kind}/surrogate", timeout=30)
    assert r.status_code == 200
    assert b"\\ud800" in r.content  # JSON's escape: valid UTF-8 on the wire
    r.content.decode("utf-8")
    assert b"error" not in r.content


# -- model files that cannot be read ------------------------------------------------------------


def _gguf(*parts: bytes) -> bytes:
    return b"GGUF" + struct.pack("<I", 3) + b"".join(parts)


def _u64(n: int) -> bytes:
    return struct.pack("<Q", n)


def _key(name: str, kind: int) -> bytes:
    return _u64(len(name)) + name.encode() + struct.pack("<I", kind)


def _bad_files(real: Path) -> dict[str, bytes]:
    head = real.read_bytes()[:4096]
    nested = _key("general.nested", 9) + (struct.pack("<I", 9) + _u64(1)) * 5000
    return {
        "empty": b"",
        "text": b"this is a README, not a model\n",
        "truncated": head,  # cut inside the metadata (the vocabulary's strings)
        "huge-key": _gguf(_u64(0), _u64(1), _u64(1 << 62)),
        "huge-array": _gguf(_u64(0), _u64(1), _key("tokenizer.ggml.scores", 9),
                            struct.pack("<I", 10), _u64(1 << 61)),
        "huge-string-array": _gguf(_u64(0), _u64(1), _key("tokenizer.ggml.tokens", 9),
                                   struct.pack("<I", 8), _u64(1 << 60)),
        "nested-arrays": _gguf(_u64(0), _u64(1), nested),
        "bad-type": _gguf(_u64(0), _u64(1), _key("general.name", 77)),
        "huge-counts": _gguf(_u64(1 << 63), _u64(1 << 63)),
    }


@pytest.fixture(scope="module")
def shelf(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """A MODELS_DIR holding the default model (loaded) and every kind of broken file."""
    folder = tmp_path_factory.mktemp("hostile-gguf")
    os.link(model_path, folder / model_path.name)
    bad = _bad_files(model_path)
    for name, data in bad.items():
        (folder / f"{name}.gguf").write_bytes(data)
    # A whole header over missing tensor data: ours reads it, llama.cpp refuses it.
    with model_path.open("rb") as f:
        (folder / "no-tensors.gguf").write_bytes(f.read(model_path.stat().st_size // 2))
    with running_server(make_settings(folder)) as url:
        yield url, sorted(bad)


def test_listings_survive_and_show_unreadable_files(shelf: tuple):
    url, bad = shelf
    r = requests.get(f"{url}/v1/models", timeout=30)
    assert r.status_code == 200, r.text
    models = {m["id"]: m for m in r.json()["data"]}
    assert models[MODEL]["kind"] == "chat" and "error" not in models[MODEL]
    for name in bad:
        assert models[name]["kind"] == "unreadable", models[name]
        assert models[name]["error"], models[name]
    assert "past the end" in models["huge-key"]["error"]
    assert "not a GGUF" in models["text"]["error"]
    assert "nested" in models["nested-arrays"]["error"]
    chat = requests.get(f"{url}/v1/models/chat", timeout=30).json()["data"]
    assert [m["id"] for m in chat] == sorted([MODEL, "no-tensors"])
    one = requests.get(f"{url}/v1/models/huge-array", timeout=30)
    assert one.status_code == 200 and one.json()["kind"] == "unreadable"

    local = requests.get(f"{url}/models", timeout=30)
    assert local.status_code == 200
    errors = {m["id"]: m.get("error") for m in local.json()["models"]}
    assert all(errors[name] for name in bad) and errors[MODEL] is None

    tags = requests.get(f"{url}/api/tags", timeout=30)
    assert tags.status_code == 200, tags.text
    listed = {m["name"]: m for m in tags.json()["models"]}
    for name in bad:
        entry = listed[f"{name}:latest"]
        assert entry["error"] and entry["details"]["family"] == "unknown", entry
    assert "error" not in listed[f"{MODEL}:latest"]


def test_show_of_an_unreadable_file_is_a_400(shelf: tuple):
    url, bad = shelf
    for name in bad:
        for verbose in (False, True):
            r = requests.post(f"{url}/api/show", json={"model": name, "verbose": verbose},
                              timeout=30)
            message = assert_refused(r, "/api/show")
            assert f"'{name}' cannot be read" in message
    ok = requests.post(f"{url}/api/show", json={"model": MODEL}, timeout=30)
    assert ok.status_code == 200 and ok.json()["details"]["family"] == "llama"


@pytest.mark.parametrize("name", ["truncated", "huge-key", "nested-arrays", "empty",
                                  "no-tensors"])
def test_loading_an_unreadable_file_is_a_400_and_the_old_model_serves(shelf: tuple,
                                                                      name: str):
    url, _ = shelf
    attempts = [
        ("/reload", {"model_path": f"{name}.gguf"}),
        ("/v1/models", {"model": name}),
        ("/v1/chat/completions", {"model": name, "max_tokens": 2,
                                  "messages": [{"role": "user", "content": "Hi"}]}),
        ("/v1/embeddings", {"model": name, "input": "hi"}),
        ("/v1/rerank", {"model": name, "query": "q", "documents": ["d"]}),
        ("/api/generate", {"model": name, "prompt": "Hi", "stream": False}),
    ]
    for route, body in attempts:
        r = requests.post(url + route, json=body, timeout=60)
        message = assert_refused(r, route)
        assert name in message, message
    health = requests.get(f"{url}/health", timeout=10)
    assert health.status_code == 200 and health.json()["model"] == MODEL, health.text
    assert health.json()["loaded_models"] == [MODEL]
    chat = requests.post(f"{url}/v1/chat/completions", timeout=60, json={
        "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 2})
    assert chat.status_code == 200 and chat.json()["model"] == MODEL, chat.text
