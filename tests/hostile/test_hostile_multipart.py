"""/v1/audio/transcriptions' multipart form as an attacker sends it (its audio duration cap is
the audio work's; here only the form's own bounds): too many parts, oversized text fields,
broken framing, a body that never ends its last part. Each is a 4xx in OpenAI's error shape,
never a 500, and /health answers within 1 s during and after.
"""

from __future__ import annotations

import socket
import time

import pytest
import requests
from support.media import wav_bytes

BOUNDARY = "xX-hostile-Xx"


def form(*parts: tuple[str, str | None, bytes]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename else "")
        out += (f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n").encode()
        out += data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def post(url: str, body: bytes, content_type: str | None = None) -> requests.Response:
    return requests.post(f"{url}/v1/audio/transcriptions", data=body, timeout=60, headers={
        "Content-Type": content_type or f"multipart/form-data; boundary={BOUNDARY}"})


def healthy(url: str) -> None:
    start = time.monotonic()
    assert requests.get(f"{url}/health", timeout=5).status_code == 200
    assert time.monotonic() - start < 1.0


FILE = ("file", "a.wav", wav_bytes())


@pytest.mark.parametrize("name, body, content_type, status", [
    ("too many parts", form(FILE, *[(f"f{k}", None, b"x") for k in range(40)]), None, 413),
    ("a text field past 512 KiB", form(FILE, ("prompt", None, b"p" * (520 << 10))), None, 413),
    ("many file parts", form(*[FILE] * 20), None, 413),
    ("no boundary", form(FILE), "multipart/form-data", 400),
    ("an unterminated part", form(FILE)[:-40], None, 400),
    ("garbage", b"\x00\xff" * 5000, None, 400),
    ("no file part", form(("model", None, b"whisper-1")), None, 400),
])
def test_hostile_transcription_forms(server: str, name: str, body: bytes,
                                     content_type: str | None, status: int) -> None:
    r = post(server, body, content_type)
    assert r.status_code == status, (name, r.status_code, r.text[:300])
    assert set(r.json()) == {"error"} and r.json()["error"]["message"], r.text
    healthy(server)


def test_hostile_transcription_form_that_stops_mid_part(server: str) -> None:
    # The head promises more body than comes: the reader waits on the client's socket, not
    # on the server's other work.
    host, port = server.removeprefix("http://").split(":")
    body = form(FILE)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall((f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {host}\r\n"
                      f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                      f"Content-Length: {len(body) + 100000}\r\n\r\n").encode() + body)
        healthy(server)
        for _ in range(3):
            healthy(server)
            time.sleep(0.3)
    healthy(server)
