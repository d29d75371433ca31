"""The page at `/` takes an image (picked or pasted), shows it as a thumbnail and sends it as an
`image_url` part with a data URL; with the default text-only model the server's 400 is shown.
Headless Chromium through playwright, as tests/admin/test_web_page.py."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from support.browser import chromium
from support.media import png_bytes


@pytest.fixture(scope="module")
def page_in_chromium() -> Iterator[object]:
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1200, "height": 760})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.errors = errors
        yield page


def sent_bodies(page) -> list[dict]:
    bodies: list[dict] = []
    page.on("request", lambda req: bodies.append(json.loads(req.post_data))
            if req.url.endswith("/v1/chat/completions") else None)
    return bodies


def send_and_wait(page, text: str) -> None:
    page.fill("#chat-input", text)
    page.press("#chat-input", "Enter")
    page.wait_for_function(
        "() => { const r = [...document.querySelectorAll('.msg.assistant')].pop();"
        " return r && r.dataset.state !== 'streaming'; }", timeout=120_000)


def test_media_page_sends_a_picked_image_as_a_data_url(server, page_in_chromium):
    page = page_in_chromium
    bodies = sent_bodies(page)
    png = png_bytes((10, 120, 200), size=16)
    page.goto(f"{server}/")
    page.wait_for_function("() => document.querySelector('#model').value !== ''")
    page.set_input_files("#image-file", files=[
        {"name": "dot.png", "mimeType": "image/png", "buffer": png}])
    thumb = page.locator("#attachments img.thumb")
    thumb.wait_for()
    expected = "data:image/png;base64," + base64.b64encode(png).decode()
    assert thumb.get_attribute("src") == expected

    send_and_wait(page, "What colour is this?")
    sent = bodies[-1]["messages"][-1]
    assert sent["content"] == [{"type": "text", "text": "What colour is this?"},
                               {"type": "image_url", "image_url": {"url": expected}}]
    # Shown with the message that sent it; the attachment is spent.
    assert page.locator(".msg.user img.thumb").last.get_attribute("src") == expected
    assert page.locator("#attachments").is_hidden()
    # The default model takes text only: the server's refusal is on the page, as text.
    reply = page.locator(".msg.assistant").last
    assert reply.get_attribute("data-state") == "error"
    assert "does not take image input" in reply.locator(".error").text_content()

    # Without an image the next message is plain text again (the refused one was dropped).
    page.fill("#max-tokens", "2")
    send_and_wait(page, "Hello")
    assert bodies[-1]["messages"] == [{"role": "user", "content": "Hello"}]
    assert page.errors == []


def test_media_page_takes_a_pasted_image(server, page_in_chromium):
    page = page_in_chromium
    page.goto(f"{server}/")
    png = png_bytes((250, 200, 0))
    page.evaluate("""(b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], "pasted.png", {type: "image/png"}));
        document.getElementById("chat-input").dispatchEvent(
            new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true}));
    }""", base64.b64encode(png).decode())
    thumb = page.locator("#attachments img.thumb")
    thumb.wait_for()
    assert thumb.get_attribute("src") == "data:image/png;base64," + base64.b64encode(png).decode()
    page.click("#attachments button")
    assert page.locator("#attachments").is_hidden()
