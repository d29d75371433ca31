"""Malformed and hostile input at every route (hypothesis, guided by /openapi.json).

For each route the test sends bodies built from the route's request schema with hostile values
mixed in (path traversal, huge and negative numbers, wrong types, control characters), arbitrary
JSON, and raw bytes under various content types. Every answer must be a non-5xx (503 only for
"no model loaded" / "queue full"), with no traceback in the body; nothing outside MODELS_DIR
may be read or written; and a normal chat must still work at the end. It runs once against a
server with no model and once against the real default model (generations capped at 16 tokens).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.http_server import MODEL, make_settings, running_server

EXAMPLES_PER_ROUTE = 20
# Routes that run the model get fewer: each example may generate (up to 16 tokens).
EXAMPLES_PER_GENERATING_ROUTE = 12
GENERATING = {"/v1/chat/completions", "/v1/completions", "/v1/extract", "/restore_cache"}
ALLOWED_503 = {"no_model_loaded", "queue_full"}
# A max_tokens too small for the schema is the client's 400 (max_tokens_too_small). The one
# 5xx: this server sets REQUEST_TIMEOUT_S=5 to bound the run, and /v1/extract past it on a busy
# machine is a 504 (the operator's time limit, not the client's choice).
ALLOWED_5XX: set[tuple[int, str]] = {(504, "timeout")}
BAIT = "BAIT-7f3a-do-not-read"
# Several are chosen to be dangerous only if a check is missing: values in the middle of the
# int range (say n_ctx = 2**20) are left out on purpose, as a real allocation of that size
# could exhaust this machine's memory rather than fail.
EDGE_INTS = [-(2**63), -(2**31), -1, 0, 1, 2, 16, 17, 2**31 - 1, 2**31, 2**32 + 16, 2**63,
             10**30]
ALWAYS_SEND = {"content"}
EDGE_FLOATS = [-1e308, -2.5, -0.0, 0.5, 1.0, 2.0000001, 1e308]


def _hostile_strings(outside: Path) -> list[str]:
    return [
        "", " ", "\x00", "nul\x00.gguf", "\u202e\u0000\ud7ff", "😀" * 10, "a" * 3000,
        "../../etc/passwd", "/etc/passwd", "../../../../../../etc/hostname", "..\\..\\boot.ini",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "file:///etc/passwd", "~/.ssh/id_rsa",
        f"../{outside.name}/bait.gguf", str(outside / "bait.gguf"), f"../{outside.name}/bait",
        MODEL, f"{MODEL}.gguf", "models/../" + MODEL + ".gguf", ".", "..", "/", "{{7*7}}",
        "${jndi:ldap://127.0.0.1:9/x}", "<script>alert(1)</script>", "' OR 1=1 --", "null",
        "root ::= [a]*", "-1", "1e999",
    ]


def _json_values(strings: list[str]) -> st.SearchStrategy:
    scalars = (st.none() | st.booleans() | st.sampled_from(EDGE_INTS)
               | st.integers(-3, 40) | st.sampled_from(EDGE_FLOATS)
               | st.sampled_from(strings) | st.text(max_size=30))
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
            st.sampled_from(strings) | st.text(max_size=10), inner, max_size=4),
        max_leaves=12,
    )


class _Shaped:
    """Values shaped like a JSON schema. `hostile=False` keeps to the schema's types and bounds
    (with hostile *strings*), so bodies get past validation into the engine; `hostile=True`
    swaps any field for any JSON value and ignores bounds."""

    def __init__(self, defs: dict, strings: list[str], *, hostile: bool):
        self.defs, self.strings, self.hostile = defs, strings, hostile
        self.anything = _json_values(strings)

    def of(self, schema: dict, depth: int = 0) -> st.SearchStrategy:
        value = self._of(schema, depth)
        if self.hostile and depth > 0:
            return st.integers(0, 3).flatmap(lambda i: self.anything if i == 0 else value)
        return value

    def _of(self, schema: dict, depth: int) -> st.SearchStrategy:
        if depth > 6:
            return self.anything if self.hostile else st.none()
        if "$ref" in schema:
            return self._of(self.defs[schema["$ref"].rsplit("/", 1)[1]], depth + 1)
        if "anyOf" in schema:
            # null is every optional field's default; sending it explicitly mostly trips
            # cross-field checks (a message needs content), so the valid mode leaves it out.
            options = [s for s in schema["anyOf"] if self.hostile or s.get("type") != "null"]
            return st.one_of([self._of(s, depth + 1) for s in options or schema["anyOf"]])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        if "const" in schema:
            return st.just(schema["const"])
        kind = schema.get("type")
        if kind == "object" and schema.get("properties"):
            return self._object(schema, depth)
        if kind == "array":
            items = self.of(schema.get("items", {}), depth + 1)
            low = 0 if self.hostile else schema.get("minItems", 0)
            high = max(low, min(schema.get("maxItems", 3), 3))
            return st.lists(items, min_size=low, max_size=high)
        if kind == "string":
            low, high = schema.get("minLength", 0), schema.get("maxLength", 40)
            pool = self.strings if self.hostile else [
                x for x in self.strings if low <= len(x) <= high]
            return st.sampled_from(pool) | st.text(min_size=low, max_size=min(high, 40))
        if kind in ("integer", "number"):
            return self._number(schema, kind)
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        if kind == "object":
            return st.dictionaries(st.text(max_size=8), self.anything, max_size=3)
        return self.anything

    def _object(self, schema: dict, depth: int) -> st.SearchStrategy:
        props, required = schema["properties"], schema.get("required", [])
        fixed = {k: self.of(props[k], depth + 1) for k in required}
        optional = sorted(k for k in props if k not in required)
        if self.hostile:
            return st.fixed_dictionaries(
                fixed, optional={k: self.of(props[k], depth + 1) for k in optional})
        # A few optional fields at a time: each one is a chance to be refused. Fields that
        # other fields make necessary (a message's content) always come.
        fixed.update({k: self.of(props[k], depth + 1) for k in optional if k in ALWAYS_SEND})
        optional = [k for k in optional if k not in ALWAYS_SEND]
        return st.tuples(
            st.fixed_dictionaries(fixed),
            st.lists(st.sampled_from(optional), max_size=3, unique=True) if optional
            else st.just([]),
        ).flatmap(lambda pair: st.fixed_dictionaries(
            {**{k: st.just(v) for k, v in pair[0].items()},
             **{k: self.of(props[k], depth + 1) for k in pair[1]}}))

    def _number(self, schema: dict, kind: str) -> st.SearchStrategy:
        edges = EDGE_INTS if kind == "integer" else EDGE_FLOATS
        if self.hostile:
            return st.sampled_from(edges) | st.integers(-3, 40)
        low = schema.get("minimum", schema.get("exclusiveMinimum", -3))
        high = schema.get("maximum", schema.get("exclusiveMaximum", low + 64))
        if kind == "integer":
            low = int(low) + (1 if "exclusiveMinimum" in schema else 0)
            high = int(high) - (1 if "exclusiveMaximum" in schema else 0)
            return st.integers(low, max(low, high))
        return st.floats(low, high, exclude_min="exclusiveMinimum" in schema,
                         exclude_max="exclusiveMaximum" in schema, allow_nan=False)


def _bodies(schema: dict | None, defs: dict, strings: list[str]):
    """(body bytes, content type): mostly schema-shaped JSON, some hostile, some not JSON."""
    anything = _json_values(strings)
    valid = _Shaped(defs, strings, hostile=False).of(schema) if schema else anything
    hostile = _Shaped(defs, strings, hostile=True).of(schema) if schema else anything
    as_json = st.just("application/json")
    raw = st.binary(max_size=200) | st.sampled_from(
        [b"", b"{", b"[1,2", b'{"a":' * 50, b"\xff\xfe", b"null", b'{"messages": NaN}',
         # Nested past any recursion limit; a lone surrogate (valid JSON, not Unicode).
         b'{"messages": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", b'{"input": "\\ud800"}',
         b'{"model": "x", "messages": [{"role": "user", "content": "\\udfff"}]}'])
    odd_types = st.sampled_from(
        ["text/plain", None, "application/x-www-form-urlencoded",
         "multipart/form-data; boundary=x", "application/json; charset=latin-1"])
    kinds = [
        st.tuples(valid.map(json.dumps), as_json),
        st.tuples(valid.map(json.dumps), as_json),
        st.tuples(valid.map(json.dumps), as_json),
        st.tuples((hostile | anything).map(json.dumps), as_json),
        st.tuples(raw | valid.map(json.dumps).map(str.encode), odd_types | as_json),
    ]
    return st.integers(0, len(kinds) - 1).flatmap(lambda i: kinds[i]).map(
        lambda pair: (pair[0].encode() if isinstance(pair[0], str) else pair[0], pair[1]))


def _snapshot(root: Path, skip: tuple[Path, ...]) -> dict[str, tuple[int, int]]:
    files = {}
    for path in root.rglob("*"):
        if path.is_file() and not any(path.is_relative_to(s) for s in skip):
            stat = path.stat()
            files[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return files


@pytest.fixture(scope="module", params=["no_model", "model"])
def target(request, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    models, outside = root / "models", root / "outside"
    models.mkdir()
    outside.mkdir()
    (outside / "bait.gguf").write_text(BAIT)
    (outside / "bait").write_text(BAIT)
    with_model = request.param == "model"
    if with_model:
        source = request.getfixturevalue("models_dir") / f"{MODEL}.gguf"
        os.link(source, models / source.name)
    overrides = dict(max_tokens_cap=16, request_timeout_s=5.0, n_parallel=2, n_ctx=512,
                     allowed_repos=("slm-api-fuzz/never-generated",), max_request_bytes=65536)
    config = make_settings(models, **overrides)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # belt and braces: nothing listens
        with running_server(config, load_model=with_model) as url:
            spec = requests.get(f"{url}/openapi.json", timeout=10).json()
            # The server's own folders: where it is configured to write (the Responses store
            # lives in DATA_DIR).
            skip = (models, config.hf_home, config.cache_dir, config.data_dir)
            before = _snapshot(root, skip)
            yield dict(url=url, spec=spec, outside=outside, with_model=with_model,
                       root=root, skip=skip, before=before)


def _routes() -> list[tuple[str, str]]:
    # The same walk of the url_map as /openapi.json; test_docs checks they agree.
    from slm_api.app import create_app

    folder = Path(os.environ.get("TMPDIR", "/tmp")) / "slm-api-fuzz-routes"
    app = create_app(make_settings(folder), load_model=False)
    return sorted(
        (re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    )


def _check(r: requests.Response, route: str) -> None:
    text = r.text
    assert "Traceback" not in text and 'File "/' not in text, f"{route}: traceback leaked"
    assert BAIT not in text and "root:x:0:0" not in text, f"{route}: a file outside leaked"
    if r.status_code == 503 and route in ("GET /health", "GET /ready"):
        assert r.json()["status"] == "no_model"  # its documented "not ready" answer
        return
    is_json = r.headers.get("Content-Type", "").startswith("application/json")
    if route.startswith("POST /v1/messages"):
        # Anthropic's routes answer in Anthropic's envelope, which has no code: its 503 for
        # "no model" and "queue full" alike is overloaded_error.
        if r.status_code >= 400 and is_json:
            body = r.json()
            assert body["type"] == "error" and set(body["error"]) >= {"type", "message"}, text
            assert r.status_code < 500 or body["error"]["type"] == "overloaded_error", text
        return
    if route.split(" ", 1)[-1].startswith("/api/"):
        # Ollama's routes answer {"error": "<message>"}, as its clients parse; no code, so a
        # 5xx may only be the 503 of "no model" / "busy".
        if r.status_code >= 400 and is_json:
            error = r.json().get("error")
            assert isinstance(error, str) and error, f"{route}: {text}"
            assert r.status_code < 500 or r.status_code == 503, f"{route}: {text}"
        if "ndjson" in r.headers.get("Content-Type", ""):
            assert "internal" not in text, f"{route}: {text[-500:]}"
        return
    if r.status_code >= 500:
        code = r.json().get("error", {}).get("code") if is_json else None
        assert (r.status_code == 503 and code in ALLOWED_503) or (
            (r.status_code, code) in ALLOWED_5XX), f"{route}: {r.status_code} {text}"
    if r.status_code >= 400 and is_json:
        assert set(r.json()["error"]) >= {"message", "type", "code"}, f"{route}: {text}"
    if "text/event-stream" in r.headers.get("Content-Type", ""):
        assert "internal_error" not in text, f"{route}: {text[-500:]}"


@pytest.mark.parametrize("path, method", _routes())
def test_hostile_input(target, path, method):
    spec_op = target["spec"]["paths"][path][method]
    defs = target["spec"]["components"]["schemas"]
    schema = (spec_op.get("requestBody", {}).get("content", {}).get("application/json", {})
              .get("schema"))
    strings = _hostile_strings(target["outside"])
    params = re.findall(r"{([^}]+)}", path)

    examples = EXAMPLES_PER_GENERATING_ROUTE if path in GENERATING else EXAMPLES_PER_ROUTE

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(body=_bodies(schema, defs, strings),
           args=st.lists(st.sampled_from(strings) | st.text(max_size=20),
                         min_size=len(params), max_size=len(params)))
    def one(body: tuple[bytes, str | None], args: list[str]) -> None:
        url_path = path
        for name, value in zip(params, args, strict=True):
            url_path = url_path.replace("{" + name + "}", quote(value, safe="") or "x")
        data, content_type = body
        headers = {"Content-Type": content_type} if content_type else {}
        r = requests.request(method.upper(), target["url"] + url_path, data=data,
                             headers=headers, timeout=60)
        _check(r, f"{method.upper()} {url_path}")
        if os.environ.get("FUZZ_VERBOSE"):
            print("FUZZ", method.upper(), path, r.status_code, r.text[:100].replace("\n", " "))

    one()


def test_still_serving_and_nothing_outside_touched(target):
    # Runs after the fuzzing above (same module-scoped server).
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}
    r = requests.post(f"{target['url']}/v1/chat/completions", json=chat, timeout=60)
    if target["with_model"]:
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["role"] == "assistant"
    else:
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert requests.get(f"{target['url']}/metrics", timeout=10).status_code == 200
    assert (target["outside"] / "bait.gguf").read_text() == BAIT
    after = _snapshot(target["root"], target["skip"])
    assert after == target["before"], "files outside MODELS_DIR appeared or changed"
