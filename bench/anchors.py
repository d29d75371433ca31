"""Anchors: llama.cpp's own `llama-server` and `llama-bench`, built from the very llama.cpp
sources that the installed llama-cpp-python wheel was compiled from, so that a bench can print
its numbers beside the same engine without our HTTP layer, measured in the same invocation.

    .venv/bin/python bench/anchors.py build   # once, cached in build/ (long on 2 cores)
    .venv/bin/python bench/anchors.py bench   # llama-bench pp/tg on the bench model

From a bench script (bench/ is on sys.path when a script in it runs):

    from anchors import LlamaServer, llama_bench
    with LlamaServer(MODEL, n_ctx=1024, n_parallel=1) as anchor:
        requests.post(f"{anchor.url}/v1/chat/completions", json=...)

The sources come from the llama-cpp-python sdist (`pip download --no-binary :all:`, the version
of the installed wheel) into build/; only the two targets are compiled, at nice 10.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tarfile
import time
from importlib import metadata
from pathlib import Path

import requests
from server import MODEL, REPO, free_port

BUILD = REPO / "build"
TARGETS = ("llama-server", "llama-bench")
# ggml's AMX kernels crash on Sapphire Rapids (llama.cpp issue 20824): the Makefile's NO_AMX.
NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"


def llama_cpp_python_version() -> str:
    """The installed wheel's version: the anchor must run the same llama.cpp as the server."""
    return metadata.version("llama_cpp_python")


def _source_dir(version: str) -> Path:
    src = BUILD / f"llama_cpp_python-{version}"
    if (src / "vendor" / "llama.cpp" / "CMakeLists.txt").exists():
        return src
    sdist = BUILD / f"llama_cpp_python-{version}.tar.gz"
    if not sdist.exists():
        BUILD.mkdir(exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                        ":all:", f"llama-cpp-python=={version}", "-d", str(BUILD)], check=True)
    with tarfile.open(sdist) as tar:
        tar.extractall(BUILD, filter="data")
    return src


def binaries(version: str | None = None, jobs: int = 2) -> dict[str, Path]:
    """Paths of llama-server and llama-bench, building them first if build/ lacks them."""
    version = version or llama_cpp_python_version()
    out = BUILD / f"llama.cpp-{version}"
    paths = {t: out / "bin" / t for t in TARGETS}
    if all(p.exists() for p in paths.values()):
        return paths
    src = _source_dir(version) / "vendor" / "llama.cpp"
    # Static, CPU-only, no web UI download and no TLS: the anchor serves loopback only. Built
    # as the Makefile builds llama-cpp-python (native, no AMX kernels), so both run the same code.
    no_amx = ["-DCMAKE_C_FLAGS=" + NO_AMX, "-DCMAKE_CXX_FLAGS=" + NO_AMX] \
        if platform.machine() == "x86_64" else []
    subprocess.run(
        ["nice", "-n", "10", "cmake", "-S", str(src), "-B", str(out), "-G", "Ninja",
         "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_BUILD_TESTS=OFF",
         "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_APP=OFF", "-DLLAMA_BUILD_UI=OFF",
         "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_OPENSSL=OFF", "-DGGML_NATIVE=ON", *no_amx],
        check=True)
    subprocess.run(["nice", "-n", "10", "cmake", "--build", str(out), "-j", str(jobs),
                    "--target", *TARGETS], check=True)
    return paths


class LlamaServer:
    """`llama-server` on a free loopback port; a context manager that stops it on exit."""

    def __init__(self, model: Path = MODEL, *, n_ctx: int = 1024, n_parallel: int = 1,
                 threads: int | None = None, cache_prompt: bool = True,
                 extra: list[str] | None = None, log: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.n_parallel = n_parallel
        # llama-server splits -c among its slots; ours gives every slot N_CTX, so multiply.
        args = [str(binaries()["llama-server"]), "-m", str(model), "--host", "127.0.0.1",
                "--port", str(self.port), "-c", str(n_ctx * n_parallel), "-np", str(n_parallel),
                "-t", str(threads or os.cpu_count() or 2), "--no-webui"]
        if not cache_prompt:
            args.append("--no-cache-prompt")
        # `log`: a file for llama-server's log (stderr), else it is discarded.
        with open(log or os.devnull, "wb") as stderr:
            self.proc = subprocess.Popen(args + (extra or []), stdout=subprocess.DEVNULL,
                                         stderr=stderr)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.proc.returncode}")
            try:
                if requests.get(f"{self.url}/health", timeout=10).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("llama-server did not start")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def __enter__(self) -> LlamaServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def llama_bench(model: Path = MODEL, *, threads: int | None = None, n_prompt: int = 128,
                n_gen: int = 64, repetitions: int = 3) -> dict[str, float]:
    """llama-bench's prompt-processing and generation tokens/s (its averages)."""
    out = subprocess.run(
        [str(binaries()["llama-bench"]), "-m", str(model), "-t", str(threads or os.cpu_count()),
         "-p", str(n_prompt), "-n", str(n_gen), "-r", str(repetitions), "-o", "json"],
        check=True, capture_output=True, text=True).stdout
    rows = json.loads(out)
    result = {}
    for row in rows:
        kind = "pp" if row["n_prompt"] and not row["n_gen"] else "tg"
        result[f"{kind}{row['n_prompt'] or row['n_gen']}_tok_s"] = row["avg_ts"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("build", "bench"))
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    paths = binaries(jobs=args.jobs)
    if args.command == "build":
        for name, path in paths.items():
            print(f"{name}: {path}")
        return
    print(f"llama-bench, {MODEL.name}, llama.cpp from llama-cpp-python "
          f"{llama_cpp_python_version()}:")
    for key, value in llama_bench().items():
        print(f"  {key}: {value:.1f}")


if __name__ == "__main__":
    main()
