"""The package's shape, checked from the source: the core never imports the studies, no module-level
import cycles, every study has the same parts, and a study runs without its report."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import interp_steer

PACKAGE = Path(interp_steer.__file__).parent
ROOT = PACKAGE.parent
SHARED = {"rules"}  # sub-packages of studies that serve every study (the verdict rules), not studies
STUDIES = sorted(p.name for p in (PACKAGE / "studies").iterdir()
                 if p.is_dir() and (p / "__init__.py").exists() and p.name not in SHARED)
STUDY_PARTS = ("__init__.py", "config.py", "study.py", "result.py", "report.py", "cli.py", "schema.json")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(node: ast.ImportFrom, module: str) -> str:
    if not node.level:
        return node.module or ""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _imports(module: str, *, top_level_only: bool) -> set[str]:
    """Modules of this package that ``module`` imports (a name imported from a package counts as
    that submodule when it is one). ``top_level_only`` skips function bodies, TYPE_CHECKING blocks
    and a package's lazy exports (``names_from("module", ...)``: imported on first use, never while
    the package itself is being imported); otherwise those count too."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))

    def walk(nodes):
        for node in nodes:
            if top_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if (top_level_only and isinstance(node, ast.If) and isinstance(node.test, ast.Name)
                    and node.test.id == "TYPE_CHECKING"):
                yield from walk(node.orelse)
                continue
            if (not top_level_only and isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "names_from" and isinstance(node.args[0], ast.Constant)):
                yield node.args[0].value
            if isinstance(node, ast.Import):
                yield from (alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node, module)
                for alias in node.names:
                    yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
            yield from walk(ast.iter_child_nodes(node))

    return {name for name in walk(tree.body) if name.split(".")[0] == "interp_steer"}


def test_the_scan_sees_the_package():
    assert {"interp_steer.models", "interp_steer.patching", "interp_steer.cli"} <= set(MODULES)
    assert {"collision", "patching"} <= set(STUDIES)
    assert "interp_steer.studies.collision.study" in _imports("interp_steer.studies.collision", top_level_only=False)
    assert "interp_steer.models" in _imports("interp_steer", top_level_only=False)


def test_the_core_never_imports_the_studies():
    core = [m for m in MODULES if not m.startswith("interp_steer.studies") and not _in_cli_layer(m)]
    offenders = {m: sorted(i for i in _imports(m, top_level_only=False) if i.startswith("interp_steer.studies"))
                 for m in core}
    assert not {m: i for m, i in offenders.items() if i}, "core modules must not import interp_steer.studies"


