"""GGUF downloads from the Hugging Face Hub into MODELS_DIR.

`huggingface_hub.hf_hub_download` fetches into the Hub cache (HF_HOME); the finished file is then
copied into MODELS_DIR under a hidden temporary name and renamed, so MODELS_DIR never shows a
half-written model, whatever fails.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from huggingface_hub import constants as hf_constants
from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from slm_api.config import Settings
from slm_api.errors import SlmError

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,250}\.gguf$")
DISK_MARGIN_BYTES = 256 * 1024**2


class DownloadError(SlmError, status=400, code="invalid_download"):
    """A /load request the server refuses before downloading (bad names)."""


class DownloadForbidden(DownloadError, status=403, code="repo_not_allowed"):
    """The repo is not in ALLOWED_REPOS."""


class DownloadNotFound(DownloadError, status=404, code="not_found"):
    """The Hub has no such repo, file or revision."""


class HubUnreachable(DownloadError, status=502, code="hub_unreachable"):
    """The Hub could not be reached, or failed."""


class NotEnoughDisk(DownloadError, status=507, code="insufficient_storage"):
    """The file is larger than the free disk space (minus a margin)."""


class DigestMismatch(DownloadError, status=502, code="digest_mismatch"):
    """The downloaded bytes do not hash to the sha256 the Hub listed for the file."""


class DownloadCancelled(DownloadError, status=409, code="cancelled"):
    """DELETE /load/{job_id} stopped the download."""


def validate_request(repo_id: str, filename: str, revision: str | None,
                     settings: Settings) -> None:
    """Refuse bad names before any network call."""
    if ".." in repo_id or not _REPO_ID.match(repo_id):
        raise DownloadError(f"repo_id {repo_id!r} is not of the form owner/name",
                            param="repo_id")
    if not _FILENAME.match(filename) or ".." in filename:
        raise DownloadError("filename must be a plain .gguf file name (no folders, no '..')",
                            param="filename")
    if revision is not None and (not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,199}$", revision)
                                 or ".." in revision):
        raise DownloadError(f"revision {revision!r} is not a valid revision", param="revision")
    if settings.allowed_repos and repo_id not in settings.allowed_repos:
        raise DownloadForbidden(f"repo {repo_id} is not in ALLOWED_REPOS", param="repo_id")


def _endpoint() -> str | None:
    # huggingface_hub reads HF_ENDPOINT once at import; read it per call so it can change.
    return os.environ.get("HF_ENDPOINT") or None


def _translate(exc: Exception, repo_id: str, filename: str, revision: str | None) -> SlmError:
    if isinstance(exc, RevisionNotFoundError):
        return DownloadNotFound(f"revision {revision!r} not found in {repo_id}",
                                param="revision")
    if isinstance(exc, EntryNotFoundError):
        return DownloadNotFound(f"{filename} not found in {repo_id}", param="filename")
    if isinstance(exc, RepositoryNotFoundError):
        return DownloadNotFound(f"repository {repo_id} not found (or private)", param="repo_id")
    if isinstance(exc, HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        return HubUnreachable(f"the Hub answered with an error ({status}): {exc}".split("\n")[0])
    return HubUnreachable(f"the Hub could not be reached: {type(exc).__name__}: {exc}"
                          .split("\n")[0])


def remote_size(repo_id: str, filename: str, revision: str | None) -> int | None:
    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=_endpoint())
    try:
        return get_hf_file_metadata(url, endpoint=_endpoint()).size
    except Exception as exc:  # noqa: BLE001 - every failure becomes a clear 4xx/5xx
        raise _translate(exc, repo_id, filename, revision) from exc


def check_disk(models_dir: Path, size: int | None) -> None:
    if size is None:
        return
    free = shutil.disk_usage(models_dir).free
    # The Hub cache and MODELS_DIR each hold a copy while the file is moved in.
    needed = size * 2 + DISK_MARGIN_BYTES
    if free < needed:
        raise NotEnoughDisk(f"not enough free disk: the file needs {needed} bytes with margin, "
                            f"{free} are free")


def download_gguf(repo_id: str, filename: str, revision: str | None, settings: Settings,
                  progress: Callable[[int, int | None], None] | None = None,
                  cancelled: Callable[[], bool] | None = None,
                  sha256: str | None = None) -> Path:
    """Download into the Hub cache, then place the file in MODELS_DIR atomically; with
    `sha256`, only if the copy hashes to it (checked before it takes its name)."""
    validate_request(repo_id, filename, revision, settings)
    models_dir = settings.models_dir
    models_dir.mkdir(parents=True, exist_ok=True)
    size = remote_size(repo_id, filename, revision)
    check_disk(models_dir, size)
    tqdm_class = _progress_class(progress, cancelled) if progress or cancelled else None
    # Xet-backed files too come over plain HTTP from their resolve URL (the Hub serves every
    # file that way): one transfer path, whose progress and cancel the suite runs end to end
    # (tests/support/fakehub.py answers as the Hub does for a Xet-backed file). Read at call time.
    hf_constants.HF_HUB_DISABLE_XET = True
    try:
        cached = hf_hub_download(repo_id, filename, revision=revision,
                                 cache_dir=settings.hf_home / "hub", endpoint=_endpoint(),
                                 tqdm_class=tqdm_class)
    except DownloadCancelled:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _translate(exc, repo_id, filename, revision) from exc
    target = models_dir / filename
    partial = models_dir / f".{filename}.part-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copyfile(cached, partial)
        if cancelled and cancelled():
            raise DownloadCancelled("download cancelled")
        if sha256 is not None:
            _verify(partial, sha256, filename)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target.resolve()


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _verify(path: Path, sha256: str, filename: str) -> None:
    digest = file_sha256(path)
    if digest != sha256.lower():
        raise DigestMismatch(f"{filename}: sha256 {digest} differs from the Hub's {sha256}")


def _progress_class(progress: Callable[[int, int | None], None] | None,
                    cancelled: Callable[[], bool] | None) -> type:
    from tqdm.auto import tqdm

    class _Progress(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            if cancelled and cancelled():
                raise DownloadCancelled("download cancelled")
            self.n += n or 0
            if progress:
                progress(int(self.n), int(self.total) if self.total else None)
            return None

    return _Progress


class DownloadJobs:
    """Background downloads a client can poll (`POST /load` with `"async": true`)."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._jobs: dict[str, dict[str, Any]] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self, repo_id: str, filename: str, revision: str | None,
              sha256: str | None = None) -> str:
        job_id = f"dl-{uuid.uuid4().hex[:16]}"
        with self._lock:
            self._jobs[job_id] = {"job_id": job_id, "state": "running", "repo_id": repo_id,
                                  "filename": filename, "revision": revision, "bytes_done": 0,
                                  "bytes_total": None, "path": None, "error": None,
                                  "sha256": sha256}
            self._cancel[job_id] = threading.Event()
        threading.Thread(target=self._run, args=(job_id,), daemon=True).start()
        return job_id

    def _update(self, job_id: str, **fields: Any) -> None:
        with self._lock:
            self._jobs[job_id].update(fields)

    def _run(self, job_id: str) -> None:
        job = self.get(job_id)
        assert job is not None
        stop = self._cancel[job_id]
        try:
            path = download_gguf(
                job["repo_id"], job["filename"], job["revision"], self._settings,
                progress=lambda done, total: self._update(job_id, bytes_done=done,
                                                          bytes_total=total),
                cancelled=stop.is_set, sha256=job["sha256"],
            )
            self._update(job_id, state="done", path=str(path),
                         bytes_done=path.stat().st_size, bytes_total=path.stat().st_size)
        except DownloadCancelled:
            self._update(job_id, state="cancelled")
        except SlmError as exc:
            self._update(job_id, state="failed", error=exc.message, error_status=exc.status)
        except Exception as exc:  # noqa: BLE001 - a job must always end in a state
            self._update(job_id, state="failed", error=f"{type(exc).__name__}: {exc}")

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return dict(job) if job else None

    def cancel(self, job_id: str) -> bool:
        with self._lock:
            if job_id not in self._jobs:
                return False
            self._cancel[job_id].set()
            return True
