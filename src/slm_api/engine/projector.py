"""A model's multimodal projector (libmtmd): images and audio in a prompt as embeddings.

A prompt with media is tokenized by libmtmd into text tokens and media chunks. A media chunk
takes `n_tokens` places in the prompt's token list, filled with placeholder ids (negative,
never vocabulary ids) that spell out the chunk's whole digest: the scheduler's prefix matching
and the prompt cache (in RAM and on disk) then treat the same image at the same place as the
same tokens, and a different image as different ones, without knowing what an image is.

The encoder runs on the request's own thread (`encode`, from the model's submit), never on the
decode loop: a real vision tower takes hundreds of milliseconds a picture on a CPU, and on the
loop that would be a pause in every other slot's stream. When the scheduler reaches a chunk
while reading a prompt, `evaluate` only decodes the embeddings already attached to it into the
slot's own sequence.

libmtmd's context is not documented as thread-safe: one lock serialises the HTTP threads'
`tokenize` and `encode`. `evaluate` (the loop) reads only the context's fixed settings and the
embeddings it is handed, so it takes no lock and never waits for an encoder.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import mtmd_cpp as mtmd

from slm_api.engine import native
from slm_api.engine.job import GenerationFailed
from slm_api.engine.types import MediaSpan
from slm_api.errors import InvalidRequest, ModelLoadError
from slm_api.gguf_info import unreadable
from slm_api.media.decode import Audio, Image

log = logging.getLogger(__name__)

# Encoded images kept by digest: a picture asked about again (another question, another
# position, a sequence evicted from the cache) is decoded from these, not encoded again.
# SmolVLM's 64 tokens x 576 floats are 147 KB an image.
ENCODED_KEEP = 32


_NO_CALLBACK = mtmd.mtmd_helper_post_decode_callback()  # a NULL function pointer


class _Chunk:
    def __init__(self, ptr: int):
        self.ptr = ptr
        self.embd: np.ndarray | None = None  # the encoder's output, set by Projector.encode
        self._free = weakref.finalize(self, mtmd.mtmd_input_chunk_free, ptr)


def placeholders(key: str, n: int) -> list[int]:
    """The ids a chunk's `n` places carry in a prompt: negative, so never vocabulary ids, and
    together the whole SHA-256 of its key, 30 bits a place (nine places hold all 256; the
    rest repeat them). One id a picture kept 30 bits of its digest: two pictures colliding
    there (a birthday search of 0.5 s; a chosen one 2^30 hashes) shared cached KV cells, and
    one was answered as the other."""
    bits = int.from_bytes(hashlib.sha256(key.encode()).digest(), "big")
    ids = [-1 - ((bits >> (30 * i)) & 0x3FFF_FFFF) for i in range(9)]
    return [ids[i % 9] for i in range(n)]


def find_mmproj(model: Path) -> Path | None:
    """The projector beside `model`, by llama.cpp's and Ollama's naming: `mmproj-<name>.gguf`,
    where <name> is the model's file name, or the same name with another quantisation suffix
    (`SmolVLM-256M-Instruct-Q8_0.gguf` takes `mmproj-SmolVLM-256M-Instruct-f16.gguf`). A
    projector of another model in the same folder is never taken."""
    folder, stem = model.parent, model.stem.lower()
    base = stem.rsplit("-", 1)[0]
    found = None
    for cand in sorted(folder.glob("mmproj-*.gguf")):
        name = cand.stem.lower()[len("mmproj-"):]
        if name == stem:
            return cand
        if found is None and name.rsplit("-", 1)[0] == base and "-" in name:
            found = cand
    return found


class Projector:
    def __init__(self, path: Path, model: llama_cpp.llama_model_p, *, use_gpu: bool,
                 n_threads: int):
        native.init_backend()
        mtmd.mtmd_helper_log_set(native._on_log, ctypes.c_void_p(0))
        params = mtmd.mtmd_context_params_default()
        params.use_gpu = use_gpu
        params.n_threads = n_threads
        params.print_timings = False
        params.warmup = False
        native.take_recent_errors()
        ctx = mtmd.mtmd_init_from_file(str(path).encode(), model, params)
        if not ctx:
            reason = native.take_recent_errors() or "libmtmd could not load it"
            raise ModelLoadError(f"cannot load the projector {path.name}: {reason}",
                                 param="mmproj")
        self._ctx = ctx
        self.path = path
        kinds = set()
        if mtmd.mtmd_support_vision(ctx):
            kinds.add("image")
        if mtmd.mtmd_support_audio(ctx):
            kinds.add("audio")
        self.kinds = frozenset(kinds)
        self._n_embd = int(llama_cpp.llama_model_n_embd_inp(model))
        self._lock = threading.Lock()
        self._encoded: OrderedDict[str, np.ndarray] = OrderedDict()
        self.images_encoded = 0  # encoder runs (a repeated digest reuses its embeddings)
        self.encode_reused = 0
        self.encode_s = 0.0  # time in the encoder, all runs (bench/vision.py reads it)

    # -- HTTP threads --------------------------------------------------------------------------

    def tokenize(self, parts: Sequence[str | Image | Audio], *, param: str = "messages"
                 ) -> tuple[list[int], tuple[MediaSpan, ...]]:
        """Token ids of a prompt given as text and media in order, and where its media sit.
        Text is tokenized as the model's own tokenizer does (special tokens parsed); no marker
        string is involved, so a client's text cannot make an image slot."""
        texts: list[mtmd.mtmd_input_text] = []
        inputs: list[mtmd.mtmd_input_part] = []
        bitmaps: list[int] = []
        try:
            for part in parts:
                if isinstance(part, str):
                    data = part.encode("utf-8")
                    t = mtmd.mtmd_input_text(data, len(data), False, True)
                    texts.append(t)
                    inputs.append(mtmd.mtmd_input_part(ctypes.pointer(t), None))
                else:
                    bm = self._bitmap(part, param)
                    bitmaps.append(bm)
                    inputs.append(mtmd.mtmd_input_part(None, bm))
            array = (ctypes.POINTER(mtmd.mtmd_input_part) * len(inputs))(
                *[ctypes.pointer(p) for p in inputs])
            chunks = mtmd.mtmd_input_chunks_init()
            try:
                with self._lock:
                    rc = mtmd.mtmd_tokenize_from_parts(self._ctx, chunks, array, len(inputs),
                                                       True)
                if rc != 0:
                    raise InvalidRequest(f"the projector could not read the media in {param} "
                                         f"(libmtmd error {rc})", param=param)
                return self._spans(chunks, param)
            finally:
                mtmd.mtmd_input_chunks_free(chunks)
        finally:
            for bm in bitmaps:
                mtmd.mtmd_bitmap_free(bm)

    def _bitmap(self, media: Image | Audio, param: str) -> int:
        kind = "image" if isinstance(media, Image) else "audio"
        if kind not in self.kinds:
            raise InvalidRequest(f"{param}: this model's projector takes no {kind}",
                                 param=param)
        if isinstance(media, Image):
            buf = (ctypes.c_uint8 * len(media.rgb)).from_buffer_copy(media.rgb)
            bm = mtmd.mtmd_bitmap_init(media.width, media.height, buf)
        else:
            buf = (ctypes.c_float * media.n_samples).from_buffer_copy(media.pcm)
            bm = mtmd.mtmd_bitmap_init_from_audio(media.n_samples, buf)
        if not bm:
            raise InvalidRequest(f"{param}: the projector refused this {kind}", param=param)
        mtmd.mtmd_bitmap_set_id(bm, media.digest.encode())
        return bm

    def _spans(self, chunks: int, param: str) -> tuple[list[int], tuple[MediaSpan, ...]]:
        tokens: list[int] = []
        spans: list[MediaSpan] = []
        seen: dict[str, int] = {}
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                n = ctypes.c_size_t(0)
                ids = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                tokens.extend(ids[: n.value])
                continue
            digest = (mtmd.mtmd_input_chunk_get_id(chunk) or b"").decode()
            n_tokens = int(mtmd.mtmd_input_chunk_get_n_tokens(chunk))
            owned = _Chunk(mtmd.mtmd_input_chunk_copy(chunk))
            # One medium can be several chunks with its one id (a clip's 30 s windows, an
            # image's tiles): each needs its own key, or the encoder's cache would hand the
            # first chunk's embeddings to the others.
            k = seen[digest] = seen.get(digest, -1) + 1
            key = f"{digest}:{k}" if k else digest
            # With M-RoPE an image takes fewer positions than tokens (slots.position).
            n_pos = int(mtmd.mtmd_input_chunk_get_n_pos(chunk))
            spans.append(MediaSpan(len(tokens), n_tokens, key, owned, n_pos))
            tokens.extend(placeholders(key, n_tokens))
        if spans and spans[-1].start + spans[-1].n_tokens == len(tokens):
            # The first token is sampled from the logits after the prompt's last text token.
            raise InvalidRequest(f"{param}: the prompt must not end with an image or a sound; "
                                 "put the question after it", param=param)
        return tokens, tuple(spans)

    def encode(self, spans: Sequence[MediaSpan]) -> None:
        """Attach each span's embeddings: the ones encoded for the same digest before, else a
        run of the encoder here, on the calling (request) thread."""
        for span in spans:
            if span.chunk.embd is None:
                span.chunk.embd = self._embeddings(span)

    def _embeddings(self, span: MediaSpan) -> np.ndarray:
        with self._lock:
            embd = self._encoded.get(span.digest)
            if embd is not None:
                self._encoded.move_to_end(span.digest)
                self.encode_reused += 1
                return embd
            start = time.perf_counter()
            rc = mtmd.mtmd_encode_chunk(self._ctx, span.chunk.ptr)
            self.encode_s += time.perf_counter() - start
            if rc != 0:
                raise GenerationFailed(f"encoding an image failed (libmtmd error {rc})")
            out = mtmd.mtmd_get_output_embd(self._ctx)
            embd = np.ctypeslib.as_array(out, shape=(span.n_tokens * self._n_embd,)).copy()
            self.images_encoded += 1
            self._encoded[span.digest] = embd
            while len(self._encoded) > ENCODED_KEEP:
                self._encoded.popitem(last=False)
            return embd

    # -- the loop thread -----------------------------------------------------------------------

    def evaluate(self, span: MediaSpan, lctx: llama_cpp.llama_context_p, n_past: int,
                 seq_id: int, n_batch: int) -> None:
        """Decode the span's embeddings (attached by `encode`) into sequence `seq_id` from
        position `n_past` (with M-RoPE the helper gives the image its 2-D positions from
        there; the span's `n_pos` says how many it takes)."""
        embd = span.chunk.embd
        if embd is None:
            raise RuntimeError("an image reached the decode loop without its embeddings")
        new_n_past = llama_cpp.llama_pos(0)
        rc = mtmd.mtmd_helper_decode_image_chunk(
            self._ctx, lctx, span.chunk.ptr, embd.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            n_past, seq_id, n_batch, ctypes.byref(new_n_past), _NO_CALLBACK, None)
        if rc != 0:
            raise RuntimeError(f"decoding an image's embeddings failed ({rc})")
        if new_n_past.value != n_past + span.n_pos:
            # The scheduler places the next tokens by span.n_pos: a disagreement would put
            # them at positions the model never saw.
            raise RuntimeError(f"the image took {new_n_past.value - n_past} positions, "
                               f"not {span.n_pos}")

    def close(self) -> None:
        if self._ctx:
            mtmd.mtmd_free(self._ctx)
            self._ctx = None


