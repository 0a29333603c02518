"""Property-based tests of every input path: whatever bytes a data file, a vector file or an
activations file holds, loading it either succeeds with well-typed content or raises the module's
own error, one line, naming the file (and the line, for data files). Never another exception type,
never a traceback from deep inside a parser.

Budget: the whole module runs in well under a minute (few examples each, no model forward).
"""

from __future__ import annotations

import json
import math
import string
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import interp_steer as ist
from interp_steer.activations import ActivationsFileError
from interp_steer.directions import SteeringVector, VectorMetadata

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

LOADERS = {"corpus": ist.load_corpus, "prompts": ist.load_prompts, "pairs": ist.load_pairs,
           "ab": ist.load_ab_questions}

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)
field_names = st.sampled_from(["text", "positive", "negative", "question", "answer_matching_behavior",
                               "answer_not_matching_behavior", "prompt", "x"])
records = st.dictionaries(field_names, json_values | st.text(max_size=30) | st.sampled_from(["(A)", "(B)", " (C) "]),
                          max_size=4)


def _line(record) -> str:
    return json.dumps(record, allow_nan=True)


file_contents = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=300).map(str.encode),
    st.lists(records, min_size=0, max_size=5).map(lambda rs: "\n".join(map(_line, rs)).encode()),
    st.tuples(st.sampled_from([b"", b"\xef\xbb\xbf"]), st.lists(st.text(string.printable, max_size=40), max_size=5),
              st.sampled_from([b"\n", b"\r\n", b"\n\n"])).map(lambda t: t[0] + t[2].join(s.encode() for s in t[1])),
    st.integers(1, 200_000).map(lambda depth: b"[" * depth + b"]" * depth),  # nesting deeper than Python recurses
    st.integers(100_000, 3_000_000).map(lambda size: json.dumps({"text": "x" * size}).encode()),  # a huge line
)


def _one_line_naming(error: Exception, path: Path) -> None:
    message = str(error)
    assert "\n" not in message, message
    assert str(path) in message, message


@pytest.mark.parametrize("kind", list(LOADERS))
@pytest.mark.parametrize("suffix", [".jsonl", ".txt"])
@FAST
@given(data=file_contents)
def test_data_loaders_never_crash(tmp_path, kind, suffix, data):
    path = tmp_path / f"data{suffix}"
    path.write_bytes(data)
    try:
        loaded = LOADERS[kind](path)
    except ist.DatasetError as error:
        _one_line_naming(error, path)
        return
    assert loaded and all(isinstance(item, (str, ist.ContrastPair, ist.ABQuestion)) for item in loaded)


def _vector_file(folder: Path) -> Path:
    directions = {0: torch.tensor([1.0, -2.0, 0.5]), 3: torch.tensor([0.0, 4.0, 1.0])}
    meta = VectorMetadata(model="tiny-random:smollm2", d_model=3, n_positive=4, n_negative=4, resid_norm={0: 2.0, 3: 5.0})
    return SteeringVector(directions, meta).save(folder / "v.safetensors")


def _damaged(original: bytes, cut: int, flips: list[tuple[int, int]], path: Path) -> Path:
    """``original`` truncated at ``cut`` (modulo its length) with bytes overwritten at ``flips``."""
    data = bytearray(original[: cut % (len(original) + 1)])
    for at, value in flips:
        if data:
            data[at % len(data)] = value
    path.write_bytes(bytes(data))
    return path


@FAST
@given(cut=st.integers(0, 10_000), flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4))
def test_damaged_vector_files_raise_one_line_naming_the_file(tmp_path, cut, flips):
    path = _damaged(_vector_file(tmp_path).read_bytes(), cut, flips, tmp_path / "damaged.safetensors")
    try:
        vector = SteeringVector.load(path)
    except ist.VectorFileError as error:
        _one_line_naming(error, path)
        return
    # A flip that leaves a valid file (e.g. in a float's low bits) loads a finite vector of the right shape.
    assert set(vector.layers) == {0, 3} and all(torch.isfinite(v).all() and v.shape == (3,) for v in vector.directions.values())


def test_another_models_vector_is_refused_in_one_line(tmp_path):
    model = ist.load_model("tiny-random")
    path = SteeringVector({0: torch.ones(model.d_model)}, VectorMetadata(model="some-other-model", d_model=model.d_model)) \
        .save(tmp_path / "other.safetensors")
    with pytest.raises(ist.VectorFileError) as error:
        SteeringVector.load(path, model=model)
    _one_line_naming(error.value, path)
    assert "some-other-model" in str(error.value)


@FAST
@given(meta=st.dictionaries(st.sampled_from(["model", "d_model", "hook_point", "method", "n_positive", "resid_norm",
                                              "bogus", "position"]), json_values, max_size=5),
       tensor=st.sampled_from(["nan", "inf", "shape", "dtype", "name", "ok"]))
