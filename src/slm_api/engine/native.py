"""Process-wide llama.cpp set-up: backend init, and llama.cpp's log routed to Python logging.

llama.cpp explains load failures only in its log, so the last error lines are kept to give the
client llama.cpp's own reason.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections import deque

import llama_cpp

log = logging.getLogger("llama.cpp")

# ggml's levels: 1 debug, 2 info, 3 warn, 4 error, 5 continues the previous line. Info is
# chatty (every tensor at load), so it goes to debug.
_LEVELS = {3: logging.WARNING, 4: logging.ERROR}
_recent_errors: deque[str] = deque(maxlen=8)
_init_lock = threading.Lock()
_initialised = False
_line: list[str] = []
_line_level = 2


@llama_cpp.llama_log_callback
def _on_log(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
    # llama.cpp sends lines in pieces (level 5 continues the previous one).
    global _line_level
    piece = text.decode("utf-8", errors="replace")
    if level != 5:
        _line_level = level
    _line.append(piece)
    if not piece.endswith("\n"):
        return
    line = "".join(_line).rstrip()
    _line.clear()
    if _line_level in (3, 4) and line:
        _recent_errors.append(line)
    log.log(_LEVELS.get(_line_level, logging.DEBUG), "%s", line)


def init_backend() -> None:
    """Initialise llama.cpp once, and (again on every call) route its log here: the log
    callback is process-wide, and other code in the process may have replaced it."""
    global _initialised
    with _init_lock:
        llama_cpp.llama_log_set(_on_log, ctypes.c_void_p(0))
        if not _initialised:
            llama_cpp.llama_backend_init()
            _initialised = True


def take_recent_errors() -> str:
    """llama.cpp's latest warnings and errors, oldest first, and forget them."""
    lines = [line.replace("llama_model_load: error loading model: ", "") for line in
             _recent_errors]
    _recent_errors.clear()
    return "; ".join(lines)


def amx_kernels_built() -> bool:
    """Whether this build of ggml has its AMX kernels (llama.cpp built with -march=native on a
    Sapphire Rapids or newer Xeon). Their weight repack crashes the first decode (SIGSEGV in
    ggml_backend_amx_mul_mat, llama.cpp issue 20824, seen on this project's CI machines with
    0.3.36), so a model is loaded without the extra buffer types there: slower prompt reading,
    but it runs. `make install` builds without them (Makefile, LLAMA_CMAKE_ARGS)."""
    init_backend()
    return b"AMX_INT8 = 1" in llama_cpp.llama_print_system_info()


def gpu_offload_supported() -> bool:
    init_backend()
    return bool(llama_cpp.llama_supports_gpu_offload())


def _holding_gil(fn: ctypes._CFuncPtr) -> ctypes._CFuncPtr:
    """The same C function through a PyDLL handle: called without releasing the GIL."""
    held = ctypes.PyDLL(llama_cpp.llama_cpp._lib._name)[fn.__name__]
    held.argtypes, held.restype = fn.argtypes, fn.restype
    return held


# The decode loop's short calls keep the GIL. ctypes releases it around every foreign call, and
# taking it back after a 50 µs call means waiting for whichever HTTP thread took it meanwhile:
# at 8 streams that wait was most of the 7% of the loop spent "sampling". llama_decode
# (milliseconds) still releases it, and that is when the HTTP threads run.
sampler_sample = _holding_gil(llama_cpp.llama_sampler_sample)
sampler_accept = _holding_gil(llama_cpp.llama_sampler_accept)
token_to_piece = _holding_gil(llama_cpp.llama_token_to_piece)
vocab_is_eog = _holding_gil(llama_cpp.llama_vocab_is_eog)
get_logits_ith = _holding_gil(llama_cpp.llama_get_logits_ith)


def read_metadata(model: llama_cpp.llama_model_p) -> dict[str, str]:
    """The model's GGUF metadata as strings (a long value, a chat template, read whole)."""
    meta: dict[str, str] = {}
    buf = ctypes.create_string_buffer(1 << 16)
    for i in range(llama_cpp.llama_model_meta_count(model)):
        n = llama_cpp.llama_model_meta_key_by_index(model, i, buf, len(buf))
        key = buf.value.decode("utf-8", errors="replace") if n >= 0 else ""
        n = llama_cpp.llama_model_meta_val_str_by_index(model, i, buf, len(buf))
        if n >= len(buf):  # a long value (a chat template): ask again with room for it
            big = ctypes.create_string_buffer(n + 1)
            llama_cpp.llama_model_meta_val_str_by_index(model, i, big, len(big))
            meta[key] = big.value.decode("utf-8", errors="replace")
        elif n >= 0:
            meta[key] = buf.value.decode("utf-8", errors="replace")
    return meta
