"""Positions against indices (slots.position): after an M-RoPE image (Qwen2-VL family) a token's
position is its index less what the images before it take beyond their positions."""

from __future__ import annotations

from slm_api.engine.slots import position
from slm_api.engine.types import MediaSpan


def span(start: int, n_tokens: int, n_pos: int | None = None) -> MediaSpan:
    return MediaSpan(start, n_tokens, "d", None, n_tokens if n_pos is None else n_pos)


def test_without_media_or_without_m_rope_the_position_is_the_index():
    assert [position((), i) for i in range(5)] == list(range(5))
    media = (span(2, 16), span(20, 16))
    assert [position(media, i) for i in (0, 2, 10, 18, 20, 36, 40)] == [0, 2, 10, 18, 20, 36, 40]


def test_a_span_without_n_pos_takes_one_position_a_token():
    assert MediaSpan(0, 16, "d", None).n_pos == 16


def test_an_m_rope_image_takes_n_pos_positions():
    # 12 tokens, 4 positions: the text after it starts 8 places earlier than its index.
    media = (span(10, 12, 4),)
    assert position(media, 9) == 9
    assert position(media, 10) == 10  # the image starts where its first token sits
    assert position(media, 15) == 15  # inside the image: not wholly before, no shift yet
    assert position(media, 22) == 14
    assert position(media, 30) == 22


def test_each_image_before_the_index_counts_once():
    media = (span(3, 12, 4), span(20, 9, 3), span(40, 6, 6))
    assert position(media, 15) == 7
    assert position(media, 20) == 12  # the second image starts right after the first's 4
    assert position(media, 29) == 15
    assert position(media, 46) == 32
    assert position(media, 100) == 100 - 8 - 6
