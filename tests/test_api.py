"""The public Python API: every export resolves to what it names, none is shadowed by a submodule, imports are
cheap, layers point one way, and library functions raise typed errors instead of exiting."""

from __future__ import annotations

import ast
import functools
import inspect
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import orsta_trl
from orsta_trl.errors import DataError, NotReady, OrstaError, RecipeError

PACKAGE = Path(orsta_trl.__file__).parent

#: Bottom-up layers; a module may import from its own layer and the ones below, never from above. A name is a
#: top-level module or package of orsta_trl; ``__init__`` is the package itself (``from orsta_trl import train``
#: reaches its lazy exports, which reach every layer). A new module or package gets a name here.
LAYERS = [
    {"errors", "keys", "console", "user_modules"},
    {"verifiers"},
    {"data", "models", "tools"},
    {"rewards"},
    {"monitor", "recipe"},
    {"trainer", "evaluation", "score", "difficulty", "memory_plan", "warmup"},
    {"api", "__init__"},
    {"train", "cli"},
]


def _layer(module: str) -> int:
    top = module.removeprefix("orsta_trl").removeprefix(".").split(".")[0] or "__init__"
    for rank, names in enumerate(LAYERS):
        if top in names:
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def module_files(root: Path = PACKAGE) -> dict[str, Path]:
    """Every module under ``root`` (a copy of the orsta_trl folder), read from the file system: ``pkgutil``
    would skip folders without ``__init__.py`` (``verifiers/`` has none)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join(("orsta_trl", *parts[: -1 if parts[-1] == "__init__" else None]))] = path
    return found


def _modules() -> list[str]:
    return sorted(module_files())


_parse = functools.lru_cache(maxsize=1024)(ast.parse)  # the planted copies re-read the same sources


def imports(path: Path, modules: dict[str, Path]) -> set[tuple[str, bool]]:
    """(orsta_trl module imported, whether only inside a function) for every import in the file, read with ast:
    ``import orsta_trl.x``, ``from orsta_trl import x`` (the module x, else the package's lazy export), ``from
    orsta_trl.x import y`` (the module x.y, else x), and ``importlib.import_module("orsta_trl.x")``."""
    tree = _parse(path.read_text(encoding="utf-8"))
    found: set[tuple[str, bool]] = set()

    def ours(name: str) -> bool:
        return name == "orsta_trl" or name.startswith("orsta_trl.")

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                found.update((alias.name, inner) for alias in child.names if ours(alias.name))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    raise AssertionError(f"{path}: use absolute imports")
                if ours(child.module or ""):
                    for alias in child.names:
                        sub = f"{child.module}.{alias.name}"
                        found.add((sub if sub in modules else child.module, inner))
            elif (
                isinstance(child, ast.Call)
                and getattr(child.func, "attr", getattr(child.func, "id", "")) == "import_module"
                and child.args
                and isinstance(child.args[0], ast.Constant)
                and ours(str(child.args[0].value))
            ):
                found.add((child.args[0].value, inner))
            visit(child, inner)

    visit(tree, False)
    return found


def _imports(module: str) -> set[str]:
    """Every orsta_trl module that ``module`` imports, at any depth of its code."""
    files = module_files()
    return {target for target, _ in imports(files[module], files)}


def layering_violations(root: Path = PACKAGE) -> list[str]:
    """Every import of a module from a higher layer, function-local ones included: a lazily imported upward
    dependency is still one (it only waits for the call to bite)."""
    files = module_files(root)
    return [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        + (" inside a function" if local else "")
        for module, path in files.items()
        for target, local in sorted(imports(path, files))
        if _layer(target) > _layer(module)
    ]


def import_cycles(root: Path = PACKAGE) -> list[list[str]]:
    """The import cycles between modules (strongly connected groups of the import graph), function-local
    imports included: modules that need each other, now or at call time, belong in one module or share a
    lower one. Importing ``orsta_trl.a.b`` also runs ``orsta_trl.a``; that implicit edge is not counted."""
    files = module_files(root)
    graph = {m: {t for t, _ in imports(path, files) if t in files} for m, path in files.items()}
    order, low, stack, cycles = {}, {}, [], []

    def connect(v: str) -> None:  # Tarjan's strongly connected components
        order[v] = low[v] = len(order)
        stack.append(v)
        for w in graph[v]:
            if w not in order:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            group = stack[stack.index(v) :]
            del stack[stack.index(v) :]
            if len(group) > 1 or v in graph[v]:
                cycles.append(sorted(group))

    for v in sorted(graph):
        if v not in order:
            connect(v)
    return cycles


def test_layers_point_one_way():
    assert layering_violations() == []


def test_no_import_cycles():
    assert import_cycles() == []


def test_the_named_seams_hold():
    """The issue's checks, spelled out: verifiers import nothing above them; data imports no rewards."""
    for module in _modules():
        imported = {t.removeprefix("orsta_trl.").split(".")[0] for t in _imports(module)}
        if module.startswith("orsta_trl.verifiers."):
            assert not imported & {"data", "rewards", "monitor", "trainer", "evaluation"}, module
        if module.startswith("orsta_trl.data."):
            assert "rewards" not in imported, module


def test_every_module_is_read_and_placed_in_a_layer():
    modules = _modules()
    assert {"orsta_trl.verifiers.base", "orsta_trl.verifiers.maths", "orsta_trl.data.convert.vtriune"} <= set(
        modules
    )
    assert len(modules) == len(list(PACKAGE.rglob("*.py")))
    assert all(_layer(m) >= 0 for m in modules)
    assert "orsta_trl.data.records" in _imports("orsta_trl.rewards.router")


#: Every way of writing an upward import: each must be seen by the check.
PLANTED_FORMS = [
    "import orsta_trl.cli\n",
    "from orsta_trl import cli\n",
    "from orsta_trl.cli import main\n",
    "def _planted():\n    from orsta_trl.train import main\n",
    "from orsta_trl import train as _t\n",  # the package's lazy export: the top of the package
    "import importlib\n_m = importlib.import_module('orsta_trl.cli')\n",
]


def _packages() -> list[Path]:
    """Every folder of orsta_trl holding modules (the package itself, every subpackage, verifiers/ too)."""
    return sorted({path.parent for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts})


@pytest.mark.parametrize("package", _packages(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_the_layer_check_sees_a_violation_planted_in_every_package(package, tmp_path):
    """Copy orsta_trl, plant an upward import (each form) in a module of ``package``, see the check fail;
    then plant a cycle between two of its modules and see the cycle check fail."""
    copy = tmp_path / "orsta_trl"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / package.relative_to(PACKAGE)
    victims = sorted(p for p in target.glob("*.py") if p.stem not in ("cli", "train"))
    victim = victims[0]
    original = victim.read_text(encoding="utf-8")
    assert layering_violations(copy) == [] and import_cycles(copy) == []
    for form in PLANTED_FORMS:
        victim.write_text(original + "\n" + form, encoding="utf-8")
        found = layering_violations(copy)
        assert len(found) == 1 and found[0].startswith(module_name(copy, victim) + " "), (form, found)
    victim.write_text(original, encoding="utf-8")
    a, b = victims[-2:] if len(victims) > 1 else (victim, victim)
    for planted, other in ((a, b), (b, a)):
        planted.write_text(planted.read_text(encoding="utf-8") + f"\nimport {module_name(copy, other)}\n")
    # the planted pair is one cycle (it may pull in a module that already sits between them)
    cycles = import_cycles(copy)
    assert len(cycles) == 1 and {module_name(copy, a), module_name(copy, b)} <= set(cycles[0]), cycles


def module_name(root: Path, path: Path) -> str:
    return next(name for name, p in module_files(root).items() if p == path)


def test_no_export_is_shadowed_after_importing_every_submodule():
    code = (
        "import importlib, pkgutil, orsta_trl\n"
        "for m in pkgutil.walk_packages(orsta_trl.__path__, 'orsta_trl.'): importlib.import_module(m.name)\n"
        "import orsta_trl.train, orsta_trl.score\n"
        "from orsta_trl import train, score\n"
        "print(type(train).__name__, type(score).__name__, type(orsta_trl.train).__name__)\n"
        "for name in orsta_trl.__all__:\n"
        "    assert not type(getattr(orsta_trl, name)).__name__ == 'module', name\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["function", "function", "function"]


@pytest.mark.parametrize("name", orsta_trl.__all__)
def test_every_export_resolves_to_what_it_names(name):
    value = getattr(orsta_trl, name)
    assert inspect.isfunction(value) or inspect.isclass(value) or name == "REGISTRY", name
    if name == "REGISTRY":
        assert set(value) >= {"math", "detection", "tool"}
    else:
        assert value.__name__ in (name, "evaluate_checkpoint"), (name, value.__name__)
        assert value.__module__.startswith("orsta_trl."), name
    if inspect.isfunction(value):
        doc = inspect.getdoc(value) or ""
        assert doc, f"{name} has no docstring"


def test_public_functions_document_args_and_returns():
    for name in (n for n in orsta_trl.__all__ if inspect.isfunction(getattr(orsta_trl, n))):
        doc = inspect.getdoc(getattr(orsta_trl, name))
        assert "Args:" in doc and "Returns:" in doc, name


def test_errors_are_typed():
    for error in (RecipeError, DataError, NotReady):
        assert issubclass(error, OrstaError)
    with pytest.raises(RecipeError, match="model_name_or_path is missing"):
        orsta_trl.build_trainer(orsta_trl.load_recipe(None, use_cpu=True, bf16=False))
    with pytest.raises(RecipeError, match="train_files is missing"):
        orsta_trl.train(orsta_trl.load_recipe(None, model_name_or_path="m", use_cpu=True, bf16=False))
    with pytest.raises(RecipeError, match="cannot read the recipe"):
        orsta_trl.load_recipe("/nonexistent/recipe.yaml")
    with pytest.raises(DataError, match="no such file"):
        orsta_trl.load_records("nonexistent/data.jsonl")


def test_library_code_never_exits():
    offenders = []
    for module, path in module_files().items():
        if module in ("orsta_trl.cli", "orsta_trl.train"):
            continue
        source = path.read_text(encoding="utf-8")
        if "SystemExit" in source or "sys.exit(" in source:
            offenders.append(module)
    assert offenders == []


def test_score_in_memory_returns_samples():
    records = [
        {
            "id": "q1",
            "data_source": "toy",
            "prompt": [{"role": "user", "content": "How many?"}],
            "reward": {"verifier": "count", "ground_truth": 3},
        }
    ]
    completions = [
        {"id": "q1", "data_source": "toy", "completion": "<answer>3</answer>"},
        {"id": "q1", "data_source": "toy", "completion": "no idea"},
    ]
    samples = orsta_trl.score(records, completions)
    assert [(s.accuracy, s.format, s.reason) for s in samples] == [(1.0, 1.0, None), (0.0, 0.0, "no_answer")]
    assert isinstance(samples[0], orsta_trl.Sample) and samples[0].verifier == "count"
    with pytest.raises(DataError, match="id='q2'"):
        orsta_trl.score(records, [{"id": "q2", "data_source": "toy", "completion": "3"}])
    with pytest.raises(DataError, match="missing field"):
        orsta_trl.score(records, [{"id": "q1", "completion": "3"}])


def test_import_is_cheap():
    code = "import sys, orsta_trl; print('torch' in sys.modules, 'trl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_the_readme_python_example_runs_as_written(tmp_path):
    """The README's Python block, verbatim, in a fresh folder (it writes demo/ there)."""
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("## From Python", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "recipes").symlink_to(PACKAGE.parent / "recipes")
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(PACKAGE.parent)}
    result = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "synth_ocr" in result.stdout and (tmp_path / "runs/python/config.json").exists()
    assert not (tmp_path / "demo/run").exists()  # never into the demo's run


@pytest.mark.parametrize(
    "mark", ["config.json", "checkpoint-5", "runs/Dec01_host/events.out.tfevents.1.host.1"]
)
def test_an_output_dir_holding_another_run_is_refused_before_anything_is_written(tmp_path, mark, tiny_vl):
    data = tmp_path / "d.jsonl"
    record = {"id": "q1", "data_source": "toy", "prompt": [{"role": "user", "content": "2+2?"}]}
    data.write_text(json.dumps({**record, "reward": {"verifier": "math", "ground_truth": "4"}}) + "\n")
    out = tmp_path / "run"
    (out / mark).parent.mkdir(parents=True, exist_ok=True)
    (out / mark).mkdir() if mark.startswith("checkpoint") else (out / mark).write_text("{}")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    keys = {"model_name_or_path": str(tiny_vl), "train_files": [str(data)], "output_dir": str(out)}
    keys.update(use_cpu=True, bf16=False, report_to=[])
    with pytest.raises(
        RecipeError, match=r"output_dir: .*run holds another run .*overwrite_output_dir: true"
    ):
        orsta_trl.build_trainer(orsta_trl.load_recipe(None, keys))
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # nothing written
    # said deliberately, it passes the check (what follows is the usual model load)
    recipe = orsta_trl.load_recipe(None, {**keys, "overwrite_output_dir": True})
    orsta_trl.api.check_paths(recipe)
