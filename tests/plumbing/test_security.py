"""Who may do what, and the limits, through real HTTP: keys, admin routes, rate limits, CORS,
body size, the queue cap and the per-request time cap."""

from __future__ import annotations

import http.client
import json
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from support.http_server import make_settings, running_server

from slm_api.api.core.contract import contract_of
from slm_api.app import create_app
from slm_api.plumbing.ratelimit import get_rate_limits
from slm_api.plumbing.security import generated_client_id, parse_keys, route_access

CHAT = {"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 2}
# Routes the issue names as admin: each must be classed admin however the code is arranged.
ADMIN_ROUTES = {
    ("POST", "/load"), ("GET", "/load/<job_id>"), ("POST", "/reload"), ("POST", "/v1/models"),
    ("DELETE", "/v1/models/<path:model_id>"), ("POST", "/setModel"), ("POST", "/restore_cache"),
    # Ollama's model management changes what every client gets (issue 39).
    ("POST", "/api/pull"), ("DELETE", "/api/delete"), ("POST", "/api/copy"),
}


@pytest.fixture(scope="module")
def empty_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sec-models")


def _serve(folder: Path, **overrides: object):
    return running_server(make_settings(folder, **overrides), load_model=False)


def _is_error(r: requests.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    if isinstance(error, str):  # Ollama's envelope: {"error": "<message>"}
        assert error
        return {"message": error, "type": "permission_error"}
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def _admin_rules(folder: Path) -> list[tuple[str, str]]:
    app = create_app(make_settings(folder), load_model=False)
    return sorted(
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if route_access(app, rule.endpoint) == "admin"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    )


def _fill(rule: str) -> str:
    # Path arguments get a harmless value; the refusal must come before the view runs.
    import re

    return re.sub(r"<(?:[^:>]+:)?[^>]+>", "x", rule)


def test_key_parsing_gives_stable_ids():
    keys = parse_keys(("key_a:team_a", "key_b", " key_c : team_c "))
    assert keys["key_a"] == "team_a" and keys["key_c"] == "team_c"
    assert keys["key_b"] == generated_client_id("key_b") == parse_keys(("key_b",))["key_b"]
    assert keys["key_b"] != generated_client_id("key_a") and "key_b" not in keys["key_b"]


def test_rate_limit_window_slides(empty_dir, monkeypatch):
    # The HTTP test below cannot wait a minute; the window of the limiter the app builds (a
    # moving window, as flask-limiter names it) is checked here on a clock of the test's own.
    import types

    import limits.storage.memory

    clock = types.SimpleNamespace(now=100.0)
    monkeypatch.setattr(limits.storage.memory, "time", types.SimpleNamespace(
        time=lambda: clock.now))
    app = create_app(make_settings(empty_dir, rate_limit_rpm=2), load_model=False)
    rl = get_rate_limits(app)
    item, strategy = rl.limiter.limit_manager.application_limits[0].limit, rl.limiter.limiter

    def allowed(at: float, client: str = "c") -> bool:
        clock.now = at
        return strategy.hit(item, client)

    assert allowed(100.0) and allowed(130.0)
    assert not allowed(150.0)  # two in the last minute; the first leaves at 160
    assert allowed(160.5)  # it has left: room for one
    assert not allowed(170.0)  # 130 and 160.5 are still inside
    assert allowed(170.0, "other")


def test_open_api_without_keys(empty_dir):
    with _serve(empty_dir) as url:
        r = requests.post(f"{url}/v1/chat/completions", json=CHAT, timeout=10)
        _is_error(r, 503, "no_model_loaded")  # past security, stopped by the missing model


def test_keys_protect_api_routes(empty_dir):
    with _serve(empty_dir, openai_api_keys=("key_a:team_a", "key_b")) as url:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic key_a"},
                        {"Authorization": "Bearer "}, {"Authorization": "key_a"}):
            r = requests.post(f"{url}/v1/chat/completions", json=CHAT, headers=headers,
                              timeout=10)
            error = _is_error(r, 401, "invalid_api_key")
            assert error["type"] == "authentication_error"
            assert r.headers["WWW-Authenticate"] == "Bearer"
        for key in ("key_a", "key_b"):
            r = requests.post(f"{url}/v1/chat/completions", json=CHAT, timeout=10,
                              headers={"Authorization": f"Bearer {key}"})
            _is_error(r, 503, "no_model_loaded")
        # Listing models, tokenizing, unknown routes: protected too (protected by default).
        for method, path in (("GET", "/v1/models"), ("GET", "/models"),
                             ("POST", "/extras/tokenize"), ("GET", "/no/such/route")):
            assert requests.request(method, url + path, timeout=10).status_code == 401
        # Monitoring and the docs stay open.
        assert requests.get(f"{url}/metrics", timeout=10).status_code == 200
        health = requests.get(f"{url}/health", timeout=10)  # open: 503 says "no model", not 401
        assert (health.status_code, health.json()["status"]) == (503, "no_model"), health.text
        assert requests.get(f"{url}/openapi.json", timeout=10).status_code == 200
        assert requests.get(f"{url}/docs", timeout=10).status_code == 200


def test_single_key_and_protect_metrics(empty_dir):
    with _serve(empty_dir, openai_api_key="only-key", protect_metrics=True) as url:
        for path in ("/health", "/metrics"):
            _is_error(requests.get(url + path, timeout=10), 401, "invalid_api_key")
        auth = {"Authorization": "Bearer only-key"}
        assert requests.get(f"{url}/metrics", headers=auth, timeout=10).status_code == 200
        assert requests.get(f"{url}/health", headers=auth, timeout=10).status_code == 503


def test_issue_admin_routes_are_all_admin(empty_dir):
    assert ADMIN_ROUTES <= set(_admin_rules(empty_dir))


def test_every_route_declares_its_access(empty_dir):
    # Access is read from @contract(access=...) on the view, never from its name: a route with
    # no contract would fall back to "admin" (closed), so none may lean on that silently.
    app = create_app(make_settings(empty_dir), load_model=False)
    undeclared = [rule.rule for rule in app.url_map.iter_rules()
                  if contract_of(app.view_functions[rule.endpoint]) is None]
    assert undeclared == []


def test_a_route_without_a_contract_is_closed(empty_dir):
    app = create_app(make_settings(empty_dir, openai_api_keys=("user-key:user",),
                                   admin_api_keys=("admin-key:ops",)), load_model=False)
    app.add_url_rule("/forgot-to-say", "forgot", lambda: "reached")
    client = app.test_client()
    r = client.get("/forgot-to-say", headers={"Authorization": "Bearer user-key"})
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "admin_key_required"
    r = client.get("/forgot-to-say", headers={"Authorization": "Bearer admin-key"})
    assert r.status_code == 200 and r.text == "reached"


def test_every_admin_route_refused_off_host(empty_dir):
    # The server believes one proxy hop, so X-Forwarded-For stands for the real client.
    rules = _admin_rules(empty_dir)
    with _serve(empty_dir, trusted_proxy_hops=1) as url:
        for method, rule in rules:
            r = requests.request(method, url + _fill(rule), json={}, timeout=10,
                                 headers={"X-Forwarded-For": "198.51.100.7"})
            error = _is_error(r, 403, "admin_forbidden")
            assert error["type"] == "permission_error"
        # The same routes from loopback reach the view (which then judges the body).
        for method, rule in rules:
            r = requests.request(method, url + _fill(rule), json={}, timeout=10,
                                 headers={"X-Forwarded-For": "127.0.0.1"})
            assert r.status_code not in (401, 403), (method, rule, r.text)


def test_forwarded_for_not_trusted_by_default(empty_dir):
    with _serve(empty_dir, rate_limit_rpm=2) as url:
        # A relayed request (a proxy on this host) is not a local admin, whatever it claims.
        r = requests.post(f"{url}/reload", json={"model_path": "x.gguf"}, timeout=10,
                          headers={"X-Forwarded-For": "127.0.0.1"})
        _is_error(r, 403, "admin_forbidden")
        r = requests.post(f"{url}/reload", json={"model_path": "x.gguf"}, timeout=10)
        _is_error(r, 404, "model_not_found")  # loopback, no forwarding: allowed through
        # Nor does it pick the rate-limit bucket: both spoofed ids share the real address's.
        for fake in ("10.0.0.1", "10.0.0.2"):
            r = requests.get(f"{url}/v1/models", headers={"X-Forwarded-For": fake}, timeout=10)
        _is_error(r, 429, "rate_limit_exceeded")


def test_admin_keys(empty_dir):
    keys = dict(openai_api_keys=("user-key:user",), admin_api_keys=("admin-key:ops",),
                trusted_proxy_hops=1)
    remote = {"X-Forwarded-For": "203.0.113.9"}
    with _serve(empty_dir, **keys) as url:
        body = {"model_path": "x.gguf"}
        r = requests.post(f"{url}/reload", json=body, headers=remote, timeout=10)
        _is_error(r, 401, "invalid_api_key")
        r = requests.post(f"{url}/reload", json=body, timeout=10,
                          headers={**remote, "Authorization": "Bearer user-key"})
        _is_error(r, 403, "admin_key_required")
        r = requests.post(f"{url}/reload", json=body, timeout=10,
                          headers={**remote, "Authorization": "Bearer admin-key"})
        _is_error(r, 404, "model_not_found")  # off-host, but with the admin key: allowed
        # An admin key is also an API key.
        r = requests.get(f"{url}/v1/models", headers={"Authorization": "Bearer admin-key"},
                         timeout=10)
        assert r.status_code == 200


def test_rate_limit_per_client(empty_dir):
    with _serve(empty_dir, rate_limit_rpm=3, openai_api_keys=("ka:a", "kb:b")) as url:
        a, b = {"Authorization": "Bearer ka"}, {"Authorization": "Bearer kb"}
        for _ in range(3):
            assert requests.get(f"{url}/v1/models", headers=a, timeout=10).status_code == 200
        r = requests.get(f"{url}/v1/models", headers=a, timeout=10)
        error = _is_error(r, 429, "rate_limit_exceeded")
        assert error["type"] == "rate_limit_error"
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert requests.get(f"{url}/v1/models", headers=b, timeout=10).status_code == 200
        # Health checks are not counted against anyone.
        for _ in range(5):
            assert requests.get(f"{url}/health", timeout=10).status_code == 503


def test_cors_allowlist(empty_dir):
    with _serve(empty_dir, cors_origins=("https://app.example",), openai_api_key="k") as url:
        ok = requests.get(f"{url}/v1/models", timeout=10, headers={
            "Origin": "https://app.example", "Authorization": "Bearer k"})
        assert ok.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert "X-Request-ID" in ok.headers["Access-Control-Expose-Headers"]
        other = requests.get(f"{url}/v1/models", timeout=10, headers={
            "Origin": "https://evil.example", "Authorization": "Bearer k"})
        assert "Access-Control-Allow-Origin" not in other.headers
        # Preflights carry no key and must still succeed for listed origins.
        pre = requests.options(f"{url}/v1/chat/completions", timeout=10, headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert pre.status_code == 200
        assert pre.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert "authorization" in pre.headers["Access-Control-Allow-Headers"].lower()
    with _serve(empty_dir) as url:  # no CORS_ORIGINS: no CORS headers at all
        r = requests.get(f"{url}/v1/models", headers={"Origin": "https://app.example"},
                         timeout=10)
        assert "Access-Control-Allow-Origin" not in r.headers


def _chunked_post(url: str, path: str, body: bytes) -> tuple[int, dict]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        chunks = (body[i:i + 1000] for i in range(0, len(body), 1000))
        conn.request("POST", path, body=chunks, encode_chunked=True,
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_request_size_limit(empty_dir):
    big = json.dumps({"messages": [{"role": "user", "content": "x" * 5000}]}).encode()
    # Chat takes images: its limit is MAX_MEDIA_REQUEST_BYTES (docs/vision.md), set low too.
    with _serve(empty_dir, max_request_bytes=2000, max_media_request_bytes=2000) as url:
        r = requests.post(f"{url}/v1/chat/completions", data=big, timeout=10,
                          headers={"Content-Type": "application/json"})
        _is_error(r, 413)
        status, body = _chunked_post(url, "/v1/chat/completions", big)
        assert status == 413 and body["error"]["type"] == "invalid_request_error"
        # A small chunked body is read normally (and then fails for want of a model).
        status, body = _chunked_post(url, "/v1/chat/completions", json.dumps(CHAT).encode())
        assert status == 503 and body["error"]["code"] == "no_model_loaded"


def test_max_tokens_cap(empty_dir):
    with _serve(empty_dir, max_tokens_cap=64) as url:
        r = requests.post(f"{url}/v1/chat/completions", json={**CHAT, "max_tokens": 65},
                          timeout=10)
        error = _is_error(r, 400)
        assert "65" in error["message"] and "64" in error["message"]


# -- with the real model ----------------------------------------------------------------------


def test_queue_full_answers_503_at_once(models_dir):
    with running_server(make_settings(models_dir, n_parallel=1, max_queue=0)) as url:
        first_chunk, done = threading.Event(), threading.Event()

        def long_stream() -> None:
            body = {**CHAT, "max_tokens": 200, "stream": True, "temperature": 0}
            with requests.post(f"{url}/v1/chat/completions", json=body, stream=True,
                               timeout=120) as r:
                for _ in r.iter_lines():
                    first_chunk.set()
                    if done.is_set():
                        break  # hanging up aborts the generation

        worker = threading.Thread(target=long_stream)
        worker.start()
        try:
            assert first_chunk.wait(60)
            r = requests.post(f"{url}/v1/chat/completions", json=CHAT, timeout=10)
            _is_error(r, 503, "queue_full")
            assert int(r.headers["Retry-After"]) >= 1
        finally:
            done.set()
            worker.join(120)


def test_context_overflow_and_time_cap(models_dir):
    settings = make_settings(models_dir, n_ctx=256, request_timeout_s=0.3, max_tokens_cap=4096)
    with running_server(settings) as url:
        r = requests.post(f"{url}/v1/chat/completions", timeout=30,
                          json={**CHAT, "max_tokens": 300})
        error = _is_error(r, 400, "context_length_exceeded")
        assert "300" in error["message"] and "256" in error["message"]
        # A generation that runs past REQUEST_TIMEOUT_S is cut off as "length".
        r = requests.post(f"{url}/v1/completions", timeout=60, json={
            "prompt": "Count from one to one hundred: one, two,", "max_tokens": 200,
            "temperature": 0})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["choices"][0]["finish_reason"] == "length"
        assert body["usage"]["completion_tokens"] < 200
