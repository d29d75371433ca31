"""media/decode.py: what the core makes of an image's bytes before the projector sees them."""

from __future__ import annotations

import io
import struct
import wave
import zlib

import pytest
from PIL import Image

from slm_api.errors import InvalidRequest
from slm_api.media.decode import AUDIO_RATE, WORK_SIDE, decode_audio, decode_image


def encoded(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_each_format_decodes_to_rgb(fmt: str):
    img = decode_image(encoded(Image.new("RGB", (30, 20), (200, 10, 10)), fmt), param="p",
                       max_pixels=10_000)
    assert (img.width, img.height) == (30, 20)
    assert len(img.rgb) == 30 * 20 * 3
    r, g, b = img.rgb[:3]
    assert r > 150 and g < 60 and b < 60


def test_the_digest_names_the_pixels_not_the_file():
    red = Image.new("RGB", (8, 8), (255, 0, 0))
    png = decode_image(encoded(red, "PNG"), param="p", max_pixels=100)
    webp = decode_image(encoded(red, "WEBP", lossless=True), param="p", max_pixels=100)
    blue = decode_image(encoded(Image.new("RGB", (8, 8), (0, 0, 255)), "PNG"), param="p",
                        max_pixels=100)
    assert png.digest == webp.digest != blue.digest


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    raw = encoded(Image.new("RGB", (40, 10), "white"), "JPEG", exif=exif.tobytes())
    img = decode_image(raw, param="p", max_pixels=10_000)
    assert (img.width, img.height) == (10, 40)


def test_transparency_lands_on_white():
    raw = encoded(Image.new("RGBA", (4, 4), (0, 0, 0, 0)), "PNG")
    assert decode_image(raw, param="p", max_pixels=100).rgb[:3] == b"\xff\xff\xff"


def test_a_big_picture_is_scaled_to_the_working_size():
    raw = encoded(Image.new("RGB", (WORK_SIDE * 2, 100), "red"), "PNG")
    img = decode_image(raw, param="p", max_pixels=10**7)
    assert img.width == WORK_SIDE and img.height == 50


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height and holds almost no data (a decompression bomb's
    header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + \
        chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [10_000, 100_000])
def test_a_declared_size_above_the_limit_is_refused_before_decoding(side: int):
    # 100 MP: our limit; 10 GP: past Pillow's own, raised as it opens. Both from the header.
    with pytest.raises(InvalidRequest) as err:
        decode_image(_png_header_only(side, side), param="messages[0].content[1]",
                     max_pixels=50_000_000)
    assert err.value.status == 400 and err.value.param == "messages[0].content[1]"
    assert "MAX_IMAGE_PIXELS" in err.value.message


@pytest.mark.parametrize("raw", [b"", b"hello", b"\x89PNG\r\n\x1a\nbroken",
                                 b"BM" + b"\0" * 60, b"%PDF-1.4 not an image"])
def test_anything_else_is_a_400_naming_the_field(raw: bytes):
    with pytest.raises(InvalidRequest) as err:
        decode_image(raw, param="image", max_pixels=10_000)
    assert err.value.status == 400 and err.value.param == "image"


def test_wav_becomes_16khz_mono_float():
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(struct.pack("<4h", 16384, 16384, -16384, -16384) * 400)
    audio = decode_audio(buf.getvalue(), param="a", max_seconds=600)
    assert audio.n_samples == 800 * AUDIO_RATE // 8000
    with pytest.raises(InvalidRequest):
        decode_audio(b"ID3 not an mp3 file", param="a", max_seconds=600)
    with pytest.raises(InvalidRequest):
        decode_audio(b"RIFF junk", param="a", max_seconds=600)
