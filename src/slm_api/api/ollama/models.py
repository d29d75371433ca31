"""Model files as Ollama describes them: `name:tag` names over our ids (file stems), and the
details, model_info and capabilities /api/tags, /api/show and /api/ps report, read from the
GGUF header without loading the model."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slm_api.api.ollama import names
from slm_api.engine.vocab import FileFim, file_fim
from slm_api.errors import APIError, ModelNotFound
from slm_api.gguf_info import (
    ArrayValue,
    file_kind,
    header,
    identity_digest,
    read_header,
    unreadable,
)
from slm_api.plumbing import state
from slm_api.prompting.reasoning import reasoning_for_template

DEFAULT_TAG = "latest"
_FOREVER = datetime(2318, 1, 1, tzinfo=UTC)  # /api/ps for a model that never expires

# llama.cpp's LLAMA_FTYPE values (general.file_type) -> the quantization name Ollama shows.
_FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
}


def ollama_name(model_id: str) -> str:
    """Our id as Ollama's `name:tag` (the tag Ollama shows for an untagged name)."""
    return model_id if ":" in model_id else f"{model_id}:{DEFAULT_TAG}"


def _aliases() -> dict[str, str]:
    """OLLAMA_ALIASES: "name:tag=model-id" entries ("llama3.2=smollm2-..." means :latest)."""
    out: dict[str, str] = {}
    for entry in state.settings().ollama_aliases:
        name, sep, target = entry.partition("=")
        if sep and name.strip() and target.strip():
            out[ollama_name(name.strip())] = target.strip()
    return out


def is_configured_alias(name: str) -> bool:
    """Whether `name` is an OLLAMA_ALIASES name (the operator's settings, not the API's)."""
    return ollama_name(name.strip()) in _aliases()


def resolve(name: str) -> str:
    """The model id an Ollama name means, or Ollama's 404 (`model 'x' not found`)."""
    full = ollama_name(name.strip())
    alias = _aliases().get(full)
    if alias is not None:
        return alias
    models_dir = state.engine().models_dir
    recorded = names.load(models_dir).get(full)
    if recorded is not None and (models_dir / recorded).is_file():
        return recorded.removesuffix(".gguf")
    stem, _, tag = full.rpartition(":")
    candidates = [stem] if tag == DEFAULT_TAG else [full, f"{stem}-{tag}"]
    engine = state.engine()
    for candidate in candidates:
        try:
            engine.path_for_id(candidate)
        except ModelNotFound:
            continue
        return candidate
    raise ModelNotFound(f"model '{name}' not found")


def listed_names() -> list[tuple[str, Path]]:
    """Every name /api/tags lists: each file by the names pulls and copies gave it (else as
    `stem:latest`), then each alias."""
    engine = state.engine()
    files = {p.stem: p for p in engine.model_files()}
    recorded = names.load(engine.models_dir)
    out = [(name, path) for path in files.values() for name in names.names_of(recorded, path.name)]
    out += [(name, files[target]) for name, target in _aliases().items() if target in files]
    return out


def _parameter_size(n: int) -> str:
    # Ollama's style: "134.52M", "8.0B".
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f}{unit}" if unit == "B" else f"{value:.2f}{unit}"
    return str(n)


def kind(path: Path) -> str:
    loaded = {m.id: m.kind for m in state.engine().loaded()}
    return loaded.get(path.stem) or file_kind(path, state.settings().embedding_models)


def details(path: Path) -> dict[str, Any]:
    meta = header(path)
    md = meta.metadata if meta else {}
    arch = str(md.get("general.architecture") or "unknown")
    n_params = int(md.get("general.parameter_count") or (meta.n_params if meta else 0))
    quant = md.get("general.file_type")
    return {
        "parent_model": "",
        "format": "gguf",
        "family": arch,
        "families": [arch],
        "parameter_size": _parameter_size(n_params),
        "quantization_level": _FILE_TYPES.get(quant, "unknown") if isinstance(quant, int)
        else "unknown",
    }


def _modified_at(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).isoformat()


