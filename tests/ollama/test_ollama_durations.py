"""Ollama's durations (keep_alive, KEEP_ALIVE) parsed as Ollama's Go client writes them."""

from __future__ import annotations

import pytest

from slm_api.config import Settings, SettingsError, duration_seconds

pytestmark = pytest.mark.fast  # needs no model: `make test-fast`


@pytest.mark.parametrize("value, seconds", [
    ("5m", 300.0), ("1h30m", 5400.0), ("1.5h", 5400.0), ("300ms", 0.3), ("300", 300.0),
    (300, 300.0), (0, 0.0), ("0", 0.0), (2.5, 2.5),
    (-1, None), ("-1", None), ("-1s", None), ("-5m", None),  # negative: never unload
])
def test_durations(value, seconds):
    assert duration_seconds(value) == seconds


@pytest.mark.parametrize("value", ["soon", "5x", "", "m", "5m5", "1e999", True, "nan"])
def test_not_durations(value):
    with pytest.raises(ValueError):
        duration_seconds(value)


def test_keep_alive_setting_is_checked():
    assert Settings(keep_alive="1h").keep_alive_s == 3600.0
    assert Settings(keep_alive="-1").keep_alive_s is None
    with pytest.raises(SettingsError, match="KEEP_ALIVE"):
        Settings(keep_alive="later").validate()
