"""Images through the engine: what one image costs beside the same text request.

On the suite's tiny synthetic vision model (tests/support/vision_gguf.py: a 2-layer, 64-wide
llama with SmolLM2's vocabulary and a 2-block LLaVA projector, 16 image tokens): the numbers
show the engine's overhead per image (bitmap, libmtmd tokenize, encode, embedding decode), not a
real VLM's encoder. Run in one process, on the engine directly (no HTTP):

    python bench/vision.py [--reps 5] [--tokens 32] [--threads 2] [--mrope]

`--mrope` runs the M-RoPE model instead (tests/support/mrope_vlm_gguf.py: a `qwen2vl` model
and a one-block `qwen2vl_merger` projector; the 640 x 640 picture is 529 tokens on 23
positions), so the position bookkeeping (slots.position) is in every row's decode.

Rows: the text request alone; the same request with a new image (encoded); with the image seen
before in another prompt (the encoder's output reused by digest); and the same request again
(the whole prompt, image included, from the sequence's cache).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))

from support.mrope_vlm_gguf import write_tiny_qwen2vl  # noqa: E402
from support.vision_gguf import write_tiny_vlm  # noqa: E402

from slm_api.config import SMOLLM2_MODEL_FILE, Settings  # noqa: E402
from slm_api.engine.llama_model import LoadedModel  # noqa: E402
from slm_api.engine.types import GenerationRequest, LoadOptions, SamplingParams  # noqa: E402
from slm_api.media.decode import Image  # noqa: E402

TAIL = "<|im_end|>\n<|im_start|>assistant\n"


def picture(seed: int, side: int = 640) -> Image:
    """A noise photo of `side` x `side` (a phone-ish size the projector scales down)."""
    import hashlib

    import numpy as np

    rgb = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8).tobytes()
    return Image(rgb, side, side, hashlib.sha256(rgb).hexdigest())


def run(model: LoadedModel, parts: list, tokens: int
        ) -> tuple[float, float, int, int, float]:
    """(time to first token, decode tokens/s, prompt tokens, cached tokens, tokenize s)."""
    t0 = time.perf_counter()
    if any(isinstance(p, Image) for p in parts):
        prompt, media = model.tokenize_media(parts)
    else:
        prompt, media = model.tokenize("".join(parts)), ()
    tok_s = time.perf_counter() - t0
    req = GenerationRequest(prompt=prompt, max_tokens=tokens, media=media,
                            sampling=SamplingParams(temperature=0))
    start = time.perf_counter()
    gen = model.submit(req)  # encodes the request's new images before queueing it
    queued = time.perf_counter()
    for _ in gen:
        pass
    end = time.perf_counter()
    res = gen.result
    assert res is not None and res.time_to_first_token_s is not None
    # The engine's own first-token time (from queueing) plus submit's encode: a chunk's text
    # may be held back (a partial character), so the first chunk's arrival is not when the
    # first token was sampled.
    ttft = (queued - start) + res.time_to_first_token_s
    rate = (res.completion_tokens - 1) / (end - start - ttft)
    return ttft, rate, res.prompt_tokens, res.cached_tokens, tok_s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mrope", action="store_true", help="the tiny qwen2vl (M-RoPE) model")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="vision-bench-"))
    path, _ = (write_tiny_qwen2vl if args.mrope else write_tiny_vlm)(folder, REPO / "models")
    assert (REPO / "models" / SMOLLM2_MODEL_FILE).is_file()
    settings = Settings(models_dir=folder, n_threads=args.threads, n_ctx=2048, n_parallel=2,
                        prompt_cache="ram")
    model = LoadedModel.load(path, settings, LoadOptions())
    rows: dict[str, list[tuple[float, float, int, int, float]]] = {
        "text only": [], "new image": [], "image seen before": [], "same request again": []}
    enc: list[float] = []
    try:
        for i in range(args.reps):
            # Each rep's prompts are new to the cache (their own first line), except the two
            # rows that measure the cache.
            def head(what: str, i: int = i) -> str:
                return f"<|im_start|>user\n{what} {i}: what is in this picture?\n"

            rows["text only"].append(run(model, [head("Text"), TAIL], args.tokens))
            before = model.projector.encode_s
            rows["new image"].append(
                run(model, [head("Image"), picture(1000 + i), TAIL], args.tokens))
            enc.append((model.projector.encode_s - before) * 1000)
            rows["same request again"].append(
                run(model, [head("Image"), picture(1000 + i), TAIL], args.tokens))
            rows["image seen before"].append(
                run(model, [head("Again"), picture(1000 + i), TAIL], args.tokens))
        stats = model.stats()
    finally:
        model.close()
    base_ttft = min(r[0] for r in rows["text only"])
    base_rate = max(r[1] for r in rows["text only"])
    # Best of the reps, not the median: on a shared machine the least disturbed run is the
    # closest to the cost itself.
    print(f"tiny synthetic VLM ({path.name}), {args.threads} threads, best of {args.reps}, "
          f"{args.tokens} tokens")
    print(f"{'request':<22}{'prompt tok':>11}{'cached':>8}{'tokenize ms':>12}{'TTFT ms':>10}"
          f"{'x text':>8}{'tok/s':>9}{'x text':>8}")
    for name, rs in rows.items():
        ttft = min(r[0] for r in rs)
        rate = max(r[1] for r in rs)
        tok = min(r[4] for r in rs)
        print(f"{name:<22}{rs[0][2]:>11}{rs[0][3]:>8}{tok * 1000:>12.2f}{ttft * 1000:>10.1f}"
              f"{ttft / base_ttft:>8.2f}{rate:>9.0f}{rate / base_rate:>8.2f}")
    n_image = rows["new image"][0][2] - rows["text only"][0][2]
    print(f"image encode (640 x 640 noise, about {n_image} tokens), on the request thread: "
          f"{min(enc):.2f} ms best, {sorted(enc)[len(enc) // 2]:.2f} ms median")
    print(f"encoder runs {stats.get('images_encoded')}, reused {stats.get('image_encodes_reused')}")


if __name__ == "__main__":
    main()
