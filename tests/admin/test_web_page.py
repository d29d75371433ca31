"""The page at `/`, in a real browser: headless Chromium (Debian package `chromium`, installed by
scripts/system-deps.sh) driven by playwright, against the real server and model. Screenshots go
to the test's tmp_path; their paths are printed (pytest -s, or the captured output of a failure).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
from support.browser import chromium
from support.http_server import make_settings, model_folder, running_server
from support.oracle import schema_problems

KEY = "sk-page-test"


# -- the page as files (no browser) --------------------------------------------------------


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)


def test_page_and_its_assets_come_from_this_server(server):
    r = requests.get(f"{server}/", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    # The browser may load nothing from elsewhere, and no inline script runs.
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert "script-src 'self';" in r.headers["Content-Security-Policy"]
    parser = _Assets()
    parser.feed(r.text)
    assets = [u for u in parser.urls if u.startswith("/web/")]
    assert len(assets) == 2  # style.css, app.js
    # Local paths only (the favicon is an empty data: URL, so the browser asks for none).
    assert all((u.startswith("/") and not u.startswith("//")) or u == "data:,"
               for u in parser.urls), parser.urls
    for url in assets:
        asset = requests.get(f"{server}{url}", timeout=10)
        assert asset.status_code == 200 and asset.content
        assert not re.search(r"https?://", asset.text), f"{url} refers to another origin"


def test_asset_route_stays_in_its_folder(server):
    for path in ("/web/../__init__.py", "/web/%2e%2e/__init__.py", "/web/nope.js"):
        assert requests.get(f"{server}{path}", timeout=10).status_code == 404


def test_page_is_open_when_the_api_needs_a_key(tmp_path: Path):
    with running_server(make_settings(tmp_path, openai_api_key=KEY), load_model=False) as url:
        assert requests.get(f"{url}/", timeout=10).status_code == 200
        assert requests.get(f"{url}/web/app.js", timeout=10).status_code == 200
        assert requests.get(f"{url}/v1/models", timeout=10).status_code == 401


# -- in Chromium ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.errors = errors
    yield page
    context.close()


def screenshot(page, path: Path) -> None:
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")


def chat_in_page(page, text: str) -> dict:
    """Types `text`, sends it with Enter, waits for the reply to finish; returns what the page
    showed: the reply, every text the reply had while streaming, the stats, the meta line."""
    page.evaluate("""() => {
        window.__partials = [];
        new MutationObserver(() => {
            const reply = [...document.querySelectorAll('.msg.assistant')].pop();
            if (reply && reply.dataset.state === 'streaming')
                window.__partials.push(reply.querySelector('.body').textContent);
        }).observe(document.getElementById('messages'),
                   {subtree: true, childList: true, characterData: true});
    }""")
    page.fill("#chat-input", text)
    page.press("#chat-input", "Enter")
    reply = page.locator(".msg.assistant").last
    page.wait_for_function(
        "() => { const r = [...document.querySelectorAll('.msg.assistant')].pop();"
        " return r && r.dataset.state !== 'streaming'; }", timeout=300_000)
    return {
        "state": reply.get_attribute("data-state"),
        "text": reply.locator(".body").text_content(),
        "partials": page.evaluate("window.__partials"),
        "meta": reply.locator(".meta").text_content(),
        "ttft": page.text_content("#stat-ttft"),
        "tps": page.text_content("#stat-tps"),
        "tokens": page.text_content("#stat-tokens"),
    }


def set_range(page, selector: str, value: float) -> None:
    page.eval_on_selector(selector, "(el, v) => { el.value = v; el.dispatchEvent("
                          "new Event('input')); }", str(value))


def test_chat_streams_the_reply_in_chromium(server, page, tmp_path: Path):
    from support.http_server import MODEL

    page.goto(f"{server}/")
    page.wait_for_function("() => document.querySelector('#model').value !== ''")
    assert page.input_value("#model") == MODEL
    set_range(page, "#temperature", 0)
    # A reply long enough (48 tokens) to span several network reads on a fast machine too.
    page.fill("#max-tokens", "48")
    shown = chat_in_page(page, "Tell me about the sun.")
    screenshot(page, tmp_path / "web-chat.png")

    assert shown["state"] == "done", shown
    # The same request straight to the API, greedy: the page shows exactly the model's reply.
    api = requests.post(f"{server}/v1/chat/completions", timeout=120, json={
        "model": MODEL, "messages": [{"role": "user", "content": "Tell me about the sun."}],
        "temperature": 0, "max_tokens": 48}).json()
    assert shown["text"] == api["choices"][0]["message"]["content"]
    assert shown["text"].strip()
    # Streamed: the reply grew on the page over several updates, each a prefix of the whole.
    growing = [p for p in dict.fromkeys(shown["partials"]) if p]
    assert len(growing) >= 3, growing
    assert all(shown["text"].startswith(p) for p in growing)
    tokens = api["usage"]["completion_tokens"]
    assert shown["tokens"] == str(tokens)
    assert re.fullmatch(r"\d+ ms", shown["ttft"]) and float(shown["tps"]) > 0
    assert f"{tokens} tokens" in shown["meta"]
    assert f"finish: {api['choices'][0]['finish_reason']}" in shown["meta"]
    assert page.errors == []

    # A second turn carries the conversation: the page sends the whole history.
    page.fill("#max-tokens", "4")
    second = chat_in_page(page, "And 3+3?")
    assert second["state"] == "done" and second["text"].strip()
    assert page.locator(".msg.user").count() == 2


def test_extract_tab_returns_json_that_fits(server, page, tmp_path: Path):
    page.goto(f"{server}/")
    page.click("#tab-extract")
    page.select_option("#schema-preset", "Person")
    page.fill("#extract-text", "Alice is 31 and lives in Lyon.")
    page.click("#extract-run")
    page.wait_for_function("() => !document.querySelector('#extract-run').disabled"
                           " && document.querySelector('#extract-output').textContent !== '…'",
                           timeout=120_000)
    screenshot(page, tmp_path / "web-extract.png")
    schema = json.loads(page.input_value("#extract-schema"))
    data = json.loads(page.text_content("#extract-output"))
    assert schema_problems(data, schema) == []
    assert data["name"] == "Alice" and data["age"] == 31
    assert "fits the schema" in page.text_content("#extract-stats")
    assert page.errors == []


def test_extract_tab_shows_the_api_error(server, page):
    page.goto(f"{server}/")
    page.click("#tab-extract")
    page.fill("#extract-schema", '{"type": "object", "patternProperties": {"^a": {}}}')
    page.click("#extract-run")
    page.wait_for_function("() => document.querySelector('#extract-output')"
                           ".classList.contains('error')")
    text = page.text_content("#extract-output")
    assert text.startswith("Error (invalid_schema):") and "patternProperties" in text


def test_page_sends_the_api_key_and_remembers_it(models_dir: Path, tmp_path: Path, page):
    from support.http_server import MODEL

    folder = tmp_path / "models"
    folder.mkdir()
    settings = make_settings(model_folder(folder, models_dir), openai_api_key=KEY)
    with running_server(settings) as url:
        page.goto(f"{url}/")
        page.wait_for_selector("#banner:not([hidden])")
        assert "needs an API key" in page.text_content("#banner")
        page.fill("#api-key", KEY)
        page.press("#api-key", "Tab")  # leaving the field commits it (a change event)
        page.wait_for_function("() => document.querySelector('#model').value !== ''")
        assert page.input_value("#model") == MODEL
        assert page.is_hidden("#banner")
        # Kept in this browser: a reload finds the key and the API answers.
        page.reload()
        assert page.input_value("#api-key") == KEY
        page.fill("#max-tokens", "8")
        shown = chat_in_page(page, "Say hello.")
        screenshot(page, tmp_path / "web-key.png")
        assert shown["state"] == "done" and shown["text"].strip(), shown
    # The 401 before the key was typed is the only console error.
    assert all("401" in e for e in page.errors), page.errors
