"""/openapi.json, /docs and /redoc through real HTTP: a valid spec covering every route, and
UIs whose assets come from this server (no CDN)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
from openapi_spec_validator import validate
from support.http_server import make_settings, running_server

from slm_api.app import create_app


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("docs-models")


@pytest.fixture(scope="module")
def url(folder: Path):
    with running_server(make_settings(folder, openai_api_key="k"), load_model=False) as base:
        yield base


@pytest.fixture(scope="module")
def spec(url: str) -> dict:
    r = requests.get(f"{url}/openapi.json", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    return r.json()


def _routes(folder: Path) -> list[tuple[str, str, str]]:
    app = create_app(make_settings(folder), load_model=False)
    return [
        (re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule), method.lower(), rule.endpoint)
        for rule in app.url_map.iter_rules()
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
    ]


def test_spec_is_valid_openapi(spec):
    validate(spec)  # raises on any violation of the OpenAPI 3.1 schema
    assert spec["openapi"].startswith("3.1")


def test_every_route_is_documented(spec, folder):
    routes = _routes(folder)
    assert len(routes) > 20
    for path, method, endpoint in routes:
        assert method in spec["paths"].get(path, {}), f"{method.upper()} {path} ({endpoint})"


def test_every_route_has_a_typed_contract(spec, folder):
    # A body route without a request model, or a JSON route without a response model, fails
    # here: @contract(...) on the view (api/core/contract.py) is how a new route is documented.
    for path, method, endpoint in _routes(folder):
        op = spec["paths"][path][method]
        if method in ("post", "put", "patch"):
            # JSON, or a form (/v1/audio/transcriptions' multipart upload): typed either way.
            content = op["requestBody"]["content"]
            assert set(content) <= {"application/json", "multipart/form-data"}, endpoint
            body = next(iter(content.values()))["schema"]
            assert body["$ref"].rsplit("/", 1)[1] in spec["components"]["schemas"], endpoint
        success = next(v for k, v in op["responses"].items() if k.startswith("2"))
        json_body = success["content"].get("application/json")
        if json_body is not None and not endpoint.startswith("docs."):
            assert "$ref" in json_body["schema"], f"{endpoint}: no response model"
        assert op["summary"] and op["summary"] != op.get("description"), endpoint


def test_summaries_are_per_operation(spec):
    summaries = [op["summary"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(set(summaries)) >= len(summaries) - 2  # not one module docstring repeated
    chat = spec["paths"]["/v1/chat/completions"]["post"]
    assert chat["summary"] == "Create a chat completion."
    assert chat["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ChatCompletion")
    assert "ChatCompletionChunk" in chat["responses"]["200"]["content"]["text/event-stream"][
        "schema"]["description"]
    assert "text/plain" in spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]


def test_no_key_needed_is_documented_when_none_is_configured(folder):
    with running_server(make_settings(folder), load_model=False) as base:
        open_spec = requests.get(f"{base}/openapi.json", timeout=10).json()
        chat = open_spec["paths"]["/v1/chat/completions"]["post"]
        assert "security" not in chat and "No key needed" in chat["description"]
        assert "security" not in open_spec["paths"]["/reload"]["post"]
        r = requests.post(f"{base}/extras/tokenize", json={"input": "hi"}, timeout=10)
        # What the document says: no key needed, so past security to the missing model.
        assert (r.status_code, r.json()["error"]["code"]) == (503, "no_model_loaded"), r.text
        # Allow names only documented methods (no HEAD/OPTIONS).
        r = requests.delete(f"{base}/v1/chat/completions", timeout=10)
        assert (r.status_code, r.headers["Allow"]) == (405, "POST")


def test_schemas_follow_the_pydantic_models(spec):
    schemas = spec["components"]["schemas"]
    chat = schemas["ChatCompletionRequest"]
    assert "messages" in chat["required"]
    assert chat["properties"]["messages"]["items"]["$ref"] == "#/components/schemas/ChatMessage"
    assert chat["properties"]["temperature"]["maximum"] == 2.0
    # Aliases are what clients send: "schema", not the Python attribute "schema_".
    assert "schema" in schemas["ExtractRequest"]["properties"]
    assert "async" in schemas["LoadRequest"]["properties"]
    stream = spec["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert "text/event-stream" in stream


def test_security_is_described(spec):
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["paths"]["/v1/chat/completions"]["post"]["security"] == [{"bearerAuth": []}]
    assert spec["paths"]["/health"]["get"]["security"] == []
    assert "ADMIN_API_KEYS" in spec["paths"]["/reload"]["post"]["description"]


@pytest.mark.parametrize("page, needle", [("/docs", "SwaggerUIBundle"), ("/redoc", "<redoc")])
def test_ui_pages_use_only_local_assets(url, page, needle):
    r = requests.get(url + page, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert needle in r.text and "/openapi.json" in r.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert assets
    for asset in assets:
        assert asset.startswith("/"), f"{asset} is not served by this server"
        got = requests.get(url + asset, timeout=10)
        assert got.status_code == 200 and len(got.content) > 10_000, asset
        assert got.headers["Content-Type"].split(";")[0] in ("text/css", "text/javascript",
                                                               "application/javascript")


def test_asset_routes_stay_in_their_folders(url):
    # The client normalises plain dots (GET /config.py), and a path starting with an empty
    # segment matches no asset route: unknown routes, behind the key (401). Encoded dots and
    # slashes reach the asset route, which refuses to leave its folder (404).
    answers = {"/docs/swagger-ui/../../../config.py": 401, "/docs/redoc/%2e%2e/%2e%2e/app.py": 404,
               "/docs/swagger-ui/..%2f..%2fsecurity.py": 404, "/docs/redoc//etc/passwd": 401}
    for path, status in answers.items():
        r = requests.get(url + path, timeout=10)
        assert r.status_code == status, (path, r.status_code, r.text)
        assert "import" not in r.text and "root:" not in r.text
