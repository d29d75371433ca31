"""The varied schema set for the converter benchmark: the test cases' schemas (all valid and
within what slm_api's converter supports), kept in one place in tests/support/grammar_cases.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.grammar_cases import CASES  # noqa: E402

SCHEMAS: list[tuple[str, Any]] = [(c.id, c.schema) for c in CASES]
