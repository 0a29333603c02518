"""A single string where a list of texts, prompts, pairs or questions belongs is refused, with the
same one-line error, by every public function; before anything else runs (no model work first).

``generate(model, "Tell me a story")`` used to run fifteen generations, one per character. The
discovery below finds every public function with such a parameter, so a new one cannot forget the
check: a parameter named here must either refuse a bare string or be listed in ``ACCEPTS_STRING``
with the reason it takes one.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from pathlib import Path

import pytest

import interp_steer
import interp_steer as ist

LIST_PARAMETERS = {"texts", "prompts", "positive", "negative", "pairs", "questions", "corpus", "generations",
                   "persona_a", "persona_b", "baseline", "neutral", "contexts", "completions", "items"}

ACCEPTS_STRING = {
    # (qualified name, parameter): why a string is legitimate there
    ("interp_steer.fields.field.SteeringField.top_tokens", "contexts"): "one context is a documented shorthand",
    ("interp_steer.vocab.field_gradient_directions", "contexts"): "one context is a documented shorthand",
    ("interp_steer.data.ContrastPair", "positive"): "a pair holds two strings",
    ("interp_steer.data.ContrastPair", "negative"): "a pair holds two strings",
    ("interp_steer.data.dataset_hash", "items"): "hashes any JSON-able items",
    ("interp_steer.units.LocalBackend.map", "items"): "work units, not texts",
    ("interp_steer.units.RayBackend.map", "items"): "work units, not texts",
    ("interp_steer.directions.from_activations", "positive"): "takes Activations, not texts",
    ("interp_steer.directions.from_activations", "negative"): "takes Activations, not texts",
    ("interp_steer.directions.mean_diff", "positive"): "takes tensors",
    ("interp_steer.directions.mean_diff", "negative"): "takes tensors",
    ("interp_steer.directions.pca_diff", "positive"): "takes tensors",
    ("interp_steer.directions.pca_diff", "negative"): "takes tensors",
    ("interp_steer.directions.probe_direction", "positive"): "takes tensors",
    ("interp_steer.directions.probe_direction", "negative"): "takes tensors",
    ("interp_steer.fields.fit.fit_scorer", "positive"): "takes Activations or tensors",
    ("interp_steer.fields.fit.fit_scorer", "negative"): "takes Activations or tensors",
    ("interp_steer.probes.layers.probe_layers", "positive"): "takes activations",
    ("interp_steer.probes.layers.probe_layers", "negative"): "takes activations",
    ("interp_steer.probes.sample_size.sample_size_curve", "positive"): "takes activations",
    ("interp_steer.probes.sample_size.sample_size_curve", "negative"): "takes activations",
    ("interp_steer.stats.backfire_rate", "baseline"): "takes numbers",
}

PATH_OK = {"positive", "negative", "persona_a", "persona_b", "baseline", "prompts", "pairs", "questions", "neutral", "generations"}
"""Study entry points read a string as a file path: they refuse one that names no file."""

ONE_LINE = re.compile(r"^(\w[\w ]*) must be a list, not a single string: pass \1=\['.*'\]$")
ONE_LINE_PATH = re.compile(r"^(\w[\w ]*)='.*' is a single string and no existing file: pass a list "
                           r"\(\1=\['.*'\]\) or the path of a file$")


def _public_callables():
    """(qualified name, callable, is_study_entry) of every public function and public method."""
    seen, out = set(), []
    root = Path(interp_steer.__file__).parent
    modules = sorted(".".join(("interp_steer", *p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
                     for p in root.rglob("*.py") if not any(part.startswith("_") and part != "__init__.py"
                                                           for part in p.relative_to(root).parts))
    for name in modules:
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr, None)
            if obj is None or id(obj) in seen or not getattr(obj, "__module__", "").startswith("interp_steer"):
                continue
            seen.add(id(obj))
            where = f"{obj.__module__}.{obj.__qualname__}" if hasattr(obj, "__qualname__") else f"{name}.{attr}"
            if inspect.isfunction(obj):
                out.append((where, obj))
            elif inspect.isclass(obj):
                # A dataclass's or named tuple's constructor records results (the prompts it ran on); its
                # methods are API.
                if not dataclasses.is_dataclass(obj) and not hasattr(obj, "_fields"):
                    out.append((where, obj))
                for key, member in vars(obj).items():
                    if inspect.isfunction(member) and not key.startswith("_"):
                        out.append((f"{where}.{key}", member))
    return out


def _cases():
    cases = []
    for where, fn in _public_callables():
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):
            continue
        for parameter in signature.parameters:
            if parameter in LIST_PARAMETERS and (where, parameter) not in ACCEPTS_STRING:
                cases.append(pytest.param(where, fn, parameter, id=f"{where.removeprefix('interp_steer.')}:{parameter}"))
    return cases


CASES = _cases()


def test_the_discovery_finds_the_functions_users_call():
    found = {(where, p) for where, _, p in (c.values for c in CASES)}
    assert ("interp_steer.generation.generate", "prompts") in found
    assert ("interp_steer.activations.collect_activations", "texts") in found
    assert ("interp_steer.evaluation.ab_eval", "questions") in found
    assert ("interp_steer.directions.build_vector", "positive") in found
    assert len(CASES) >= 25


@pytest.mark.parametrize(("where", "fn", "parameter"), CASES)
def test_a_bare_string_is_refused_with_the_same_one_line_error(where, fn, parameter):
    """Every other argument is a placeholder that would fail if touched: the check comes first. The
    function runs without the test-time type checker (jaxtyping + beartype wrap it under pytest),
    which would refuse the placeholders before the function's own code runs."""
    placeholder = object()
    fn = inspect.unwrap(fn)
    signature = inspect.signature(fn)
    kwargs = {}
    for name, p in signature.parameters.items():
        if name == parameter:
            kwargs[name] = "Tell me a story"
        elif p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            kwargs[name] = placeholder
    with pytest.raises(TypeError) as caught:
        fn(**kwargs)
    message = str(caught.value)
    assert "\n" not in message
    pattern = ONE_LINE_PATH if "no existing file" in message else ONE_LINE
    match = pattern.match(message)
    assert match is not None and match.group(1) == parameter, message
    assert "no existing file" not in message or parameter in PATH_OK


def test_generate_with_one_prompt_string_fails_before_generating():
    model = ist.load_model("tiny-random")
    with pytest.raises(TypeError, match=r"^prompts must be a list, not a single string: "
                                        r"pass prompts=\['Tell me a story'\]$"):
        ist.generate(model, "Tell me a story", max_new_tokens=2)
    assert len(ist.generate(model, ["Tell me a story"], max_new_tokens=2)) == 1


def test_a_string_naming_a_file_is_still_read_by_the_studies(tmp_path):
    from interp_steer.data import load_prompts
    from interp_steer.studies._common import load_items

    path = tmp_path / "prompts.jsonl"
    path.write_text('{"text": "Once upon a time"}\n{"text": "The end"}\n', encoding="utf-8")
    items, source = load_items(str(path), None, load_prompts, "prompts", str)
    assert items == ["Once upon a time", "The end"] and source == str(path)
    with pytest.raises(TypeError, match="no existing file"):
        load_items(str(tmp_path / "missing.jsonl"), None, load_prompts, "prompts", str)
