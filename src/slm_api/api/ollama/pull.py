"""Ollama's /api/pull over the Hub: a pull name -> one GGUF file of a Hub repo, fetched by the
admin download jobs (hub.DownloadJobs, the same as `POST /load` with `"async": true`), its
progress told as Ollama's status objects, and the name recorded so /api/tags lists it and
/api/chat takes it.

Names taken: `hf.co/{owner}/{repo}[:{quant}|:{file.gguf}]` (also `huggingface.co/...`) and
`{owner}/{repo}/{file.gguf}`. No tag or `:latest` picks Q4_K_M (hub_listing.pick says which
otherwise). Ollama's own registry (`llama3.2`) is not reachable from here: 400.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_api.api.ollama import names
from slm_api.errors import APIError
from slm_api.hub import (
    DownloadCancelled,
    DownloadError,
    DownloadJobs,
    file_sha256,
    validate_request,
)
from slm_api.hub_listing import RemoteFile, pick, repo_ggufs
from slm_api.plumbing import state

_HUB_HOSTS = ("hf.co", "huggingface.co")
_QUANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
POLL_S = 0.2
HEARTBEAT_S = 5.0  # a line at least this often: a stalled transfer still shows it is alive
ACCEPTED = ("hf.co/{owner}/{repo}:{quant}, hf.co/{owner}/{repo}:{file.gguf}, "
            "huggingface.co/{owner}/{repo}:{quant} or {owner}/{repo}/{file.gguf}")


@dataclass(frozen=True)
class PullName:
    name: str  # as recorded and listed: the client's own name, `:latest` added when untagged
    repo_id: str
    tag: str | None  # a quantization, a file name, or None (the default quantization)


def parse(model: str) -> PullName:
    raw = model.strip()
    parts = raw.split("/")
    if len(parts) == 3 and parts[0].lower() in _HUB_HOSTS:
        repo, _, tag = f"{parts[1]}/{parts[2]}".partition(":")
        tag = tag or None
    elif len(parts) == 3 and parts[2].partition(":")[0].lower().endswith(".gguf") \
            and parts[2].partition(":")[2] in ("", "latest"):
        repo, tag = f"{parts[0]}/{parts[1]}", parts[2].partition(":")[0]
    else:
        raise APIError(400, f"cannot pull {raw[:100]!r}: this server pulls GGUF files from the "
                       f"Hugging Face Hub, named {ACCEPTED}", param="model")
    settings = state.settings()
    is_file = tag is not None and tag.lower().endswith(".gguf")
    if tag is not None and not is_file and not _QUANT.match(tag):
        raise APIError(400, f"invalid quantization tag {tag[:100]!r}", param="model")
    validate_request(repo, tag if is_file else "x.gguf", None, settings)  # the Hub's grammar
    return PullName(names.valid_name(raw, "model"), repo, tag)


@dataclass
class Pull:
    """One pull, resolved before the first byte is answered: an unknown repo or quantization
    is still a 404 with its status, not a line in a 200 stream."""

    name: PullName
    file: RemoteFile
    existed: bool
    # Taken from the app now: a stream runs after the request's app context has gone.
    jobs: DownloadJobs
    models_dir: Path

    @classmethod
    def start(cls, model: str) -> Pull:
        name = parse(model)
        settings = state.settings()
        file = pick(repo_ggufs(name.repo_id, None, settings), name.repo_id, name.tag)
        target = settings.models_dir / file.filename
        existed = target.is_file()
        if existed and file.size is not None and target.stat().st_size != file.size:
            raise _other_file(file.filename, name.repo_id)
        return cls(name, file, existed, state.downloads(), settings.models_dir)

    def _digest_line(self, job: dict[str, Any]) -> dict[str, Any]:
        sha = self.file.sha256
        line: dict[str, Any] = {"status": f"pulling {sha[:12]}" if sha
                                else f"pulling {self.file.filename}"}
        if sha:
            line["digest"] = f"sha256:{sha}"
        line["total"] = job["bytes_total"] or self.file.size or 0
        line["completed"] = job["bytes_done"]
        return line

    def progress(self) -> Iterator[dict[str, Any]]:
        """Ollama's status objects, from the download job's state. Closing the iterator (the
        client went away) cancels the download, whose half file the job removes."""
        jobs = self.jobs
        yield {"status": "pulling manifest"}
        if self.existed and self.file.sha256:
            yield from self._already_here()
            return
        job_id = jobs.start(self.name.repo_id, self.file.filename, None, sha256=self.file.sha256)
        ended = False
        try:
            last: dict[str, Any] | None = None
            said_at = 0.0
            while True:
                job = jobs.get(job_id) or {}
                line = self._digest_line(job)
                if line != last or time.monotonic() - said_at >= HEARTBEAT_S:
                    yield line
                    last, said_at = line, time.monotonic()
                if job.get("state") != "running":
                    break
                time.sleep(POLL_S)
            ended = True
            if job["state"] == "cancelled":
                raise DownloadCancelled("the download was cancelled")
            if job["state"] != "done":
                raise DownloadError(job.get("error") or "the download failed",
                                    status=job.get("error_status") or 502)
            if self.file.sha256:
                yield {"status": "verifying sha256 digest"}  # the job checked it before placing
            self._record()
            yield {"status": "writing manifest"}
            yield {"status": "success"}
        finally:
            if not ended:
                jobs.cancel(job_id)

    def _already_here(self) -> Iterator[dict[str, Any]]:
        # Pulled before (or placed by hand): Ollama skips a blob it holds, so do we, once its
        # bytes are the ones the Hub lists. Other bytes under that file name are another
        # model, which some other name may be serving: never replaced behind its back.
        sha, size = self.file.sha256, self.file.size
        yield self._digest_line({"bytes_total": size, "bytes_done": 0})
        if file_sha256(self.models_dir / self.file.filename) != sha:
            raise _other_file(self.file.filename, self.name.repo_id)
        yield self._digest_line({"bytes_total": size, "bytes_done": size})
        yield {"status": "verifying sha256 digest"}
        self._record()
        yield {"status": "writing manifest"}
        yield {"status": "success"}

    def _record(self) -> None:
        filename = self.file.filename

        def add(recorded: dict[str, str]) -> None:
            if self.existed and filename not in recorded.values():
                # It was listed as <stem>:latest before; a pull adds a name, takes none away.
                recorded.update({names.names_of(recorded, filename)[0]: filename})
            recorded[self.name.name] = filename

        names.update(self.models_dir, add)

    def run(self) -> dict[str, Any]:
        """Without streaming: wait for the end, answer its last object (or raise)."""
        last: dict[str, Any] = {}
        for last in self.progress():  # noqa: B007 - the last object is the answer
            pass
        return last


def _other_file(filename: str, repo_id: str) -> APIError:
    return APIError(409, f"MODELS_DIR already holds another {filename} (not {repo_id}'s): "
                    "delete it first", param="model", code="file_exists")
