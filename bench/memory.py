"""Resident memory of our worker against llama.cpp's llama-server, and where ours goes.

For each model, starts `slm-api serve` with N_PARALLEL and N_CTX (per sequence: the context
holds N_CTX x N_PARALLEL cells) and then llama-server with `-np N_PARALLEL -c N_CTX*N_PARALLEL`
(the same llama.cpp, bench/anchors.py), one after the other so that neither shares the other's
page cache. Each is warmed up the same way: two short chats, one ~1,500-token prompt (every
compute buffer is touched by a full 512-token ubatch), a burst of N_PARALLEL concurrent chats,
and one structured request (/v1/extract for ours, a json_schema response_format for
llama-server). Then it prints RSS, PSS and USS (/proc/PID/smaps_rollup) of the gunicorn worker
(the process that holds the model; the master is printed apart) and of llama-server, their
ratio, and a breakdown of each:

- model weights: the resident part of the .gguf's file mapping (shared page cache, clean);
- llama.cpp buffers, sized from llama.cpp's own log at context creation (the worker runs with
  LOG_LEVEL=DEBUG, which is where it sends llama.cpp's info lines): repacked weights, KV cache,
  compute buffer, output (logits) buffer; a second context (embeddings) shows up as a second
  set. KV and output buffers are cleared at creation, so all resident; the compute buffer is
  counted at its size (an upper bound: its pages are resident once a full ubatch has run);
- shared libraries and executables: resident file-backed mappings other than the .gguf;
- the rest (RSS less the rows above; a compute buffer's pages never touched come off it): in
  both the vocabulary and the model's metadata; in llama-server also its RAM prompt cache
  (slot states saved after requests); in ours also the Python side, which
  a probe process (this script with --probe) measures apart: the interpreter, every module the
  worker imports, and the llguidance tokenizer built from the model's vocabulary (anonymous
  memory before and after, garbage collected).

    PYTHONPATH=src python bench/memory.py [--models smollm2-135m-instruct-q4_1,gemma-3-270m-q4_k_m]
                                          [--ctx 4096] [--parallel 8] [--skip-anchor]
                                          [--env NAME=VALUE ...]

The KV cache sweep: with --kv-cache-type and/or --flash-attention (comma lists), each
combination runs ours (KV_CACHE_TYPE, FLASH_ATTENTION) and llama-server (-ctk/-ctv, -fa) with
the same warm-up, then a timed burst of N_PARALLEL concurrent 64-token chats; one table of
RSS, the KV buffer (llama.cpp's log) and tokens/s (completion tokens over the burst's wall
time), ours beside llama-server:

    PYTHONPATH=src python bench/memory.py --models smollm2-135m-instruct-q4_1 \
        --kv-cache-type f16,q8_0,q4_0 --flash-attention auto
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from server import MODEL, REPO, Server

MIB = 1024 * 1024
MODELS = ("smollm2-135m-instruct-q4_1", "gemma-3-270m-q4_k_m")
LONG_PROMPT = " ".join(f"Line {i}: the lighthouse keeper counted the waves." for i in range(120))


# -- /proc ----------------------------------------------------------------------------------


def rollup(pid: int) -> dict[str, int]:
    """smaps_rollup's fields in bytes, with USS (private pages) added."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        out[key] = int(value.split()[0]) * 1024
    out["Uss"] = out["Private_Clean"] + out["Private_Dirty"]
    return out


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class Mapping:
    path: str
    size: int
    rss: int = 0


def mappings(pid: int) -> list[Mapping]:
    maps: list[Mapping] = []
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split(None, 5)
        if re.fullmatch(r"[0-9a-f]+-[0-9a-f]+", parts[0]):
            start, end = (int(x, 16) for x in parts[0].split("-"))
            maps.append(Mapping(parts[5].strip() if len(parts) > 5 else "", end - start))
        elif parts[0] == "Rss:":
            maps[-1].rss = int(parts[1]) * 1024
    return maps


# -- llama.cpp's log ------------------------------------------------------------------------

REPACKED = re.compile(r"CPU_REPACK model buffer size = +([\d.]+) MiB")
BUFFER_LINES = {
    "KV cache": re.compile(r"KV buffer size = +([\d.]+) MiB"),
    "compute buffer": re.compile(r"compute buffer size = +([\d.]+) MiB"),
    "output (logits) buffer": re.compile(r"output buffer size = +([\d.]+) MiB"),
}


