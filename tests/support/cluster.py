"""Replicas behind the checked-in nginx config, sharing a real Redis, all on loopback.

Used by `make test-scale` (tests/deploy/test_scale.py) and bench/scale.py. Each replica is
`python -m slm_api serve` (a gunicorn master and its one worker) in its own process group, so a
SIGKILL takes the whole replica down as a crash would.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import requests

from support.parts import need
from support.redis_server import free_port, running_redis

REPO = Path(__file__).resolve().parents[2]
NGINX_SITE = REPO / "deploy" / "nginx" / "slm-api.conf"
_SERVER_LINE = re.compile(r"^\s*server replica\d+:8000 (.*);$", re.M)
_LOG_LINE = re.compile(r'rid=(\S+) upstream=(.*?) upstream_status=(.*?) rt=')


class Replica:
    """One slm-api replica on a free loopback port."""

    def __init__(self, workdir: Path, env: dict[str, str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir, self.env = workdir, env
        self.proc: subprocess.Popen | None = None

    def start(self, **overrides: str) -> None:
        self.env = {**self.env, **overrides}
        log = open(self.workdir / f"replica-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "slm_api", "serve", "--host", "127.0.0.1", "--port",
             str(self.port)],
            env=self.env, cwd=self.workdir, stdout=log, stderr=log, start_new_session=True,
        )
        log.close()

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, (
                f"replica {self.port} exited; see {self.workdir}/replica-{self.port}.log")
            try:
                if requests.get(f"{self.url}/ready", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"replica {self.port} not ready after {timeout} s")

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM to the gunicorn master, as `docker stop` or Kubernetes send; its exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL to the master and its worker at once: a crash, nothing drains."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)

    def health(self) -> dict:
        return requests.get(f"{self.url}/health", timeout=10).json()


def nginx_conf(workdir: Path, listen: int, ports: list[int], *, affinity: bool = True) -> str:
    """deploy/nginx/slm-api.conf with loopback replicas and port, inside a minimal nginx.conf."""
    site = NGINX_SITE.read_text()
    options = _SERVER_LINE.search(site)
    assert options is not None, "deploy/nginx/slm-api.conf lost its `server replicaN:8000` lines"
    servers = "\n".join(f"    server 127.0.0.1:{p} {options.group(1)};" for p in ports)
    site = _SERVER_LINE.sub("", site).replace(
        "upstream slm_replicas {", "upstream slm_replicas {\n" + servers, 1)
    site = site.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    site = site.replace("/var/log/nginx/slm-access.log", str(workdir / "access.log"))
    if not affinity:
        site = re.sub(r"^\s*hash \$slm_affinity consistent;$", "", site, flags=re.M)
    temp = "\n".join(f"    {kind}_temp_path {workdir / ('tmp-' + kind)};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (f"{user}worker_processes 1;\npid {workdir / 'nginx.pid'};\ndaemon off;\n"
            f"error_log {workdir / 'nginx-error.log'} warn;\n"
            f"events {{ worker_connections 512; }}\nhttp {{\n{temp}\n{site}\n}}\n")


class Cluster:
    """Redis + N replicas + nginx. `url` is the balancer; `replicas[i].url` each replica."""

    def __init__(self, models_dir: Path, workdir: Path, n: int = 3, *, affinity: bool = True,
                 **env: str):
        # `make test-scale` (SLM_TEST_SCALE=1) asked for the cluster: no silent all-skip.
        self.nginx_binary = need("nginx", "nginx not installed (Debian package nginx; "
                                 "scripts/system-deps.sh installs it)", "SLM_TEST_SCALE")
        need("redis-server", "redis-server not installed (Debian package redis-server; "
             "scripts/system-deps.sh installs it)", "SLM_TEST_SCALE")
        self.workdir, self.n, self.affinity = workdir, n, affinity
        self.models_dir = models_dir
        self.extra_env = env
        self.replicas: list[Replica] = []
        self._stack = ExitStack()
        self.nginx: subprocess.Popen | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def replica_env(self, redis_uri: str) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ADMIN_"))},
            "PYTHONPATH": str(REPO / "src"),
            "MODELS_DIR": str(self.models_dir),
            "HF_HOME": str(self.workdir / "hf"),
            "CACHE_DIR": str(self.workdir / "cache"),
            # Three replicas share two cores: one thread each, a small context.
            "N_THREADS": str(max(1, (os.cpu_count() or 2) // self.n)),
            "N_CTX": "1024",
            "N_PARALLEL": "2",
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_STORAGE_URI": redis_uri,
            # nginx appends the client to X-Forwarded-For: one trusted hop.
            "TRUSTED_PROXY_HOPS": "1",
            **self.extra_env,
        }

    def __enter__(self) -> Cluster:
        try:
            redis_uri = self._stack.enter_context(running_redis())
            self.redis_uri = redis_uri
            env = self.replica_env(redis_uri)
            self.replicas = [Replica(self.workdir, env) for _ in range(self.n)]
            for r in self.replicas:
                r.start()
            self._stack.callback(lambda: [r.stop() for r in self.replicas])
            for r in self.replicas:
                r.wait_ready()
            self.start_nginx()
        except BaseException:
            self._stack.close()
            raise
        return self

    def start_nginx(self) -> None:
        conf = self.workdir / "nginx.conf"
        conf.write_text(nginx_conf(self.workdir, self.port, [r.port for r in self.replicas],
                                   affinity=self.affinity))
        self.nginx = subprocess.Popen(
            [self.nginx_binary, "-p", str(self.workdir), "-c", str(conf), "-e",
             str(self.workdir / "nginx-error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._stack.callback(self._stop_nginx)
        deadline = time.monotonic() + 20
        while True:
            assert self.nginx.poll() is None, (self.workdir / "nginx-error.log").read_text()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                assert time.monotonic() < deadline, "nginx did not listen"
                time.sleep(0.1)

    def _stop_nginx(self) -> None:
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGQUIT)
            try:
                self.nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.nginx.kill()

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def upstreams(self, *expected: str) -> dict[str, list[str]]:
        """Request id -> the replica addresses nginx tried for it, from its access log (nginx
        writes a line just after the response: wait a moment for the `expected` ids)."""
        deadline = time.monotonic() + 5
        found = self._read_log()
        while not all(rid in found for rid in expected) and time.monotonic() < deadline:
            time.sleep(0.1)
            found = self._read_log()
        return found

    def _read_log(self) -> dict[str, list[str]]:
        log = self.workdir / "access.log"
        found: dict[str, list[str]] = {}
        for line in (log.read_text().splitlines() if log.exists() else ()):
            m = _LOG_LINE.search(line)
            if m:
                found[m.group(1)] = [a.strip() for a in m.group(2).split(",")]
        return found
