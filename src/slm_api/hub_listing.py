"""What GGUF files a Hub repo holds, and which one a quantization tag means.

A client names a quantization (`hf.co/owner/repo:Q4_K_M`), not a file; the Hub's own Ollama
integration resolves it by a case-insensitive match of the tag in the repo's GGUF file names,
and so do we, from one listing of the repo's top folder (the only files `download_gguf` takes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import islice

from huggingface_hub import HfApi
from huggingface_hub.hf_api import RepoFile

from slm_api.config import Settings
from slm_api.hub import DownloadError, DownloadNotFound, _endpoint, _translate, validate_request

# A repo with more entries than this in its top folder is not a model repo we can choose from.
MAX_LISTED = 5000
DEFAULT_QUANT = "Q4_K_M"
# With no Q4_K_M, the first of these the repo has: the quality-per-byte order llama.cpp's
# quantize docs recommend, then the larger ones, then full precision.
FALLBACK_QUANTS = ("Q4_K_S", "Q5_K_M", "Q4_0", "IQ4_XS", "Q5_K_S", "Q6_K", "Q8_0", "Q3_K_M",
                   "Q3_K_L", "Q2_K", "BF16", "F16", "F32")
# Projector and imatrix files sit beside the model in many repos; they are not models.
_NOT_A_MODEL = re.compile(r"mmproj|imatrix", re.IGNORECASE)
_SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)


@dataclass(frozen=True)
class RemoteFile:
    filename: str
    size: int | None
    sha256: str | None  # the LFS object id: the content's sha256


def repo_ggufs(repo_id: str, revision: str | None, settings: Settings) -> list[RemoteFile]:
    """The repo's top-level .gguf files (404 for an unknown repo or revision)."""
    validate_request(repo_id, "x.gguf", revision, settings)
    api = HfApi(endpoint=_endpoint())
    try:
        entries = list(islice(api.list_repo_tree(repo_id, revision=revision), MAX_LISTED))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a clear 4xx/5xx
        raise _translate(exc, repo_id, "", revision) from exc
    return [RemoteFile(e.path, e.size, e.lfs.sha256 if e.lfs else None)
            for e in entries
            if isinstance(e, RepoFile) and e.path.lower().endswith(".gguf") and "/" not in e.path]


def _has_quant(filename: str, quant: str) -> bool:
    # Q4_K matches Q4_K.gguf but not Q4_K_M.gguf: the tag must end at a separator.
    pattern = rf"(?<![A-Za-z0-9]){re.escape(quant)}(?![A-Za-z0-9_])"
    return re.search(pattern, filename, re.IGNORECASE) is not None


def pick(files: list[RemoteFile], repo_id: str, tag: str | None) -> RemoteFile:
    """The file a tag means: a file name as it is, a quantization by name, or (no tag,
    `latest`) Q4_K_M, else the first of FALLBACK_QUANTS present, else the smallest file."""
    models = [f for f in files if not _NOT_A_MODEL.search(f.filename)]
    if tag and tag.lower().endswith(".gguf"):
        match = next((f for f in files if f.filename == tag), None)
        if match is None:
            raise DownloadNotFound(f"{tag} not found in {repo_id}", param="model")
        return _single(match, repo_id)
    if not models:
        raise DownloadNotFound(f"{repo_id} has no GGUF files", param="model")
    wanted = [tag] if tag and tag.lower() != "latest" else [DEFAULT_QUANT, *FALLBACK_QUANTS]
    for quant in wanted:
        found = sorted((f for f in models if _has_quant(f.filename, quant)),
                       key=lambda f: f.filename)
        if found:
            return _single(found[0], repo_id)
    if tag and tag.lower() != "latest":
        have = ", ".join(f.filename for f in models[:20])
        raise DownloadNotFound(f"no {tag} quantization in {repo_id} (its GGUF files: {have})",
                               param="model")
    return _single(min(models, key=lambda f: (f.size or 0, f.filename)), repo_id)


def _single(file: RemoteFile, repo_id: str) -> RemoteFile:
    # llama.cpp loads a split model from its first shard only if the others lie beside it,
    # which one-file downloads do not give: refuse it clearly rather than fetch a part.
    shard = _SHARD.search(file.filename)
    if shard and shard.group(2) != "00001":
        raise DownloadError(f"{file.filename} in {repo_id} is split in {int(shard.group(2))} "
                            "parts; pulling split models is not supported", param="model")
    return file
