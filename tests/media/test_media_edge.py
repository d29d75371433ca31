"""Images and audio at every family's edge (issue 38), through a real server and each family's
own client, with the default text-only model: every family's image shape reaches the core's
"model does not take images" 400; bad base64, non-images, oversized and too many images are
refused naming the family's own field; remote URLs only where the operator allows them."""

from __future__ import annotations

import socket
import threading
import time

import anthropic
import ollama
import openai
import pytest
import requests
from support.http_server import MODEL, make_settings, running_server
from support.media import b64, image_host, png_bytes, png_data_url, wav_bytes

ASK = [{"type": "text", "text": "What is in this picture?"}]


def image_message(url: str, **spec: object) -> list[dict]:
    return [{"role": "user", "content": [*ASK, {"type": "image_url",
                                                "image_url": {"url": url, **spec}}]}]


def chat(base: str, messages: list[dict], **extra: object) -> requests.Response:
    return requests.post(f"{base}/v1/chat/completions", timeout=60,
                         json={"model": MODEL, "messages": messages, "max_tokens": 4, **extra})


def error_of(resp: requests.Response) -> dict:
    return resp.json()["error"]


@pytest.fixture(scope="module")
def limited(models_dir):
    """Small image limits, and remote images allowed from `localhost` only (which resolves to
    loopback: refused without REMOTE_IMAGE_ALLOW_PRIVATE)."""
    settings = make_settings(models_dir, max_image_bytes=4096, max_images=2, n_parallel=1,
                             remote_image_hosts=("localhost",), prompt_cache="off")
    with running_server(settings) as url:
        yield url


@pytest.fixture(scope="module")
def lan(models_dir):
    """The LAN operator's escape: remote images from 127.0.0.1 allowed."""
    settings = make_settings(models_dir, remote_image_hosts=("127.0.0.1",), n_parallel=1,
                             remote_image_allow_private=True, remote_image_timeout_s=3.0,
                             prompt_cache="off")
    with running_server(settings) as url:
        yield url


# -- every family's shape reaches the core, which refuses images for a text model ----------


def test_media_openai_sdk_image_part_with_detail_is_refused_by_a_text_model(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, max_tokens=4,
                                       messages=image_message(png_data_url(), detail="high"))
    assert err.value.status_code == 400
    assert err.value.code == "model_without_image_input"
    assert err.value.param == "messages.0.content.1"
    assert "messages.0.content.1" in err.value.message
    assert "does not take image input" in err.value.message


def test_media_openai_sdk_audio_part_is_refused_by_a_text_model(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, max_tokens=4, messages=[
            {"role": "user", "content": [*ASK, {"type": "input_audio", "input_audio": {
                "data": b64(wav_bytes()), "format": "wav"}}]}])
    assert err.value.code == "model_without_audio_input"
    assert "does not take audio input" in err.value.message


def test_media_langchain_image_message(server):
    from langchain_core.messages import HumanMessage
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model=MODEL, base_url=f"{server}/v1", api_key="unused", max_retries=0,
                     max_tokens=4)
    with pytest.raises(openai.BadRequestError) as err:
        llm.invoke([HumanMessage(content=[
            {"type": "text", "text": "Describe the image"},
            {"type": "image_url", "image_url": {"url": png_data_url()}}])])
    assert err.value.code == "model_without_image_input"


def test_media_responses_input_image(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, max_output_tokens=16, input=[
            {"role": "user", "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": png_data_url(), "detail": "auto"}]}])
    assert err.value.code == "model_without_image_input"
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, input=[{"role": "user", "content": [
            {"type": "input_image", "file_id": "file-abc123"}]}])
    assert err.value.param == "input.0.content.0.file_id"
    assert "not supported" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, input=[{"role": "user", "content": [
            {"type": "input_image", "image_url": "data:image/png;base64,!!!"}]}])
    assert err.value.param == "input.0.content.0.image_url"