def test_tampered_vector_metadata_and_tensors(tmp_path, meta, tensor):
    from safetensors.torch import save_file

    values = {"nan": torch.tensor([float("nan"), 1.0, 2.0]), "inf": torch.tensor([float("inf"), 1.0, 2.0]),
              "shape": torch.ones(2, 3), "dtype": torch.ones(3, dtype=torch.int32), "name": torch.ones(3),
              "ok": torch.ones(3)}[tensor]
    name = "not_a_hook" if tensor == "name" else "blocks.0.hook_resid_post"
    header = {"format": "interp_steer.steering_vector", "format_version": "1", "metadata": json.dumps(meta)}
    path = tmp_path / "tampered.safetensors"
    save_file({name: values}, str(path), metadata=header)
    try:
        vector = SteeringVector.load(path)
    except ist.VectorFileError as error:
        _one_line_naming(error, path)
        return
    assert all(torch.isfinite(v).all() for v in vector.directions.values())


@FAST
@given(cut=st.integers(0, 100_000), flips=st.lists(st.tuples(st.integers(0, 100_000), st.integers(0, 255)), max_size=3))
def test_damaged_activation_files_raise_one_line_naming_the_file(tmp_path, cut, flips):
    acts = ist.Activations(values=torch.arange(2 * 2 * 3, dtype=torch.float32).reshape(2, 2, 3), layers=(1, 2),
                           hook_point="resid_post", position="last", text_index=torch.arange(2), n_texts=2,
                           model_name="m")
    path = _damaged(acts.save(tmp_path / "a.safetensors").read_bytes(), cut, flips, tmp_path / "damaged.safetensors")
    try:
        loaded = ist.Activations.load(path)
    except ActivationsFileError as error:
        _one_line_naming(error, path)
        return
    assert loaded.values.shape == (2, 2, 3) and len(loaded.text_index) == 2


# --- the command line -----------------------------------------------------------------------------------


def _subcommands():
    import argparse

    from interp_steer.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def _required_argv(parser) -> list[str]:
    """Placeholder values for a subcommand's required options, so that parsing reaches the others."""
    argv = []
    for action in parser._actions:
        if action.required and action.option_strings:
            argv += [action.option_strings[0], "1" if action.type in (int, float) else "x"]
        elif action.required and not action.option_strings:  # a positional argument
            argv += ["x"] * (1 if action.nargs in (None, "+") else 0)
    for group in parser._mutually_exclusive_groups:
        if group.required:
            argv += [group._group_actions[0].option_strings[0], "x"]
    return argv


def _typed_options() -> list[tuple[str, str, str]]:
    return [(name, action.option_strings[0], action.type.__name__) for name, parser in _subcommands().items()
            for action in parser._actions if action.option_strings and action.type in (int, float)]


def _run_cli(argv: list[str], capsys) -> tuple[int, str]:
    from interp_steer.cli import main

    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.err


def _one_line_error(code: int, err: str, *names: str) -> None:
    assert code == 2, (code, err)
    assert "Traceback" not in err and err.count("\n") == 1 and "error:" in err, err
    for name in names:
        assert name in err, (name, err)


not_a_number = st.one_of(st.text(st.characters(blacklist_categories=["Nd", "Cs"]), min_size=1, max_size=12),
                         st.sampled_from(["", " ", "1e", "--", "0x1f", "1,2", "nan?", "½", "nan", "inf", "-inf", "1e999"]))


@pytest.mark.parametrize("command,option,kind", _typed_options())
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=not_a_number)
def test_malformed_numbers_are_one_line_usage_errors(capsys, command, option, kind, value):
    try:
        if math.isfinite({"int": int, "float": float}[kind](value)):
            return  # e.g. " 1" is a valid number: not this test's case
    except ValueError:
        pass
    code, err = _run_cli([command, *_required_argv(_subcommands()[command]), f"{option}={value}"], capsys)
    _one_line_error(code, err, option)


def _junk_file(folder: Path, kind: str) -> Path:
    path = folder / {"missing": "missing.jsonl", "dir": "a_folder", "binary": "junk.jsonl", "empty": "empty.jsonl",
                     "wrong": "wrong.jsonl"}[kind]
    if kind == "dir":
        path.mkdir(exist_ok=True)
    elif kind == "binary":
        path.write_bytes(b"\x00\xff\xfe" * 20)
    elif kind == "empty":
        path.write_text("\n\n")
    elif kind == "wrong":
        path.write_text('{"nope": 1}\n')
    return path


