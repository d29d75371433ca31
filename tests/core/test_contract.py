"""The contract is the code: schemathesis (--checks all) against a live server finds nothing.

A bounded pass: a few examples per operation, a time budget. bench/contract.py runs the long
one. Admin routes are left out: they download files and unload the model under test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.http_server import make_settings, running_server

REPO = Path(__file__).resolve().parents[2]
MAX_SECONDS = 120


@pytest.fixture(scope="module")
def small_server(models_dir: Path):
    # Short generations: MAX_TOKENS_CAP bounds what a generated request may cost.
    with running_server(make_settings(models_dir, max_tokens_cap=16, n_ctx=1024)) as url:
        yield url


def run_schemathesis(url: str, examples: int, max_seconds: int) -> subprocess.CompletedProcess:
    st = Path(sys.executable).with_name("st")
    return subprocess.run(
        [str(st), "run", f"{url}/openapi.json", "--checks", "all", "--exclude-tag", "admin",
         "-n", str(examples), "--max-time", str(max_seconds), "--seed", "13",
         "--generation-database", "none", "--no-color", "--warnings", "off"],
        cwd=REPO, capture_output=True, text=True, timeout=max_seconds + 120)


def test_schemathesis_finds_nothing(small_server):
    out = run_schemathesis(small_server, examples=3, max_seconds=MAX_SECONDS)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert "No issues found" in out.stdout or " passed" in out.stdout, out.stdout[-3000:]
