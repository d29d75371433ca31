"""One sequence's KV state between llama.cpp and the disk prompt cache (PROMPT_CACHE=disk):
restored instead of evaluating a saved prefix again, saved after a request over a long prompt,
with the logits that followed its prompt (Slot.end)."""

from __future__ import annotations

import ctypes
import logging

import llama_cpp

from slm_api.engine.job import Job
from slm_api.engine.prompt_cache import MIN_TOKENS, DiskPromptCache
from slm_api.engine.slots import Slot

log = logging.getLogger(__name__)


def restore(ctx: llama_cpp.llama_context_p, disk: DiskPromptCache, slot: Slot,
            prompt: list[int], keep: int) -> int:
    """Load the longest saved prefix of `prompt` into `slot` when it beats the `keep` tokens the
    slot already holds; returns how many prompt tokens are now cached."""
    key, n = disk.best(prompt)
    if key is None or n < keep + MIN_TOKENS // 2:
        return keep
    data = disk.read(key)
    if not data:
        return keep
    llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(ctx), slot.seq_id, -1, -1)
    buf = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    if llama_cpp.llama_state_seq_set_data(ctx, buf, len(data), slot.seq_id) == 0:
        log.warning("prompt cache: could not restore a saved state; evaluating instead")
        slot.cached.clear()
        slot.end = None
        return 0
    slot.cached = disk.tokens(key)
    slot.end = disk.end(key)
    return n


def save(ctx: llama_cpp.llama_context_p, disk: DiskPromptCache, slot: Slot, job: Job) -> None:
    """Save `slot`'s state after `job` when its prompt is long enough to be worth loading."""
    prompt = job.request.prompt
    if job.decoding.sampler is not None and len(prompt) < MIN_TOKENS:
        return
    if disk.best(prompt)[1] >= len(prompt):
        return
    size = llama_cpp.llama_state_seq_get_size(ctx, slot.seq_id)
    buf = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(ctx, buf, size, slot.seq_id)
    if written:
        end = slot.end if slot.end is not None and slot.end.n <= len(slot.cached) else None
        disk.save(list(slot.cached), bytes(buf)[:written], end)