@pytest.fixture(scope="module")
def cli_vector(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli_vector")
    model = ist.load_model("tiny-random")
    gen = torch.Generator().manual_seed(0)
    directions = {layer: torch.randn(model.d_model, generator=gen) for layer in (1, 2)}
    return SteeringVector(directions, VectorMetadata(model=model.name, d_model=model.d_model)).save(folder / "v.safetensors")


BAD_LISTS = ["", ",", "1,,x", "a,b", "1;2", "--", "nan,1", "1e999", "[1,2]"]
BAD_LAYERS = ["99", "-7", "x", "1-", "3..1", "1,99"]


@pytest.mark.parametrize("command", ["steer", "sweep", "ab-eval"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.one_of(st.tuples(st.just("layers"), st.sampled_from(BAD_LAYERS)),
                      st.tuples(st.just("coefficients"), st.sampled_from(BAD_LISTS)),
                      st.tuples(st.just("file"), st.sampled_from(["missing", "dir", "binary", "empty", "wrong"])),
                      st.tuples(st.just("vector"), st.sampled_from(["missing", "dir", "binary", "empty"]))))
def test_bad_values_and_files_give_one_line_errors_and_no_output(tmp_path, capsys, cli_vector, command, case):
    import uuid

    kind, value = case
    tmp_path = tmp_path / uuid.uuid4().hex  # hypothesis runs every example in the same folder
    tmp_path.mkdir()
    out = tmp_path / "out"
    vector = str(_junk_file(tmp_path, value)) if kind == "vector" else str(cli_vector)
    data = str(_junk_file(tmp_path, value)) if kind == "file" else None
    argv = {"steer": ["steer", "--model", "tiny-random", "--vector", vector, "--coefficient", "1", "--max-new-tokens", "2",
                      "--out", str(out / "steer.json")] + (["--prompts", data] if data else ["--prompt", "Hi"]),
            "sweep": ["sweep", "--model", "tiny-random", "--vector", vector, "--prompts", data or str(_prompts(tmp_path)),
                      "--max-new-tokens", "2", "--out", str(out)],
            "ab-eval": ["ab-eval", "--model", "tiny-random", "--vector", vector, "--out", str(out),
                        "--questions", data or str(_questions(tmp_path))]}[command]
    if kind == "layers":
        argv += [f"--layers={value}"]
    if kind == "coefficients":
        if command == "steer":
            return
        argv += [f"--coefficients={value}"]
    code, err = _run_cli(argv, capsys)
    _one_line_error(code, err)
    if kind in ("vector", "file"):
        assert Path(vector if kind == "vector" else data).name in err
    assert not out.exists() or not any(p.suffix == ".json" for p in out.rglob("*"))


def _prompts(folder: Path) -> Path:
    path = folder / "prompts.txt"
    path.write_text("Tell me about the sea.\nDescribe a city.\n")
    return path


def _questions(folder: Path) -> Path:
    path = folder / "questions.jsonl"
    path.write_text("\n".join(json.dumps({"question": f"Is {w} good? (A) yes (B) no", "answer_matching_behavior": "(A)",
                                          "answer_not_matching_behavior": "(B)"}) for w in ("rain", "sun")) + "\n")
    return path


STUDY_LISTS = [("collide", "--alphas"), ("collide", "--lambdas"), ("svf", "--coefficients"), ("svf", "--layers"),
               ("robustness", "--coefficients"), ("robustness", "--sample-sizes"), ("collide", "--layer"),
               ("patch", "--layer")]


@pytest.mark.parametrize("command,flag", STUDY_LISTS)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.sampled_from(BAD_LISTS + ["x", "1.5.2"]))
def test_study_commands_refuse_malformed_lists_before_any_work(tmp_path, capsys, command, flag, value):
    import uuid

    out = tmp_path / uuid.uuid4().hex
    argv = [command, "--out", str(out), f"{flag}={value}"]
    argv += ["--models", "tiny-random"] if command == "robustness" else ["--model", "tiny-random"]
    code, err = _run_cli(argv, capsys)
    _one_line_error(code, err, flag)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("argv,named", [
    (["collide", "--layer", "99"], "layer 99"), (["patch", "--layer", "-99"], "layer -99"),
    (["svf", "--layers", "1,99"], "layer 99"), (["extract", "--pairs", "{dir}", "--out", "{tmp}/v.safetensors"], "directory"),
    (["locate", "--concept", "x={tmp}/none.jsonl:{tmp}/none.jsonl"], "none.jsonl"),
    (["geometry", "{junk}"], "junk.jsonl"), (["extract", "--positive", "{junk}", "--negative", "{junk}", "--out", "{tmp}/v.safetensors"],
                                            "junk.jsonl"),
])
def test_out_of_range_layers_and_unreadable_inputs_fail_fast_with_one_line(tmp_path, capsys, argv, named):
    junk = _junk_file(tmp_path, "binary")
    argv = [a.format(dir=tmp_path, tmp=tmp_path, junk=junk) for a in argv]
    if argv[0] != "geometry":
        argv += ["--model", "tiny-random"]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    before = set(tmp_path.rglob("*"))
    code, err = _run_cli(argv, capsys)
    _one_line_error(code, err, named)
    assert set(tmp_path.rglob("*")) == before  # refused before any work: not even a unit store
