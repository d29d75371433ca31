"""llama.cpp's own answer to a prompt with images, for tests to compare the server with: the
prompt tokenized by libmtmd and evaluated by its helper (`mtmd_helper_eval_chunks`, which places
every chunk as llama.cpp's tools do, M-RoPE images included), then greedy decoding.

Run as a script in a subprocess (a C abort must not take the test process with it): a JSON
object on stdin (`model`, `mmproj`, `prompt`: text with `<__media__>` markers, `images`: base64
files, `max_tokens`, optional `shift`: extra positions given to the text after the first
image, to show an answer depends on positions); the answer's text on stdout.
"""

from __future__ import annotations

import base64
import ctypes
import io
import json
import subprocess
import sys

import numpy as np


def reference_answer(model: str, mmproj: str, prompt: str, images: list[str], *,
                     max_tokens: int, shift: int = 0) -> str:
    """Greedy answer by llama.cpp's own helpers, from a subprocess."""
    return reference_run(model, mmproj, prompt, images, max_tokens=max_tokens,
                         shift=shift)["text"]


def reference_run(model: str, mmproj: str, prompt: str, images: list[str], *,
                  max_tokens: int, shift: int = 0) -> dict:
    """{"text": the greedy answer, "n_tokens": the prompt's tokens, "n_pos": its positions}."""
    job = {"model": model, "mmproj": mmproj, "prompt": prompt, "images": images,
           "max_tokens": max_tokens, "shift": shift}
    out = subprocess.run([sys.executable, __file__], input=json.dumps(job), text=True,
                         capture_output=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _main() -> None:  # pragma: no cover - runs in the subprocess
    import llama_cpp
    from llama_cpp import mtmd_cpp as mtmd
    from PIL import Image

    job = json.load(sys.stdin)
    llama_cpp.llama_backend_init()
    model = llama_cpp.llama_model_load_from_file(job["model"].encode(),
                                                 llama_cpp.llama_model_default_params())
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx, cparams.n_batch = 2048, 512
    ctx = llama_cpp.llama_init_from_model(model, cparams)
    mparams = mtmd.mtmd_context_params_default()
    mparams.use_gpu, mparams.warmup, mparams.print_timings = False, False, False
    mctx = mtmd.mtmd_init_from_file(job["mmproj"].encode(), model, mparams)
    bitmaps = []
    for data in job["images"]:
        img = Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
        rgb = img.tobytes()
        bitmaps.append(mtmd.mtmd_bitmap_init(img.width, img.height,
                                             (ctypes.c_uint8 * len(rgb)).from_buffer_copy(rgb)))
    text = job["prompt"].encode()
    inp = mtmd.mtmd_input_text(text, len(text), True, True)
    chunks = mtmd.mtmd_input_chunks_init()
    arr = (mtmd.mtmd_bitmap_p_ctypes * len(bitmaps))(*bitmaps)
    assert mtmd.mtmd_tokenize(mctx, chunks, ctypes.byref(inp), arr, len(bitmaps)) == 0
    n_past = llama_cpp.llama_pos(0)
    n_tokens = mtmd.mtmd_helper_get_n_tokens(chunks)
    n_pos = mtmd.mtmd_helper_get_n_pos(chunks)
    shifted = False
    for i in range(mtmd.mtmd_input_chunks_size(chunks)):
        chunk = mtmd.mtmd_input_chunks_get(chunks, i)
        is_text = mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT
        if is_text and not shifted and i > 0:
            n_past.value += job["shift"]
            shifted = True
        last = i == mtmd.mtmd_input_chunks_size(chunks) - 1
        rc = mtmd.mtmd_helper_eval_chunk_single(mctx, ctx, chunk, n_past.value, 0, 512, last,
                                                ctypes.byref(n_past))
        assert rc == 0, rc
    vocab = llama_cpp.llama_model_get_vocab(model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    out = b""
    pos = n_past.value
    for _ in range(job["max_tokens"]):
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))
        tok = int(np.argmax(logits))
        if llama_cpp.llama_vocab_is_eog(vocab, tok):
            break
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(vocab, tok, buf, len(buf), 0, False)
        out += buf.raw[:n]
        batch = llama_cpp.llama_batch_init(1, 0, 1)
        batch.n_tokens = 1
        batch.token[0], batch.pos[0], batch.n_seq_id[0], batch.logits[0] = tok, pos, 1, 1
        batch.seq_id[0][0] = 0
        assert llama_cpp.llama_decode(ctx, batch) == 0
        llama_cpp.llama_batch_free(batch)
        pos += 1
    print(json.dumps({"text": out.decode("utf-8", "replace"), "n_tokens": n_tokens,
                      "n_pos": n_pos}))


if __name__ == "__main__":
    _main()