@dataclass
class Buffers:
    """llama.cpp's buffers in bytes: repacked weights, then each context in creation order."""

    repacked: float = 0.0
    contexts: list[dict[str, float]] = field(default_factory=list)
    kv_cells: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, log: str) -> Buffers:
        out = cls()
        for line in log.splitlines():
            if "constructing llama_context" in line:
                out.contexts.append({})
            if m := REPACKED.search(line):
                out.repacked += float(m[1]) * MIB
            if m := re.search(r"\( *(\d+) cells, +(\d+) layers, +(\d+)/(\d+) seqs", line):
                streams = f" x {m[4]} streams" if m[4] != "1" else ""
                out.kv_cells.append(f"{m[1]} cells{streams} x {m[2]} layers")
            for name, pattern in BUFFER_LINES.items():
                if (m := pattern.search(line)) and out.contexts:
                    ctx = out.contexts[-1]
                    ctx[name] = ctx.get(name, 0.0) + float(m[1]) * MIB
        return out

    def first(self, name: str) -> float:
        return self.contexts[0].get(name, 0.0) if self.contexts else 0.0

    def further(self) -> float:
        """Every context after the first (ours: the embeddings context, created on demand)."""
        return sum(sum(c.values()) for c in self.contexts[1:])


# -- warm-up --------------------------------------------------------------------------------


def chat(url: str, content: str, max_tokens: int, **extra: object) -> None:
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": max_tokens,
            "temperature": 0.7, "seed": 1, **extra}
    r = requests.post(f"{url}/v1/chat/completions", json=body, timeout=600)
    r.raise_for_status()


def warm_up(url: str, n_parallel: int, ours: bool) -> None:
    from extract import DOCUMENT, SCHEMA

    chat(url, "What is the capital of Japan?", 16)
    chat(url, "Name three primary colors.", 32)
    chat(url, f"{LONG_PROMPT}\nWhat did the keeper count?", 16)
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            chat(url, f"Write a story about a lighthouse keeper ({i}).", 64)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    burst = [threading.Thread(target=one, args=(i,)) for i in range(n_parallel)]
    for t in burst:
        t.start()
    for t in burst:
        t.join()
    if errors:
        raise errors[0]
    if ours:
        r = requests.post(f"{url}/v1/extract", json={"text": DOCUMENT, "schema": SCHEMA,
                                                      "max_tokens": 160}, timeout=600)
        r.raise_for_status()
    else:
        chat(url, f"{DOCUMENT}\nExtract the record as JSON.", 160, response_format={
            "type": "json_schema", "json_schema": {"name": "record", "schema": SCHEMA}})
    time.sleep(1)  # let freed memory go back before measuring


# -- the probe: what the worker's Python side costs, measured in a process of its own --------


def anon() -> int:
    import gc

    gc.collect()
    return rollup(os.getpid())["Anonymous"]


def probe(model: Path) -> None:
    start = anon()
    import gunicorn.app.base  # noqa: F401
    import llama_cpp

    import slm_api.app  # noqa: F401
    import slm_api.server.worker  # noqa: F401
    from slm_api.engine.masks import MaskTokenizer
    from slm_api.engine.native import init_backend

    imported = anon()
    init_backend()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    vocab_model = llama_cpp.llama_model_load_from_file(str(model).encode(), params)
    vocab = llama_cpp.llama_model_get_vocab(vocab_model)
    loaded = anon()
    masks = MaskTokenizer(vocab, llama_cpp.llama_vocab_n_tokens(vocab))
    masks.wait()
    built = anon()
    print(json.dumps({"interpreter": start, "imports": imported - start,
                      "llguidance tokenizer": built - loaded}))
    masks.close()
    llama_cpp.llama_model_free(vocab_model)


