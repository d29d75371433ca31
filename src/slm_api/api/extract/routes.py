"""POST /v1/extract, HTTP only: text or pictures in, JSON that fits a schema out (serving.py)."""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify

from slm_api.api.core.body import parse_body
from slm_api.api.core.contract import contract
from slm_api.api.extract import serving
from slm_api.api.extract.protocol import ExtractRequest, ExtractResult

bp = Blueprint("extract", __name__)


@bp.post("/v1/extract")
@contract(access="api", body=ExtractRequest, response=ExtractResult, media=True)
def extract() -> Response:
    """Extract JSON from text or pictures.

    Text (and, on a vision model, `images`) in, JSON that fits `schema` out (checked against
    it). A `max_tokens` below the shortest JSON that fits is a 400 `max_tokens_too_small`
    naming the budget needed."""
    started = time.perf_counter()
    return jsonify(serving.extract(parse_body(ExtractRequest), started))
