"""Which file of a Hub repo a pull tag means (hub_listing.pick): pure, no server, no model."""

from __future__ import annotations

import pytest

from slm_api.hub import DownloadError, DownloadNotFound
from slm_api.hub_listing import RemoteFile, pick

pytestmark = pytest.mark.fast


def files(*names: str, sizes: dict[str, int] | None = None) -> list[RemoteFile]:
    return [RemoteFile(n, (sizes or {}).get(n, 100), None) for n in names]


REPO = files("Model-Q4_K.gguf", "Model-Q4_K_M.gguf", "Model-IQ4_XS.gguf", "model-q8_0.gguf",
             "mmproj-Model-Q4_K_M.gguf", "Model.imatrix.Q4_K_M.gguf")


@pytest.mark.parametrize("tag, expected", [
    ("Q4_K_M", "Model-Q4_K_M.gguf"),
    ("q4_k_m", "Model-Q4_K_M.gguf"),  # case-insensitive, as Ollama's hf.co names
    ("Q4_K", "Model-Q4_K.gguf"),  # a whole part: not the Q4_K_M file
    ("Q8_0", "model-q8_0.gguf"),
    ("IQ4_XS", "Model-IQ4_XS.gguf"),
    (None, "Model-Q4_K_M.gguf"),
    ("latest", "Model-Q4_K_M.gguf"),
    ("mmproj-Model-Q4_K_M.gguf", "mmproj-Model-Q4_K_M.gguf"),  # a file by name, as asked
])
def test_tags(tag, expected):
    assert pick(REPO, "acme/m", tag).filename == expected


def test_default_without_q4_k_m():
    assert pick(files("m.Q8_0.gguf", "m.Q5_K_M.gguf", "m.F16.gguf"), "a/m", None).filename \
        == "m.Q5_K_M.gguf"
    odd = files("m-big.gguf", "m-small.gguf", sizes={"m-big.gguf": 9, "m-small.gguf": 3})
    assert pick(odd, "a/m", "latest").filename == "m-small.gguf"


@pytest.mark.parametrize("repo, tag, error, words", [
    (REPO, "Q3_K_S", DownloadNotFound, "no Q3_K_S quantization in acme/m"),
    (REPO, "other.gguf", DownloadNotFound, "other.gguf not found"),
    (files("mmproj-x-f16.gguf"), None, DownloadNotFound, "has no GGUF files"),
    (files("m-Q4_K_M-00002-of-00003.gguf"), "Q4_K_M", DownloadError, "split in 3 parts"),
    (files("m-Q4_K_M-00001-of-00003.gguf"), "Q4_K_M", DownloadError, "split in 3 parts"),
])
def test_refusals(repo, tag, error, words):
    with pytest.raises(error) as err:
        pick(repo, "acme/m", tag)
    assert words in err.value.message