def run_probe(model: Path) -> dict[str, int]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run([sys.executable, __file__, "--probe", str(model)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# -- one server -----------------------------------------------------------------------------


@dataclass
class Measured:
    rollup: dict[str, int]
    peak: int
    maps: list[Mapping]
    buffers: Buffers
    idle_rss: int
    master_rss: int = 0
    tok_s: float | None = None  # the sweep's timed burst

    def weights(self, model: Path) -> int:
        real = str(model.resolve())
        return sum(m.rss for m in self.maps if m.path in (real, str(model)))

    def libraries(self, model: Path) -> int:
        real = str(model.resolve())
        return sum(m.rss for m in self.maps if m.path.startswith("/") and
                   m.path not in (real, str(model)))


def burst_tokens_per_s(url: str, n_parallel: int) -> float:
    """Completion tokens per second of wall time for N_PARALLEL concurrent 64-token chats:
    every slot decoding at once, as the KV cache type changes what each step reads."""
    counts: list[int] = []

    def one(i: int) -> None:
        body = {"messages": [{"role": "user", "content": f"Tell a long tale of ships ({i})."}],
                "max_tokens": 64, "temperature": 0.7, "seed": i}
        r = requests.post(f"{url}/v1/chat/completions", json=body, timeout=600)
        r.raise_for_status()
        counts.append(r.json()["usage"]["completion_tokens"])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n_parallel)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if len(counts) != n_parallel:
        raise RuntimeError("a request of the burst failed")
    return sum(counts) / (time.monotonic() - start)


def measure_ours(model: Path, ctx: int, parallel: int, threads: int,
                 env: dict[str, str], speed: bool = False) -> Measured:
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        server = Server(log=Path(log.name), MODEL_PATH=model, N_CTX=ctx, N_PARALLEL=parallel,
                        N_THREADS=threads, LOG_LEVEL="DEBUG", **env)
        try:
            pid = server.worker_pids()[0]
            idle = rollup(pid)["Rss"]
            warm_up(server.url, parallel, ours=True)
            m = Measured(rollup(pid), peak_rss(pid), mappings(pid),
                         Buffers.parse(Path(log.name).read_text(errors="replace")), idle,
                         master_rss=rollup(server.proc.pid)["Rss"])
            if speed:
                m.tok_s = burst_tokens_per_s(server.url, parallel)
        finally:
            server.stop()
    return m


def measure_anchor(model: Path, ctx: int, parallel: int, threads: int,
                   extra: tuple[str, ...] = (), speed: bool = False) -> Measured:
    from anchors import LlamaServer

    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        # -lv 4: llama.cpp's info lines (buffer sizes) are below llama-server's default level.
        with LlamaServer(model, n_ctx=ctx, n_parallel=parallel, threads=threads,
                         log=Path(log.name), extra=["-lv", "4", *extra]) as anchor:
            pid = anchor.proc.pid
            idle = rollup(pid)["Rss"]
            warm_up(anchor.url, parallel, ours=False)
            m = Measured(rollup(pid), peak_rss(pid), mappings(pid),
                         Buffers.parse(Path(log.name).read_text(errors="replace")), idle)
            if speed:
                m.tok_s = burst_tokens_per_s(anchor.url, parallel)
            return m


# -- report ---------------------------------------------------------------------------------


def mib(n: float | None) -> str:
    return "-" if n is None else f"{n / MIB:,.0f}"


def report(model: Path, ctx: int, parallel: int, ours: Measured, anchor: Measured | None,
           probe_out: dict[str, int]) -> None:
    a = anchor
    print(f"\n## {model.name}: N_CTX={ctx} x N_PARALLEL={parallel} against llama-server "
          f"-c {ctx * parallel} -np {parallel}\n")
    print("| MiB | ours (gunicorn worker) | llama-server | ratio |")
    print("|---|---|---|---|")
    for label, key in (("RSS", "Rss"), ("PSS", "Pss"), ("USS", "Uss")):
        ratio = f"{ours.rollup[key] / a.rollup[key]:.2f}x" if a else "-"
        print(f"| {label} | {mib(ours.rollup[key])} | {mib(a.rollup[key] if a else None)} "
              f"| {ratio} |")
    print(f"| RSS before warm-up | {mib(ours.idle_rss)} | {mib(a.idle_rss if a else None)} "
          "| |")
    print(f"| peak RSS (VmHWM) | {mib(ours.peak)} | {mib(a.peak if a else None)} | |")
    print(f"\n(gunicorn master, apart: {mib(ours.master_rss)} MiB RSS)\n")

    rows: list[tuple[str, float, float | None]] = []
    rows.append(("model weights (.gguf mapping, resident)", ours.weights(model),
                 a.weights(model) if a else None))
    rows.append(("repacked weights (CPU_REPACK, anonymous)", ours.buffers.repacked,
                 a.buffers.repacked if a else None))
    for name in BUFFER_LINES:
        rows.append((name, ours.buffers.first(name), a.buffers.first(name) if a else None))
    rows.append(("further contexts (embeddings)", ours.buffers.further(),
                 a.buffers.further() if a else None))
    rows.append(("shared libraries and executable (resident)", ours.libraries(model),
                 a.libraries(model) if a else None))
    known_ours = sum(r[1] for r in rows)
    known_anchor = sum(r[2] or 0 for r in rows) if a else None
    rest_ours = ours.rollup["Rss"] - known_ours
    rest_anchor = a.rollup["Rss"] - known_anchor if a else None
    rows.append(("rest: other anonymous memory", rest_ours, rest_anchor))
    print("| MiB | ours | llama-server | ours - llama-server |")
    print("|---|---|---|---|")
    for label, o, l_ in rows:
        diff = "-" if l_ is None else f"{(o - l_) / MIB:+,.0f}"
        print(f"| {label} | {mib(o)} | {mib(l_)} | {diff} |")
    total_diff = f"{(ours.rollup['Rss'] - a.rollup['Rss']) / MIB:+,.0f}" if a else "-"
    print(f"| total RSS | {mib(ours.rollup['Rss'])} | {mib(a.rollup['Rss'] if a else None)} "
          f"| {total_diff} |")
    print(f"\nKV cells: ours {', '.join(ours.buffers.kv_cells)}; "
          f"llama-server {', '.join(a.buffers.kv_cells) if a else '-'}")
    # No mapping names the Python side: the probe measures it in a process of its own.
    print("\nThe Python side of ours, measured apart by a probe process (anonymous memory, "
          "garbage collected):\n")
    print("| MiB | |")
    print("|---|---|")
    print(f"| interpreter and bench imports | {mib(probe_out['interpreter'])} |")
    print(f"| the worker's imports (slm_api.app, gunicorn, llama_cpp, llguidance, numpy, "
          f"jsonschema, ...) | {mib(probe_out['imports'])} |")
    print(f"| llguidance tokenizer of this vocabulary | "
          f"{mib(probe_out['llguidance tokenizer'])} |")


def sweep(model: Path, args: argparse.Namespace, env: dict[str, str]) -> None:
    """One row per KV cache type and flash attention mode, ours beside llama-server."""
    rows = []
    for cache in args.kv_cache_type.split(","):
        for fa in args.flash_attention.split(","):
            ours = measure_ours(model, args.ctx, args.parallel, args.threads,
                                {**env, "KV_CACHE_TYPE": cache, "FLASH_ATTENTION": fa}, True)
            anchor = None if args.skip_anchor else measure_anchor(
                model, args.ctx, args.parallel, args.threads,
                ("-ctk", cache, "-ctv", cache, "-fa", fa), True)
            rows.append((cache, fa, ours, anchor))
            print(f"# {cache} / {fa}: ours {mib(ours.rollup['Rss'])} MiB, "
                  f"{ours.tok_s:.1f} tok/s", file=sys.stderr, flush=True)
    print(f"\n## {model.name}: KV cache at N_CTX={args.ctx} x N_PARALLEL={args.parallel}\n")
    print("| K/V cache | flash attn | ours RSS | ours KV | ours tok/s | llama-server RSS "
          "| llama-server KV | llama-server tok/s | RSS ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for cache, fa, ours, a in rows:
        speed = f"{a.tok_s:.1f}" if a and a.tok_s else "-"
        ratio = f"{ours.rollup['Rss'] / a.rollup['Rss']:.2f}x" if a else "-"
        print(f"| {cache} | {fa} | {mib(ours.rollup['Rss'])} | "
              f"{mib(ours.buffers.first('KV cache'))} | {ours.tok_s:.1f} | "
              f"{mib(a.rollup['Rss'] if a else None)} | "
              f"{mib(a.buffers.first('KV cache') if a else None)} | {speed} | {ratio} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--ctx", type=int, default=4096, help="N_CTX per sequence")
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--skip-anchor", action="store_true", help="ours only")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for our server (repeatable)")
    parser.add_argument("--kv-cache-type", help="sweep these KV cache types (f16,q8_0,q4_0)")
    parser.add_argument("--flash-attention", help="sweep these modes (auto,on,off)")
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.probe)
        return
    for name in args.models.split(","):
        model = MODEL.parent / f"{name.removesuffix('.gguf')}.gguf"
        env = dict(item.split("=", 1) for item in args.env)
        if args.kv_cache_type or args.flash_attention:
            args.kv_cache_type = args.kv_cache_type or "f16"
            args.flash_attention = args.flash_attention or "auto"
            sweep(model, args, env)
            continue
        ours = measure_ours(model, args.ctx, args.parallel, args.threads, env)
        anchor = None if args.skip_anchor else \
            measure_anchor(model, args.ctx, args.parallel, args.threads)
        report(model, args.ctx, args.parallel, ours, anchor, run_probe(model))


if __name__ == "__main__":
    main()
