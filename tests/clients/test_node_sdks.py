"""The SDKs of the Node ecosystem, unchanged, against a real server: the official `openai` and
`@anthropic-ai/sdk` npm packages and the Vercel AI SDK's OpenAI-compatible provider, for chat,
streaming, tools, structured output, embeddings and Messages (tests/node/sdks.test.mjs, run with
`node --test`). Node is Debian's `nodejs` (scripts/system-deps.sh); the packages are the ones
pinned in tests/node/package-lock.json (`make test` runs `npm ci` there)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import embedded_model
from support.http_server import make_settings, running_server

from slm_api.config import MINILM_MODEL_FILE

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


@pytest.fixture(scope="module")
def node_modules() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed (scripts/system-deps.sh installs Debian's "
                    "nodejs and npm, as root)")
    if not (NODE_DIR / "node_modules" / ".package-lock.json").is_file():
        # `make test` ran this already; a bare pytest run installs the pinned packages itself.
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True,
                       timeout=300)
    return NODE_DIR / "node_modules"


@pytest.fixture(scope="module")
def url(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The chat model and MiniLM, as `make run` writes them."""
    folder = tmp_path_factory.mktemp("models-node")
    for path in (model_path, embedded_model(MINILM_MODEL_FILE)):
        os.link(path, folder / path.name)
    with running_server(make_settings(folder)) as base:
        yield base


def test_node_sdks_against_the_server(node_modules: Path, url: str):
    out = subprocess.run(["node", "--test", "--test-reporter=spec", "sdks.test.mjs"],
                         cwd=NODE_DIR, env={**os.environ, "SLM_URL": url},
                         capture_output=True, text=True, timeout=600)
    print(out.stdout)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    # Every case ran and passed (a file that fails to import runs none).
    counts = dict(re.findall(r"^ℹ (tests|pass|fail) (\d+)$", out.stdout, re.M))
    assert counts == {"tests": "12", "pass": "12", "fail": "0"}, out.stdout
