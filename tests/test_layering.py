"""The package layout is the architecture (docs/architecture.md), and these tests hold it:

- each API family under slm_api/api/ (openai, responses, anthropic, extract, admin, and the ones
  to come) imports the shared core and the plumbing, never another family;
- the core and the Flask plumbing know no family;
- only slm_api/engine/ imports llama_cpp, so pure code stays importable without it;
- no import circle among src/ modules: not at import time, and not for a type checker either
  (which reads every import, those under `if TYPE_CHECKING:` and in function bodies included).

Imports are read from the source with `ast` (nothing is imported), so a violation fails here
before it can hide behind an import order that happens to work.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast

SRC = Path(__file__).resolve().parents[1] / "src"
API = "slm_api.api"
SHARED = {"core"}  # packages under api/ that are not a family
WIRING = {"slm_api.app"}  # the app factory registers every family's blueprint
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path, src: Path, *, runtime_top_level: bool = False) -> set[str]:
    """The modules `path` imports (`from a import b` gives a.b when b is a module, else a).
    `runtime_top_level`: only what runs at import time (no function bodies, no TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(), str(path))
    me = module_name(path, src)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: list[ast.AST]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if _module_file(sub, src) else base)
            if isinstance(node, ast.If) and runtime_top_level and _is_type_checking(node.test):
                visit(node.orelse)  # typing-only imports run at no time
            elif not (runtime_top_level and isinstance(node, FUNCTIONS)):
                visit([c for c in ast.iter_child_nodes(node)
                       if isinstance(c, (ast.stmt, ast.ExceptHandler))])

    visit(tree.body)
    return found


def _module_file(name: str, src: Path) -> Path | None:
    base = src.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def sources(src: Path = SRC) -> list[Path]:
    return sorted(src.rglob("*.py"))


def family_of(module: str) -> str | None:
    """The API family a module belongs to (None for the core and everything outside api/)."""
    if not module.startswith(API + "."):
        return None
    top = module[len(API) + 1:].split(".")[0]
    return None if top in SHARED else top


def layering_violations(src: Path = SRC) -> list[str]:
    found = []
    for path in sources(src):
        me = module_name(path, src)
        mine = family_of(me)
        for target in sorted(imports_of(path, src)):
            theirs = family_of(target)
            if theirs is not None and theirs != mine and me not in WIRING:
                who = f"family {mine}" if mine else "the core" if me.startswith(API) else me
                found.append(f"{me} ({who}) imports {target} (family {theirs})")
            if target.split(".")[0] == "llama_cpp" and not me.startswith("slm_api.engine"):
                found.append(f"{me} imports llama_cpp outside slm_api.engine")
    return found


def import_cycles(src: Path = SRC, *, static: bool = False) -> list[list[str]]:
    """Circles among the modules' import-time imports (Tarjan's strongly connected parts);
    `static`: among all their imports, as a type checker follows them."""
    graph = {module_name(p, src): {t for t in imports_of(p, src, runtime_top_level=not static)
                                   if _module_file(t, src)} for p in sources(src)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1 or v in graph.get(v, ()):
                cycles.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return cycles


def test_the_families_are_there() -> None:
    # A renamed or emptied family would make the rules below pass vacuously.
    families = {family_of(module_name(p)) for p in sources()} - {None}
    assert {"openai", "responses", "anthropic", "extract", "admin"} <= families


def test_no_family_imports_another_and_only_the_engine_imports_llama_cpp() -> None:
    assert layering_violations() == []


def test_no_import_circle_in_src() -> None:
    assert import_cycles() == []


def test_no_import_circle_for_type_checkers() -> None:
    # An accessor hub typed against its owners under TYPE_CHECKING, which import it back, runs
    # fine and still is a circle (issue 26): each accessor lives with its owner instead.
    assert import_cycles(static=True) == []


def test_the_checks_catch_a_planted_violation(tmp_path: Path) -> None:
    # The rules above must be able to fail: a copy of the layout with one breach of each.
    pkg = tmp_path / "slm_api"
    for folder in ("api/core", "api/openai", "api/anthropic", "plumbing"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "api" / "__init__.py").write_text("")
    (pkg / "api/openai/chat.py").write_text("from slm_api.api.anthropic import routes\n")
    (pkg / "api/anthropic/routes.py").write_text("import llama_cpp\n")
    (pkg / "api/core/run.py").write_text("from slm_api.plumbing import state\n")
    (pkg / "plumbing/state.py").write_text("from slm_api.api.core import run\n")
    assert layering_violations(tmp_path) == [
        "slm_api.api.anthropic.routes imports llama_cpp outside slm_api.engine",
        "slm_api.api.openai.chat (family openai) imports slm_api.api.anthropic.routes"
        " (family anthropic)",
    ]
    assert import_cycles(tmp_path) == [["slm_api.api.core.run", "slm_api.plumbing.state"]]


def test_the_static_check_catches_a_type_checking_circle(tmp_path: Path) -> None:
    pkg = tmp_path / "slm_api"
    (pkg / "plumbing").mkdir(parents=True)
    for init in (pkg / "__init__.py", pkg / "plumbing/__init__.py"):
        init.write_text("")
    (pkg / "plumbing/state.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from slm_api.plumbing.observability import Metrics\n")
    (pkg / "plumbing/observability.py").write_text("from slm_api.plumbing import state\n")
    assert import_cycles(tmp_path) == []  # nothing runs in a circle at import time
    assert import_cycles(tmp_path, static=True) == [
        ["slm_api.plumbing.observability", "slm_api.plumbing.state"]]


@pytest.mark.parametrize(
    "module",
    ["slm_api.grammar", "slm_api.prompting.chat_format", "slm_api.prompting.tool_calls",
     "slm_api.prompting.tool_markup", "slm_api.prompting.tool_stream",
     "slm_api.prompting.stops", "slm_api.prompting.reasoning", "slm_api.gguf_info",
     "slm_api.errors",
     "slm_api.models_fetch.bert_gguf", "slm_api.default_model"],
)
def test_pure_modules_do_not_import_llama_cpp(module: str) -> None:
    code = f"import sys, {module}; print('llama_cpp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", f"{module} pulls in llama_cpp"


def test_every_error_derives_from_one_base() -> None:
    from slm_api import errors, hub
    from slm_api.grammar import SchemaError

    for cls in (errors.APIError, errors.EngineError, hub.DownloadError, SchemaError):
        assert issubclass(cls, errors.SlmError)
    assert not issubclass(hub.DownloadError, errors.EngineError)
