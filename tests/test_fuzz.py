"""Property-based tests of every input path: whatever bytes a data file, a vector file or an
activations file holds, loading it either succeeds with well-typed content or raises the module's
own error, one line, naming the file (and the line, for data files). Never another exception type,
never a traceback from deep inside a parser.

Budget: the whole module runs in well under a minute (few examples each, no model forward).
"""

from __future__ import annotations

import json
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


@FAST
@given(cut=st.integers(0, 10_000), flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4))
def test_damaged_vector_files_raise_one_line_naming_the_file(tmp_path, cut, flips):
    original = _vector_file(tmp_path).read_bytes()
    data = bytearray(original[: cut % (len(original) + 1)])
    for at, value in flips:
        if data:
            data[at % len(data)] = value
    path = tmp_path / "damaged.safetensors"
    path.write_bytes(bytes(data))
    try:
        vector = SteeringVector.load(path)
    except ist.VectorFileError as error:
        _one_line_naming(error, path)
        return
    # A flip that leaves a valid file (e.g. in a float's low bits) loads a finite vector of the right shape.
    assert set(vector.layers) == {0, 3} and all(torch.isfinite(v).all() and v.shape == (3,) for v in vector.directions.values())


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
    original = acts.save(tmp_path / "a.safetensors").read_bytes()
    data = bytearray(original[: cut % (len(original) + 1)])
    for at, value in flips:
        if data:
            data[at % len(data)] = value
    path = tmp_path / "damaged.safetensors"
    path.write_bytes(bytes(data))
    try:
        loaded = ist.Activations.load(path)
    except ActivationsFileError as error:
        _one_line_naming(error, path)
        return
    assert loaded.values.shape == (2, 2, 3) and len(loaded.text_index) == 2
