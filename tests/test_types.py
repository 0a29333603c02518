"""The public API's types, as a user's type checker sees them (mypy, configured in pyproject.toml).

The lazily exported names resolve to their real types (the packages' ``TYPE_CHECKING`` blocks), the
main calls return what their documentation says, the string options are ``Literal``s that refuse a
typo, and each ``Literal`` lists exactly the values its function accepts at run time.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from interp_steer import _types

ROOT = Path(__file__).resolve().parents[1]

# Each line's revealed type, with every ``interp_steer.module.`` prefix dropped (modules may move;
# the names are the API).
REVEALED = {
    "ist.load_model()": "Model",
    "ist.collect_activations(model, texts)": "Activations",
    "ist.collect_positions(model, texts, ['last', 'mean'])":
        "dict[Literal['last'] | Literal['mean'] | Literal['mean_with_first'] | Literal['all'] | int, Activations]",
    "ist.build_vector(model, pairs)": "SteeringVector",
    "ist.from_activations(acts, acts, method='pca')": "SteeringVector",
    "ist.fit_field(model, pairs, layers=[1])": "SteeringField",
    "ist.generate(model, texts)": "list[Generation]",
    "ist.steer(model, vector, 2.0, operator='ablate')": "contextlib._GeneratorContextManager[None, None, None]",
    "ist.Steering(vector, positions='after_prompt')": "Steering",
    "ist.Steering(vector).applied(model)": "contextlib.AbstractContextManager[None, bool | None]",
    "ist.steered_lens(model, texts, steering)": "LensResult",
    "ist.direct_logit_attribution(model, texts, steering, tokens_a=['x'])": "DlaResult",
    "ist.load_pairs('pairs.jsonl')": "list[ContrastPair]",
    "ab_eval(model, questions, vector)": "SweepResult",
    "studies.collide(model)": "CollisionResult",
    "studies.dominance_patching(model)": "PatchingResult",
    "studies.svf(model)": "SvfResult",
    "studies.robustness(model)": "RobustnessResult",
}

PREAMBLE = """\
import torch

import interp_steer as ist
import interp_steer.studies as studies
from interp_steer.evaluation import ab_eval

model = ist.load_model()
texts = ["a", "b"]
pairs = ist.load_builtin("sentiment")
acts = ist.collect_activations(model, texts)
vector = ist.build_vector(model, pairs)
steering = ist.Steering(vector)
questions = ist.load_ab_questions("questions.jsonl")
"""

# Every accepted form of the main options: none of these may be an error.
ACCEPTED = """\
field = ist.fit_field(model, pairs, layers=[1])
ist.Steering(vector, positions=torch.ones(5, dtype=torch.bool))
ist.Steering(vector, positions="after_prompt", operator="add_norm_preserving")
ist.Steering([(vector, 1.0), (field, -0.5)], positions=3)
ist.Steering(field, positions=slice(2, None))
ist.Steering(vector, positions=torch.ones(2, 5, dtype=torch.bool), operator="ablate")
ist.Steering(ist.RowMix.from_rows([[(vector, 1.0)], [(field, 2.0)]]))
ist.Steering(ist.RowDeltas.from_rows([[(vector, 1.0)], [(vector, 2.0)]]), operator="ablate")
with ist.steer(model, vector, 2.0, layers=[1, 2], positions="after_prompt", prompt_end=[3]):
    pass
ist.collect_activations(model, texts, position=-1, hook_point="resid_pre")
ist.collect_activations(model, texts, position="mean_with_first", hook_point="resid_mid")
ist.build_vector(model, pairs, method="probe", position=2, hook_point="resid_post")
ist.fit_scorer(acts, acts, form="shared", activation="silu")
model.hook_name(0, "resid_mid")
model.pad([[1, 2], [3]], padding_side="left")
vector.normalised("resid")
ist.generate(model, texts, steering=ist.Steering(vector, 4.0, layers=[1], positions="after_prompt"))
"""

# Each a typo in a string option: mypy must refuse every one, on its own line.
TYPOS = [
    "ist.steer(model, vector, operator='addd')",
    "ist.Steering(vector, positions='afterprompt')",
    "ist.Steering(vector, operator='subtract')",
    "ist.steer(model, torch.zeros(4))",
    "ist.collect_activations(model, texts, position='first')",
    "ist.collect_activations(model, texts, hook_point='resid')",
    "ist.build_vector(model, pairs, method='median')",
    "ist.fit_scorer(acts, acts, form='deep')",
    "model.hook_name(0, 'resid')",
    "model.pad([[1, 2]], padding_side='middle')",
    "vector.normalised('l2')",
]


def _line_of(index: int) -> int:
    """The line of a snippet's ``index``-th line, after the preamble."""
    return PREAMBLE.count("\n") + index + 1


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> dict[str, list[str]]:
    """One mypy run over the three snippets: ``{snippet: its output lines}``."""
    api = pytest.importorskip("mypy.api", reason="mypy is not installed (pip install -e '.[dev]')")
    folder = tmp_path_factory.mktemp("types")
    bodies = {
        "reveal": "".join(f"reveal_type({call})\n" for call in REVEALED),
        "accepted": ACCEPTED,
        "typos": "".join(f"{call}\n" for call in TYPOS),
    }
    for name, body in bodies.items():
        (folder / f"{name}.py").write_text(PREAMBLE + body, encoding="utf-8")
    stdout, stderr, _ = api.run([
        "--config-file", str(ROOT / "pyproject.toml"),
        "--cache-dir", str(folder / "mypy_cache"),
        "--no-error-summary",
        "--show-error-codes",
        *(str(folder / f"{name}.py") for name in bodies),
    ])
    assert not stderr, stderr
    return {name: [line for line in stdout.splitlines() if Path(line.split(":")[0]).stem == name]
            for name in bodies}


