"""A local HTTP server on 127.0.0.1 that answers file requests the way the Hugging Face Hub does,
so huggingface_hub's real download code runs against it (via HF_ENDPOINT)."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
# The repo listing huggingface_hub's list_repo_tree asks for (the top folder only here).
_TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)$")


@dataclass
class _File:
    data: bytes
    sha256: str
    xet: bool = False


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, dict[str, dict[str, _File]]] = {}  # repo -> revision -> files
        self.drop_after: int | None = None  # close the connection after this many body bytes
        self.delay_per_chunk = 0.0
        # Hold the body after this many bytes until `release` is set: a transfer caught
        # mid-file for as long as a test needs, with no race against its end.
        self.hold_after: int | None = None
        self.release = threading.Event()
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                hub._serve(self, body=False)

            def do_GET(self) -> None:
                hub._serve(self, body=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def add_file(self, repo_id: str, filename: str, data: bytes, revision: str = "main",
                 xet: bool = False) -> None:
        """`xet=True`: answer with the headers the Hub sends for a Xet-backed file (a client
        that follows them asks /api/.../xet-read-token, which this hub refuses)."""
        files = self.repos.setdefault(repo_id, {}).setdefault(revision, {})
        files[filename] = _File(data, hashlib.sha256(data).hexdigest(), xet)

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    @staticmethod
    def commit_of(repo_id: str, revision: str) -> str:
        return hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()

    def _error(self, h: BaseHTTPRequestHandler, code: str, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        h.send_response(404)
        h.send_header("X-Error-Code", code)
        h.send_header("X-Error-Message", message)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command == "GET":
            h.wfile.write(body)

    def _tree(self, h: BaseHTTPRequestHandler, repo: str, rev: str) -> None:
        if repo not in self.repos:
            return self._error(h, "RepoNotFound", "Repository not found")
        if rev not in self.repos[repo]:
            return self._error(h, "RevisionNotFound", "Invalid rev id")
        listing = [{"type": "file", "path": name, "size": len(f.data),
                    "oid": hashlib.sha1(f.data).hexdigest(),
                    "lfs": {"oid": f.sha256, "size": len(f.data), "pointerSize": 134}}
                   for name, f in sorted(self.repos[repo][rev].items())]
        body = json.dumps(listing).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
        return None

    def _serve(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        self.requests.append(f"{h.command} {h.path}")
        tree = _TREE.match(h.path.split("?")[0])
        if tree:
            return self._tree(h, tree["repo"], tree["rev"])
        match = _RESOLVE.match(h.path.split("?")[0])
        if not match:
            return self._error(h, "RepoNotFound", "Repository not found")
        repo, rev, name = match["repo"], match["rev"], match["file"]
        if repo not in self.repos:
            return self._error(h, "RepoNotFound", "Repository not found")
        if rev not in self.repos[repo]:
            return self._error(h, "RevisionNotFound", "Invalid rev id")
        entry = self.repos[repo][rev].get(name)
        if entry is None:
            return self._error(h, "EntryNotFound", "Entry not found")
        start = 0
        rng = h.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0] or 0)
        data = entry.data[start:]
        h.send_response(206 if start else 200)
        h.send_header("X-Repo-Commit", self.commit_of(repo, rev))
        # LFS files: the Hub gives the content sha256 as (linked) ETag and the size.
        h.send_header("ETag", f'"{entry.sha256}"')
        h.send_header("X-Linked-Etag", f'"{entry.sha256}"')
        h.send_header("X-Linked-Size", str(len(entry.data)))
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Accept-Ranges", "bytes")
        if entry.xet:
            token_url = f"{self.url}/api/models/{repo}/xet-read-token/{self.commit_of(repo, rev)}"
            h.send_header("X-Xet-Hash", entry.sha256)
            h.send_header("X-Xet-Refresh-Route", token_url)
            h.send_header("Link", f'<{token_url}>; rel="xet-auth"')
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(entry.data) - 1}/{len(entry.data)}")
        h.end_headers()
        if not body:
            return None
        sent = 0
        for i in range(0, len(data), 64 * 1024):
            piece = data[i : i + 64 * 1024]
            if self.drop_after is not None and sent + len(piece) > self.drop_after:
                h.wfile.write(piece[: max(0, self.drop_after - sent)])
                h.wfile.flush()
                h.close_connection = True
                h.connection.shutdown(2)
                return None
            if self.hold_after is not None and sent >= self.hold_after:
                self.release.wait(60)
            h.wfile.write(piece)
            sent += len(piece)
            if self.delay_per_chunk:
                time.sleep(self.delay_per_chunk)
        return None
