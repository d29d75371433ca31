"""Inline media as the bytes they claim to be: base64 checked, sizes bounded before decoding,
the image format read from its magic bytes (a client's media type is only a claim).

Pure functions raising the one error base (slm_api.errors), each naming the field it was
given (`param`), so every family's refusal names its own field."""

from __future__ import annotations

import base64
import binascii
import re

from slm_api.errors import APIError

# The formats the core decodes (slm_api/media/decode.py): PNG, JPEG, WebP, GIF (first frame).
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
AUDIO_FORMATS = ("wav", "mp3")
MAX_DATA_URL_HEADER = 256  # `data:image/png;charset=...;name=...;base64,`: short in any client
# Line breaks of MIME-style base64 (76-character lines: Python's base64.encodebytes, openssl,
# mail tools) and stray spaces: dropped before the strict decode, which refuses anything else.
_BASE64_SPACE = re.compile(r"[ \t\r\n]+")
_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^;,]*)*?);base64,",
                       re.IGNORECASE)


def image_type(raw: bytes) -> str | None:
    """The image format `raw` starts with, as a media type; None for anything else."""
    if raw.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if raw.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if raw[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "image/webp"
    return None


def decode_base64(data: str, *, param: str, max_bytes: int, what: str = "image") -> bytes:
    """`data` decoded, or a 413 when it would decode past `max_bytes` (judged from its length,
    before any decoding) or a 400 when it is not base64."""
    def too_large(about: int) -> APIError:
        return APIError(413, f"{param}: the {what} is about {about:,} bytes, above this "
                        f"server's limit of {max_bytes:,} per {what}", param=param,
                        code=f"{what}_too_large")

    # 4 characters carry 3 bytes; the bound is checked on the text, so an oversized body costs
    # no decoding (first with room for line breaks, then on the text without them).
    if len(data) // 4 * 3 > (max_bytes + 2) * 1.1:
        raise too_large(len(data) // 4 * 3)
    data = _BASE64_SPACE.sub("", data)
    if len(data) // 4 * 3 > max_bytes + 2:
        raise too_large(len(data) // 4 * 3)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise APIError(400, f"{param}: the {what} data is not valid base64", param=param,
                       code=f"invalid_{what}") from None
    if not raw:
        raise APIError(400, f"{param}: the {what} data is empty", param=param,
                       code=f"invalid_{what}")
    if len(raw) > max_bytes:
        raise too_large(len(raw))
    return raw


def checked_image(data: str, *, param: str, max_bytes: int) -> tuple[str, str]:
    """Base64 image bytes checked: (its media type from the bytes, the base64 text)."""
    raw = decode_base64(data, param=param, max_bytes=max_bytes)
    mime = image_type(raw)
    if mime is None:
        raise APIError(400, f"{param}: the data is not a PNG, JPEG, WebP or GIF image",
                       param=param, code="invalid_image")
    return mime, data


def split_data_url(url: str, *, param: str) -> tuple[str | None, str]:
    """A base64 `data:` URL's (media type, base64 payload); a 400 for any other data URL."""
    # The header (media type and parameters) ends at the first comma, found at C speed within
    # MAX_DATA_URL_HEADER: the regex then reads only the header. Run over the whole URL it
    # stepped through 30 million ";" in one call, holding the interpreter's lock 5 s a request.
    comma = url.find(",", 0, MAX_DATA_URL_HEADER)
    match = _DATA_URL.fullmatch(url, 0, comma + 1) if comma >= 0 else None
    if match is None:
        raise APIError(400, f"{param}: a data URL must be data:<media type>;base64,<data>, "
                       f"its part before the comma at most {MAX_DATA_URL_HEADER} characters",
                       param=param, code="invalid_image_url")
    return (match["mime"] or "").lower() or None, url[match.end():]


def data_url(mime: str, b64: str) -> str:
    return f"data:{mime};base64,{b64}"


def image_data_url(url: str, *, param: str, max_bytes: int) -> str:
    """A `data:` image URL checked (base64, size, an image in fact); the URL with the media
    type the bytes have."""
    mime, payload = split_data_url(url, param=param)
    if mime is not None and not mime.startswith("image/"):
        raise APIError(400, f"{param}: {mime} is not an image type; send one of "
                       f"{', '.join(IMAGE_TYPES)}", param=param, code="invalid_image")
    found, payload = checked_image(payload, param=param, max_bytes=max_bytes)
    return data_url(found, payload)