def test_the_public_api_returns_what_it_says(checked):
    found = {}
    for line in checked["reveal"]:
        match = re.match(r'.*:(\d+): note: Revealed type is "(.*)"$', line)
        if match:
            found[int(match[1])] = re.sub(r"\binterp_steer(\.\w+)*\.(?=[A-Z])", "", match[2])
    errors = [line for line in checked["reveal"] if ": error:" in line]
    assert not errors, "\n".join(errors)
    got = {call: found.get(_line_of(i)) for i, call in enumerate(REVEALED)}
    assert got == REVEALED
    assert not [t for t in got.values() if "Any" in t]


def test_every_accepted_form_type_checks(checked):
    assert checked["accepted"] == []


def test_a_typo_in_a_string_option_is_refused(checked):
    lines = {int(m[1]): m[2] for m in (re.match(r".*:(\d+): error: (.*)$", line) for line in checked["typos"]) if m}
    refused = {call: lines.get(_line_of(i), "") for i, call in enumerate(TYPOS)}
    assert all(refused.values()), "\n".join(f"not refused: {c}" for c, e in refused.items() if not e)
    assert "Literal['add', 'ablate', 'add_norm_preserving']" in refused[TYPOS[0]]


def test_each_literal_lists_what_its_function_accepts():
    from interp_steer import activations, directions, models, patching, steering
    from interp_steer._constants import FIELD_FORMS
    from interp_steer.fields import fit, scorer

    assert _types.CHOICES == {
        "Operator": steering.OPERATORS,
        "HookPoint": models.RESID_POINTS,
        "PositionRule": ("all", "after_prompt"),
        "Method": directions.METHODS,
        "ReadPositionName": ("last", "mean", "mean_with_first", "all"),
        "FieldForm": FIELD_FORMS,
        "ScorerActivation": tuple(scorer.ACTIVATIONS),
        "Normalisation": ("unit", "resid"),
        "WeakLayers": fit.DROP_WEAK,
        "PaddingSide": ("left", "right"),
        "PatchMetric": patching.METRICS,
    }
    # The named rules the checks accept, read back from the checks themselves.
    from interp_steer.positions import check_positions

    for rule in _types.CHOICES["PositionRule"]:
        check_positions(rule)
    activations._check_position("mean_with_first")
    with pytest.raises(ValueError, match="expected 'last', 'mean'"):
        activations._check_position("first")



def _lazy_packages() -> list[str]:
    package = ROOT / "interp_steer"
    return sorted(".".join(p.relative_to(ROOT).parent.parts) for p in package.rglob("__init__.py")
                  if "export_lazily(" in p.read_text(encoding="utf-8"))


def _type_checking_imports(package: str) -> dict[str, str]:
    """``{name: "module" or "module:original"}`` imported in the package's ``if TYPE_CHECKING:`` block."""
    path = ROOT.joinpath(*package.split("."), "__init__.py")
    found: dict[str, str] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom):
                    for alias in statement.names:
                        renamed = alias.asname is not None and alias.asname != alias.name
                        found[alias.asname or alias.name] = statement.module + (f":{alias.name}" if renamed else "")
    return found


def test_the_scan_sees_every_lazy_package():
    assert {"interp_steer", "interp_steer.studies", "interp_steer.studies.collision"} <= set(_lazy_packages())


@pytest.mark.parametrize("package", _lazy_packages())
def test_type_checkers_see_exactly_the_lazy_exports(package):
    """A lazily exported name is invisible to a type checker unless the package also imports it
    under ``TYPE_CHECKING``; the two lists must name the same things from the same modules."""
    exports = importlib.import_module(package)._EXPORTS
    expected = {name: target.removesuffix(f":{name}") for name, target in exports.items()}
    assert _type_checking_imports(package) == expected