def test_media_anthropic_image_blocks(server):
    client = anthropic.Anthropic(base_url=server, api_key="unused", max_retries=0)

    def ask(source: dict) -> anthropic.BadRequestError:
        with pytest.raises(anthropic.BadRequestError) as err:
            client.messages.create(model=MODEL, max_tokens=4, messages=[{
                "role": "user", "content": [{"type": "text", "text": "What is this?"},
                                            {"type": "image", "source": source}]}])
        assert err.value.status_code == 400
        assert err.value.body["type"] == "error"
        return err.value

    refused = ask({"type": "base64", "media_type": "image/png", "data": b64(png_bytes())})
    assert "does not take image input" in refused.message
    refused = ask({"type": "base64", "media_type": "image/tiff", "data": b64(png_bytes())})
    assert "messages.0.content.1.source.media_type" in refused.message
    refused = ask({"type": "base64", "media_type": "image/png", "data": "not base64!"})
    assert "messages.0.content.1.source.data" in refused.message
    refused = ask({"type": "url", "url": "https://example.com/cat.png"})
    assert "messages.0.content.1.source.url" in refused.message
    assert "REMOTE_IMAGE_HOSTS" in refused.message
    count = requests.post(f"{server}/v1/messages/count_tokens", timeout=60, json={
        "model": MODEL, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": b64(png_bytes())}}]}]})
    assert count.status_code == 400 and "does not take image input" in count.text


def test_media_ollama_images(server):
    client = ollama.Client(host=server)
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model=MODEL, messages=[
            {"role": "user", "content": "What is this?", "images": [png_bytes()]}])
    assert err.value.status_code == 400 and "does not take image input" in err.value.error
    with pytest.raises(ollama.ResponseError) as err:
        client.generate(model=MODEL, prompt="What is this?", images=[png_bytes()])
    assert err.value.status_code == 400 and "does not take image input" in err.value.error
    assert err.value.error.startswith("images.0 ")  # the request's own field
    with pytest.raises(ollama.ResponseError) as err:  # the SDK sends text as base64 too
        client.chat(model=MODEL, messages=[
            {"role": "user", "content": "What is this?", "images": [b"plain text"]}])
    assert err.value.status_code == 400
    assert err.value.error.startswith("messages.0.images.0: ")
    assert "not a PNG, JPEG, WebP or GIF" in err.value.error
    bad = requests.post(f"{server}/api/generate", timeout=60, json={
        "model": MODEL, "prompt": "hi", "images": ["%%%"], "stream": False})
    assert bad.status_code == 400 and bad.json()["error"].startswith("images.0: ")


# -- bad images, at the edge ---------------------------------------------------------------


def test_media_malformed_and_non_images_name_the_field(server):
    where = "messages.0.content.1.image_url.url"
    for url, words in [
        ("data:image/png;base64,@@@@", "not valid base64"),
        ("data:image/png;base64," + b64(b"just some text here"), "not a PNG, JPEG"),
        ("data:text/plain;base64," + b64(png_bytes()), "not an image type"),
        ("data:image/png,rawbytes", "data:<media type>;base64"),
        ("file:///etc/passwd", "base64 data: URL"),
        ("https://example.com/a.png", "REMOTE_IMAGE_HOSTS"),
    ]:
        resp = chat(server, image_message(url))
        assert resp.status_code == 400, url
        error = error_of(resp)
        assert error["param"] == where and words in error["message"], (url, error)
    resp = chat(server, image_message(png_data_url(), detail="ultra"))
    assert resp.status_code == 400
    assert error_of(resp)["param"] == "messages.0.content.1.image_url.detail"


def test_media_oversized_and_too_many_images(limited):
    big = "data:image/png;base64," + b64(png_bytes() + bytes(8000))
    resp = chat(limited, image_message(big))
    assert resp.status_code == 413
    assert error_of(resp)["param"] == "messages.0.content.1.image_url.url"
    assert "4,096" in error_of(resp)["message"]
    three = [{"role": "user", "content": [*ASK, *[
        {"type": "image_url", "image_url": {"url": png_data_url()}}] * 3]}]
    resp = chat(limited, three)
    assert resp.status_code == 400 and error_of(resp)["code"] == "too_many_images"
    assert error_of(resp)["param"] == "messages.0.content.3.image_url.url"


def test_media_body_budget_takes_a_phone_photo_on_image_routes_only(server):
    # The base64 of a ~5 MB JPEG: ~7 MB of body, above MAX_REQUEST_BYTES (1 MiB).
    photo = "data:image/jpeg;base64," + b64(b"\xff\xd8\xff\xe0" + bytes(5_300_000))
    assert len(photo) > 7_000_000
    resp = chat(server, image_message(photo))
    assert resp.status_code == 400 and error_of(resp)["code"] == "model_without_image_input"
    resp = requests.post(f"{server}/v1/embeddings", timeout=60,
                         json={"model": MODEL, "input": photo})
    assert resp.status_code == 413
    resp = requests.post(f"{server}/api/chat", timeout=60, json={
        "model": MODEL, "stream": False,
        "messages": [{"role": "user", "content": "hi", "images": [photo.split(",", 1)[1]]}]})
    assert resp.status_code == 400 and "does not take image input" in resp.json()["error"]


# -- remote images --------------------------------------------------------------------------


def test_media_remote_image_refused_when_not_allowed(server):
    resp = chat(server, image_message("http://127.0.0.1:9/cat.png"))
    assert resp.status_code == 400
    assert error_of(resp)["code"] == "remote_images_disabled"


def test_media_remote_image_refused_for_private_address_even_when_host_allowed(limited):
    with image_host({"/cat.png": (200, {"Content-Type": "image/png"}, png_bytes())}) as (
            base, asked):
        port = base.rsplit(":", 1)[1]
        resp = chat(limited, image_message(f"http://localhost:{port}/cat.png"))
        assert resp.status_code == 400
        assert error_of(resp)["code"] == "image_host_not_allowed"
        assert "non-public address" in error_of(resp)["message"]
        resp = chat(limited, image_message(f"{base}/cat.png"))  # 127.0.0.1 is not listed
        assert resp.status_code == 400 and "not in this server's" in error_of(resp)["message"]
        assert asked == []


def test_media_remote_image_fetched_with_the_lan_escape(lan):
    png = png_bytes()
    routes = {
        "/cat.png": (200, {"Content-Type": "image/png"}, png),
        "/moved": (302, {"Location": "/cat.png"}, b""),
        "/away": (302, {"Location": "http://localhost:1/cat.png"}, b""),
        "/page": (200, {"Content-Type": "text/html"}, b"<html></html>"),
        "/liar": (200, {"Content-Type": "image/png"}, b"<html></html>"),
    }
    with image_host(routes) as (base, asked):
        resp = chat(lan, image_message(f"{base}/cat.png"))
        # Fetched, inlined, and then refused by the text-only model (not by the edge).
        assert resp.status_code == 400 and error_of(resp)["code"] == "model_without_image_input"
        assert asked == ["/cat.png"]
        resp = chat(lan, image_message(f"{base}/moved"))
        assert error_of(resp)["code"] == "model_without_image_input"
        resp = chat(lan, image_message(f"{base}/away"))  # a redirect to a host not listed
        assert "not in this server's" in error_of(resp)["message"]
        for path, words in [("/page", "not an image"), ("/liar", "not a PNG"),
                            ("/missing", "HTTP 404")]:
            resp = chat(lan, image_message(f"{base}{path}"))
            assert resp.status_code == 400 and words in error_of(resp)["message"], path
            assert error_of(resp)["param"] == "messages.0.content.1.image_url.url"


# -- audio ---------------------------------------------------------------------------------


def test_media_transcriptions_refused_clearly_for_a_text_model(client, server):
    with pytest.raises(openai.BadRequestError) as err:
        client.audio.transcriptions.create(model="whisper-1",
                                           file=("hello.wav", wav_bytes(), "audio/wav"))
    assert err.value.param == "file" and "does not take audio input" in err.value.message
    resp = requests.post(f"{server}/v1/audio/transcriptions", timeout=60,
                         data={"model": "whisper-1"},
                         files={"file": ("a.txt", b"plain text", "audio/webm")})
    assert resp.status_code == 400 and "not WAV, MP3" in error_of(resp)["message"]
    resp = requests.post(f"{server}/v1/audio/transcriptions", timeout=60,
                         json={"model": "whisper-1"})
    assert resp.status_code == 400 and "multipart/form-data" in error_of(resp)["message"]
    many = {f"field{i}": "x" for i in range(40)}
    resp = requests.post(f"{server}/v1/audio/transcriptions", timeout=60,
                         data={"model": "whisper-1", **many},
                         files={"file": ("a.wav", wav_bytes(), "audio/wav")})
    assert resp.status_code == 413
    resp = requests.post(f"{server}/v1/audio/transcriptions", timeout=60,
                         data={"model": "whisper-1", "response_format": "srt"},
                         files={"file": ("a.wav", wav_bytes(), "audio/wav")})
    assert resp.status_code == 400 and error_of(resp)["param"] == "response_format"


def test_media_remote_fetch_has_one_deadline_for_a_dripping_host(lan):
    # A host that answers its headers a byte every 0.2 s: each read is quick, the whole is not.
    # REMOTE_IMAGE_TIMEOUT_S (3 s on this server) bounds the whole fetch.
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn:
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n" * 100:
                if stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.2)

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        resp = chat(lan, image_message(f"http://127.0.0.1:{listener.getsockname()[1]}/a.png"))
    finally:
        stop.set()
        listener.close()
    assert resp.status_code == 400 and error_of(resp)["code"] == "image_fetch_timeout"
    assert time.monotonic() - started < 30  # generous: 3 s deadline on shared cores


@pytest.mark.parametrize("address, public", [
    ("8.8.8.8", True), ("2606:4700::1111", True),
    ("127.0.0.1", False), ("::1", False), ("::ffff:127.0.0.1", False), ("10.1.2.3", False),
    ("172.16.0.1", False), ("192.168.1.1", False), ("169.254.169.254", False),
    ("100.64.0.1", False), ("fe80::1", False), ("fd00::1", False), ("224.0.0.1", False),
    ("0.0.0.0", False),
])
def test_media_remote_addresses_that_are_never_fetched(address, public):
    from slm_api.media.remote import address_allowed

    assert address_allowed(address, allow_private=False) is public
    # The LAN escape opens private ranges and loopback, never multicast or "any".
    assert address_allowed(address, allow_private=True) is (
        address not in ("224.0.0.1", "0.0.0.0"))