def open_projector(path: Path, settings: Any, options: Any, model: llama_cpp.llama_model_p,
                   *, use_gpu: bool, n_threads: int) -> Projector | None:
    """The projector a model loads with: the `mmproj` load option (/load, /reload), MMPROJ for
    the default model, or one found beside the model by name; None for a text-only model."""
    mmproj = options.mmproj
    if mmproj is None and settings.mmproj is not None and \
            path.resolve() == settings.default_model_path.resolve():
        mmproj = settings.mmproj
    if mmproj is None:
        mmproj = find_mmproj(path)
    if mmproj is None:
        return None
    if not Path(mmproj).is_file():
        raise ModelLoadError(f"the projector {mmproj} is not a file", param="mmproj")
    # Read by our bounded parser first, as the model is: a corrupt header is a 400 here,
    # never undefined behaviour in C.
    reason = unreadable(Path(mmproj))
    if reason is not None:
        raise ModelLoadError(f"{Path(mmproj).name} is not a readable GGUF file: {reason}",
                             param="mmproj")
    return Projector(Path(mmproj), model, use_gpu=use_gpu, n_threads=n_threads)


def file_media_kinds(path: Path, settings: Any) -> frozenset[str]:
    """What the projector a model would load with declares (its header only), before the model
    is loaded: for listings."""
    mmproj = settings.mmproj if settings.mmproj is not None and \
        path.resolve() == settings.default_model_path.resolve() else find_mmproj(path)
    if mmproj is None or not Path(mmproj).is_file() or unreadable(Path(mmproj)) is not None:
        return frozenset()  # a broken projector is reported when the model loads
    native.init_backend()
    caps = mtmd.mtmd_get_cap_from_file(str(mmproj).encode())
    return frozenset(k for k, on in (("image", caps.inp_vision), ("audio", caps.inp_audio))
                     if on)
