"""Imports point down only (docs/ARCHITECTURE.md, "Layers"): every module of lib/customer360 sits in
one layer, imports only from its own layer or below, no two modules import each other even through
others, and no stage module imports another stage module. Imports are read from the source (every
``import`` statement, also those inside functions), so a lazy import cannot hide an arrow."""
from __future__ import annotations

import ast
from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from tests.conftest import REPO

LIB = REPO / "lib"
PACKAGE = "customer360"

#: lowest first; a module's layer is the first whose patterns match its name
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", (
        "customer360", "customer360.errors", "customer360.files", "customer360.pyfiles", "customer360.tables",
        "customer360.config", "customer360.config.*", "customer360.generate", "customer360.generate.*",
        "customer360.services", "customer360.services.*",
    )),
    ("session and storage", ("customer360.session", "customer360.lakehouse", "customer360.lakehouse.*")),
    ("run context", ("customer360.context",)),
    ("stages", ("customer360.*.stage",)),
    ("domain libraries", tuple(pattern for p in (
        "bronze", "identity", "facts", "features", "gold", "ml", "governance", "monitoring",
    ) for pattern in (f"customer360.{p}", f"customer360.{p}.*"))),
    ("orchestration", (
        "customer360.pipeline", "customer360.cli", "customer360.jobs", "customer360.report", "customer360.notebook",
        "customer360.sqlshell", "customer360.sqlserver",
    )),
)
#: the order layers stack in (stages sit on the domain libraries; they are matched first above
#: because their pattern is the narrower one)
ORDER = ("foundation", "session and storage", "run context", "domain libraries", "stages", "orchestration")


def module_files(lib: Path = LIB, package: str = PACKAGE) -> dict[str, Path]:
    found = {}
    for path in sorted((lib / package).rglob("*.py")):
        parts = path.relative_to(lib).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(name: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The package's modules ``name`` imports (``from a.b import c`` is ``a.b.c`` where that is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def known(target: str) -> str:
        while target not in modules and "." in target:
            target = target.rpartition(".")[0]
        return target

    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {known(a.name) for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                found.add(candidate if candidate in modules else known(source))
    found.discard(name)
    return found


def import_graph(lib: Path = LIB, package: str = PACKAGE) -> dict[str, set[str]]:
    modules = module_files(lib, package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in graph:
                    continue
                if target not in index:
                    index[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def layer_of(name: str) -> str | None:
    for layer, patterns in LAYERS:
        if any(fnmatchcase(name, p) for p in patterns):
            return layer
    return None


def is_stage(name: str) -> bool:
    return layer_of(name) == "stages"


def violations(graph: Mapping[str, set[str]]) -> list[str]:
    """Every arrow that does not point down (or sideways within a layer, stages excepted), and
    every module no layer claims."""
    problems = [f"{name}: in no layer (add it to LAYERS)" for name in sorted(graph) if layer_of(name) is None]
    for name in sorted(graph):
        mine = layer_of(name)
        for target in sorted(graph[name]):
            theirs = layer_of(target)
            if mine is None or theirs is None:
                continue
            if ORDER.index(theirs) > ORDER.index(mine):
                problems.append(f"{name} ({mine}) imports {target} ({theirs}), a layer above it")
            elif mine == theirs == "stages":
                problems.append(f"{name} imports {target}: a stage never imports another stage")
    return sorted(problems)


def test_no_import_cycle_between_the_modules():
    assert cycles(import_graph()) == []


def test_every_import_points_down_and_no_stage_imports_another():
    assert violations(import_graph()) == []


def test_every_pipeline_stage_and_command_lives_in_a_stage_module():
    from customer360.pipeline import stage_commands

    assert {name: run.__module__ for name, run in stage_commands().items() if not is_stage(run.__module__)} == {}


def test_pipeline_is_imported_only_by_the_commands_above_it():
    importers = sorted(name for name, targets in import_graph().items() if "customer360.pipeline" in targets)
    assert importers == ["customer360.cli"]


# the checks themselves, on a package written for the purpose: they must find what is planted


@pytest.fixture
def planted(tmp_path):
    root = tmp_path / "lib" / PACKAGE
    files = {
        "__init__.py": "",
        "tables.py": "",
        "context.py": "from customer360 import tables\n",
        "pipeline.py": "from customer360.gold.stage import run\n",
        "gold/__init__.py": "",
        "gold/stage.py": "def run(ctx):\n    from customer360.ml.stage import train  # a stage reaching into another\n",
        "ml/__init__.py": "",
        "ml/stage.py": "from ..context import RunContext\nfrom customer360.ml import scoring\n",
        "ml/scoring.py": "import customer360.ml.churn\n",
        "ml/churn.py": "from customer360.ml.scoring import x  # a cycle through a lazy-looking import\n",
        "features/__init__.py": "",
        "features/store.py": "from customer360.pipeline import run_pipeline  # a library importing orchestration\n",
        "stray.py": "",
    }
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return import_graph(tmp_path / "lib")


def test_the_graph_reads_absolute_relative_and_function_level_imports(planted):
    assert planted["customer360.gold.stage"] == {"customer360.ml.stage"}
    assert planted["customer360.ml.stage"] == {"customer360.context", "customer360.ml.scoring"}
    assert planted["customer360.context"] == {"customer360.tables"}


def test_a_planted_cycle_is_found(planted):
    assert cycles(planted) == [["customer360.ml.churn", "customer360.ml.scoring"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_planted_upward_and_stage_to_stage_imports_are_reported(planted):
    assert violations(planted) == [
        "customer360.features.store (domain libraries) imports customer360.pipeline (orchestration), a layer above it",
        "customer360.gold.stage imports customer360.ml.stage: a stage never imports another stage",
        "customer360.stray: in no layer (add it to LAYERS)",
    ]