def listed(name: str, path: Path) -> dict[str, Any]:
    """One /api/tags entry; a file whose header cannot be read is still listed (family
    "unknown"), with the reason under "error"."""
    entry = {"name": name, "model": name, "modified_at": _modified_at(path),
             "size": path.stat().st_size, "digest": identity_digest(path),
             "details": details(path)}
    reason = None if state.engine().is_loaded(path.stem) else unreadable(path)
    return {**entry, "error": reason} if reason else entry


def running(name: str, path: Path, n_ctx: int, expires: float | None) -> dict[str, Any]:
    """One /api/ps entry; a model that never expires shows a date far ahead, as Ollama's -1."""
    until = _FOREVER
    if expires is not None:
        try:  # a keep_alive of 1e300 s is a valid request and an impossible date
            until = min(datetime.fromtimestamp(expires, tz=UTC), _FOREVER)
        except (OverflowError, OSError, ValueError):
            pass
    return {"name": name, "model": name, "size": path.stat().st_size,
            "digest": identity_digest(path), "details": details(path),
            "expires_at": until.isoformat(), "size_vram": 0, "context_length": n_ctx}


def _json_value(value: object) -> object:
    # Ollama leaves the tokenizer's long arrays out unless asked (verbose); unread here.
    return None if isinstance(value, ArrayValue) else value


def _fim_of(path: Path) -> FileFim:
    engine = state.engine()
    if engine.is_loaded(path.stem):
        # In memory: its vocabulary is at hand (a vocab-only read costs 0.4 s for SmolLM2's
        # 49k tokens, 2 s for Gemma's 262k on two shared cores).
        with engine.use(path.stem) as model:
            ids = model.fim
            texts = {name: model.detokenize([t], special=True) for name, t in
                     (("pre", ids.pre), ("suf", ids.suf), ("mid", ids.mid)) if t is not None}
            return FileFim(ids, texts)
    return file_fim(path)


def _with_insert(path: Path, template: str, caps: list[str]) -> str:
    """Only a model whose vocabulary has FIM tokens lists `insert`, and its template gets the
    FIM branch Ollama's code models show (`{{ if .Suffix }}...`): Continue turns autocomplete
    on when the template mentions `.Suffix`."""
    fim = _fim_of(path)
    if not fim.tokens.supported:
        return template
    caps.append("insert")
    t = fim.texts
    return (f"{{{{- if .Suffix }}}}{t['pre']}{{{{ .Prompt }}}}{t['suf']}{{{{ .Suffix }}}}"
            f"{t['mid']}{{{{- else }}}}{template}{{{{- end }}}}")


def show(path: Path, verbose: bool) -> dict[str, Any]:
    """/api/show for one file: its details, GGUF metadata as model_info, its chat template.
    `verbose` reads the arrays too (the vocabulary: seconds for 262k tokens, so only then).
    A file whose header cannot be read is a 400 that says why."""
    reason = unreadable(path)
    if reason is not None:
        raise APIError(400, f"model '{path.stem}' cannot be read: {reason}", param="model",
                       code="model_unreadable")
    meta = read_header(path, full_arrays=True) if verbose else header(path)
    md = dict(meta.metadata) if meta else {}
    template = str(md.pop("tokenizer.chat_template", "") or "")
    info = {k: _json_value(v) for k, v in md.items()}
    if meta is not None:
        info.setdefault("general.parameter_count", meta.n_params)
    model_kind = kind(path)
    caps = ["embedding"] if model_kind == "embedding" else \
        ["completion", "tools"] if model_kind == "chat" else []
    if model_kind == "chat" and reasoning_for_template(
            template or None, state.settings().reasoning_format) is not None:
        caps.append("thinking")  # what clients read before they send `think`
    if model_kind == "chat":
        # Open WebUI shows the image button for a model whose capabilities list "vision".
        kinds = state.engine().media_kinds(path)
        caps += [c for k, c in (("image", "vision"), ("audio", "audio")) if k in kinds]
        template = _with_insert(path, template, caps)
    return {
        "license": str(md.get("general.license") or ""),
        "modelfile": f"# Modelfile generated by slm-api\nFROM {path.name}\n",
        "parameters": "",
        "template": template,
        "details": details(path),
        "model_info": info,
        "capabilities": caps,
        "modified_at": _modified_at(path),
    }