def _is_report_of_its_result(source: str, target: str) -> bool:
    """The one documented exception to "layers point down": a study's result imports its own report
    inside ``save`` (a result is what a report renders, and ``save`` writes both; the report module
    is loaded only when something is saved, see test_importing_the_studies_loads_no_report_and_no_cli)."""
    head, _, leaf = source.rpartition(".")
    return leaf == "result" and head.startswith("interp_steer.studies.") and target == f"{head}.report"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of modules (a package's edge to its own __init__ left out)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph[module]):
            if target == module or module.startswith(target + "."):
                continue
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            members = []
            while True:
                member = stack.pop()
                members.append(member)
                if member == module:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def _import_graph(top_level_only: bool) -> dict[str, set[str]]:
    return {m: {t for t in _imports(m, top_level_only=top_level_only) & set(MODULES)
                if not _is_report_of_its_result(m, t)} for m in MODULES}


def test_the_cycle_finder_finds_a_cycle_through_a_function_body():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "p.q": {"p"}, "p": {"p.q"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    # The exception covers exactly a study's result reaching its own report.
    assert _is_report_of_its_result("interp_steer.studies.svf.result", "interp_steer.studies.svf.report")
    assert not _is_report_of_its_result("interp_steer.studies.svf.study", "interp_steer.studies.svf.report")
    assert not _is_report_of_its_result("interp_steer.studies.svf.result", "interp_steer.studies.robustness.report")


def test_no_import_cycles_counting_imports_inside_functions():
    """Layers point down (DESIGN principle 14), imports in function bodies and lazy exports counted;
    the one exception is documented in _is_report_of_its_result."""
    assert _cycles(_import_graph(top_level_only=False)) == []


@pytest.mark.parametrize("study", STUDIES)
def test_every_study_has_the_same_parts(study):
    folder = PACKAGE / "studies" / study
    assert [part for part in STUDY_PARTS if not (folder / part).exists()] == []
    package = importlib.import_module(f"interp_steer.studies.{study}")
    config_module = importlib.import_module(f"interp_steer.studies.{study}.config")
    result_module = importlib.import_module(f"interp_steer.studies.{study}.result")
    run = importlib.import_module(f"interp_steer.studies.{study}.study").run

    signature = inspect.signature(run)
    assert list(signature.parameters)[:2] == ["model", "config"]
    config_cls, result_cls = (getattr(module, hint) if isinstance(hint, str) else hint for module, hint in (
        (config_module, signature.parameters["config"].annotation), (result_module, signature.return_annotation)))
    assert dataclasses.is_dataclass(config_cls) and config_cls.__dataclass_params__.frozen
    assert dataclasses.is_dataclass(result_cls) and callable(result_cls.to_dict) and callable(result_cls.save)

    config = config_cls()
    assert config_cls.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown settings"):
        config_cls.from_dict({**config.to_dict(), "not_a_setting": 1})

    schema = package.schema()
    assert schema["$schema"].startswith("https://json-schema.org/") and schema["$id"] == f"interp_steer/studies/{study}/schema.json"
    assert {"run", "schema", config_cls.__name__, result_cls.__name__} <= set(package.__all__)


@pytest.mark.parametrize("study", STUDIES)
def test_only_the_result_reaches_the_report_and_only_lazily(study):
    prefix = f"interp_steer.studies.{study}"
    for module in (m for m in MODULES if m.startswith(prefix) and m != f"{prefix}.report"):
        anywhere = f"{prefix}.report" in _imports(module, top_level_only=False)
        at_import = f"{prefix}.report" in _imports(module, top_level_only=True)
        assert not at_import, f"{module} imports the report at import time"
        assert not anywhere or module == f"{prefix}.result", f"{module} needs the report"


def test_importing_the_studies_loads_no_report_and_no_cli():
    # Every public name read (the package imports them on first use), and still no report or CLI.
    code = ("import json, sys, interp_steer.studies as s; [getattr(s, n) for n in s.__all__]; "
            "print(json.dumps(sorted(sys.modules)))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                       cwd=ROOT).stdout)
    studies = [m for m in loaded if m.startswith("interp_steer.studies.")]
    assert {f"interp_steer.studies.{s}.study" for s in STUDIES} <= set(studies)
    assert [m for m in studies if m.endswith((".report", ".cli"))] == []


def test_the_command_line_parser_and_the_package_import_no_torch():
    """``interp-steer --help`` and ``import interp_steer`` stay light: the heavy modules come with
    the first name that needs them."""
    code = ("import json, sys, interp_steer, interp_steer.cli; interp_steer.cli.build_parser(); "
            "print(json.dumps(sorted(sys.modules)))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                           cwd=ROOT).stdout))
    assert not loaded & {"torch", "transformers", "transformer_lens", "sklearn", "matplotlib"}
    code = "import sys, interp_steer as ist; ist.SteeringVector; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=ROOT).stdout.strip() == "True"


def test_every_public_name_resolves():
    """Each lazily exported name exists where its table says (a typo would only fail on first use)."""
    import interp_steer.studies

    for package in (interp_steer, interp_steer.studies, *(importlib.import_module(f"interp_steer.studies.{s}")
                                                          for s in STUDIES)):
        missing = [name for name in package.__all__ if not hasattr(package, name)]
        assert missing == [], f"{package.__name__}: {missing}"
        assert set(package.__all__) <= set(dir(package))


def test_every_study_subcommand_is_assembled():
    from interp_steer import cli

    assembled = {module.__name__ for module in cli.SUBCOMMANDS}
    assert {f"interp_steer.studies.{s}.cli" for s in STUDIES} <= assembled
    assert all(callable(module.add_parser) for module in cli.SUBCOMMANDS)


FAST_PATH = "interp_steer._plain"


def _fast_path_uses(source: str) -> list[str]:
    """Every place in ``source`` that reaches the fast path: an import of its package or of any module
    in it (at any depth, function bodies included, absolute or relative), an attribute ``._plain`` or
    ``.fast_path``, or a string naming it (``importlib.import_module``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith(FAST_PATH)]
        elif isinstance(node, ast.ImportFrom):
            if "_plain" in (node.module or "").split("."):
                found.append(f"from {node.module} import ...")
            found += [f"import {alias.name}" for alias in node.names if alias.name in ("_plain", "fast_path")]
        elif isinstance(node, ast.Attribute) and node.attr in ("_plain", "fast_path"):
            found.append(ast.unparse(node))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and FAST_PATH in node.value:
            found.append(repr(node.value))
    return found


def test_the_fast_path_scan_finds_every_way_in():
    source = '''
import interp_steer._plain
def f():
    from interp_steer import _plain
    from ... import fast_path
    from .._plain import resumed
    from interp_steer._plain.view import PlainView
    from .._plain.routes import forward_module
    import interp_steer as ist
    with ist.fast_path(False):
        importlib.import_module("interp_steer._plain")
'''
    assert len(_fast_path_uses(source)) == 8
    assert _fast_path_uses("from interp_steer.activations import residual_shifts\nx.plain = 1\n") == []


def test_no_study_reaches_the_fast_path():
    """The fast path is an optimisation of the core, invisible above it (DESIGN principles 12, 14):
    studies compose the public core functions and never import its module nor call its switch."""
    offenders = {module: _fast_path_uses(path.read_text(encoding="utf-8"))
                 for module, path in MODULES.items() if module.startswith("interp_steer.studies")}
    assert {module: uses for module, uses in offenders.items() if uses} == {}


CLI_LAYER = ("interp_steer.cli", "interp_steer.__main__", "interp_steer.commands")


def _in_cli_layer(module: str) -> bool:
    return module.startswith(CLI_LAYER) or (module.startswith("interp_steer.studies.") and module.endswith(".cli"))


def test_nothing_below_the_command_line_imports_it():
    """Studies and the core never depend on the CLI (a study's ``cli`` module is part of the CLI)."""
    offenders = {m: sorted(i for i in _imports(m, top_level_only=False) if _in_cli_layer(i))
                 for m in MODULES if not _in_cli_layer(m)}
    assert {m: i for m, i in offenders.items() if i} == {}


def _private_crossings(module: str, source: str) -> list[str]:
    """Names beginning with one underscore that ``module`` takes from another module of the package:
    ``from x import _name`` (at any depth) or ``alias._name`` where ``alias`` is a module of the
    package imported under that name. Private *modules* (``_io``, ``_lazy``) are the package's own
    helpers and may be imported; their ``_private`` names may not."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("interp_steer") and alias.asname:
                    aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module) if module in MODULES else (node.module or "")
            if not base.startswith("interp_steer"):
                continue
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
                elif alias.name.startswith("_") and not alias.name.startswith("__") and base != module:
                    found.append(f"{base}.{alias.name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append(f"{aliases[node.value.id]}.{node.attr}")
    return sorted(set(found))


def test_the_private_name_scan_sees_both_ways_in():
    source = """
from interp_steer import _plain
import interp_steer.activations as acts
def f():
    from interp_steer.evaluation import _letter_ids, public
    return acts._forward_collect, _plain.plain_view, _plain._cache
"""
    assert _private_crossings("interp_steer.studies.svf.study", source) == [
        "interp_steer._plain._cache", "interp_steer.activations._forward_collect", "interp_steer.evaluation._letter_ids"]


def test_no_private_name_crosses_a_module_boundary():
    """A module offers public names to the others and keeps its ``_private`` ones to itself."""
    offenders = {m: _private_crossings(m, path.read_text(encoding="utf-8")) for m, path in MODULES.items()}
    assert {m: names for m, names in offenders.items() if names} == {}


MAX_LINES = 600


def test_no_module_is_longer_than_one_sitting():
    """One concept per module, each small enough to read in one sitting (DESIGN's module map)."""
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
