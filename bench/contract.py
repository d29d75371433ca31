"""The long schemathesis pass: every non-admin operation of /openapi.json, --checks all.

    python bench/contract.py                       # 25 examples per operation, 15 min at most
    python bench/contract.py --examples 10 --max-seconds 300

Starts `slm-api serve` (gunicorn, the production worker) with MAX_TOKENS_CAP=16 so generated
requests stay short, and prints schemathesis' summary; exit status 0 when it found nothing.
tests/core/test_contract.py runs a bounded pass of the same in `make test`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from server import REPO, Server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=25)
    parser.add_argument("--max-seconds", type=int, default=900)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    server = Server(MAX_TOKENS_CAP=16, N_CTX=1024)
    try:
        st = Path(sys.executable).with_name("st")
        started = time.monotonic()
        out = subprocess.run(
            [str(st), "run", f"{server.url}/openapi.json", "--checks", "all", "--exclude-tag",
             "admin", "-n", str(args.examples), "--max-time", str(args.max_seconds), "--seed",
             str(args.seed), "--generation-database", "none", "--no-color", "--warnings", "off"],
            cwd=REPO, capture_output=True, text=True, timeout=args.max_seconds + 300)
        summary = out.stdout.split("SUMMARY", 1)[-1]
        print(summary.strip())
        print(f"wall_s {time.monotonic() - started:.0f}, rss_mb {server.rss_mb():.0f}")
        return out.returncode
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
