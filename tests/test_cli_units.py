"""The command line says what unit a steering coefficient is in, and does not steer every layer of
a vector at once unless asked (issue 31 §3.1), and its counts read as English (§3.7)."""

from __future__ import annotations

import json

import pytest
import torch

import interp_steer as ist
from interp_steer import SteeringVector, VectorMetadata, builtin_path
from interp_steer.cli import main
from interp_steer.commands.arguments import layer_runs, plural

STEERING_COMMANDS = ["steer", "sweep", "ab-eval", "lens", "dla"]


@pytest.fixture(scope="module")
def raw_vector(tmp_path_factory):
    """A raw (unnormalised) mean-difference vector at layers 1 and 2 of the tiny model."""
    path = tmp_path_factory.mktemp("units") / "raw.safetensors"
    assert main(["extract", "--model", "tiny-random", "--pairs", str(builtin_path("moral_pairs")),
                 "--layers", "1,2", "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def tiny():
    return ist.load_model("tiny-random")


def _help(command: str, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


@pytest.mark.parametrize("layers, text", [([15, 21], "15, 21"), ([0, 1, 2, 3, 7], "0..3, 7"), ([1, 2], "1, 2"),
                                          ([5], "5"), ([9, 3, 4, 5], "3..5, 9"), (range(30), "0..29")])
def test_layer_runs_writes_the_set_faithfully(layers, text):
    assert layer_runs(layers) == text


def test_plural():
    assert (plural(1, "figure"), plural(2, "figure"), plural(0, "figure")) == ("1 figure", "2 figures", "0 figures")


@pytest.mark.parametrize("command", STEERING_COMMANDS)
def test_every_steering_command_states_the_unit_in_its_help(command, capsys):
    text = _help(command, capsys)
    assert "--normalise {resid,unit}" in text
    assert "Units: a coefficient multiplies the vector as stored" in text
    assert "fraction of the mean residual norm" in text and "L2 norm" in text


def test_extract_help_names_the_units_and_what_the_layers_default_means(capsys):
    text = _help("extract", capsys)
    assert "--normalise {none,unit,resid}" in text
    assert "adds 30% of a typical residual" in text and "default: raw" in text
    assert "steer, lens and dla then need --layers" in text


def test_extract_prints_a_layer_set_faithfully_and_its_unit(tmp_path, capsys):
    out = tmp_path / "v.safetensors"
    assert main(["extract", "--model", "tiny-random", "--pairs", str(builtin_path("moral_pairs")), "--layers", "1,3",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 layers: 1, 3;" in printed and "1..3" not in printed
    assert "coefficient unit: none (raw)" in printed
    assert SteeringVector.load(out).metadata.normalisation == "none"


def test_extract_of_every_layer_says_so(tmp_path, capsys):
    out = tmp_path / "v.safetensors"
    assert main(["extract", "--model", "tiny-random", "--pairs", str(builtin_path("moral_pairs")),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 layers (every layer): 0..3;" in printed
    assert "--layers" in printed  # how the steering commands choose among them


@pytest.mark.parametrize("unit", ["resid", "unit"])
def test_extract_normalise_stores_the_vector_in_that_unit(unit, tmp_path, capsys):
    raw, out = tmp_path / "raw.safetensors", tmp_path / f"{unit}.safetensors"
    base = ["extract", "--model", "tiny-random", "--pairs", str(builtin_path("moral_pairs")), "--layers", "1,2"]
    assert main([*base, "--out", str(raw)]) == 0
    assert main([*base, "--normalise", unit, "--out", str(out)]) == 0
    assert f"coefficient unit: {unit}:" in capsys.readouterr().out
    stored, expected = SteeringVector.load(out), SteeringVector.load(raw).normalised(unit)
    assert stored.metadata.normalisation == unit
    for layer in (1, 2):
        torch.testing.assert_close(stored[layer], expected[layer])
    target = {1: 1.0, 2: 1.0} if unit == "unit" else dict(stored.metadata.resid_norm)
    assert stored.norms() == pytest.approx(target, rel=1e-5)


@pytest.mark.parametrize("command", ["steer", "lens"])
def test_a_vector_of_several_layers_needs_layers_to_steer_at_once(command, raw_vector, tmp_path, capsys):
    argv = [command, "--model", "tiny-random", "--vector", str(raw_vector), "--coefficient", "1", "--prompt", "Hi"]
    argv += ["--max-new-tokens", "2"] if command == "steer" else ["--out", str(tmp_path / "lens")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--layers is needed" in err and "holds 2 layers (1, 2)" in err and "--layers all" in err
    assert not (tmp_path / "lens").exists()


def test_layers_all_steers_every_layer_together_and_says_so(raw_vector, tmp_path, capsys):
    out = tmp_path / "s.json"
    assert main(["steer", "--model", "tiny-random", "--vector", str(raw_vector), "--coefficient", "1", "--layers", "all",
                 "--prompt", "Hi", "--max-new-tokens", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 layers of" in printed and "steering them together: 1, 2" in printed
    assert json.loads(out.read_text())["layers"] == [1, 2]


def test_a_layer_the_vector_lacks_is_refused_by_name(raw_vector, capsys):
    assert main(["steer", "--model", "tiny-random", "--vector", str(raw_vector), "--coefficient", "1", "--layers", "3",
                 "--prompt", "Hi"]) == 2
    assert "has no layer 3; it holds 1, 2" in capsys.readouterr().err


def test_steer_prints_and_records_the_unit_of_a_raw_vector(raw_vector, tmp_path, capsys):
    out = tmp_path / "s.json"
    assert main(["steer", "--model", "tiny-random", "--vector", str(raw_vector), "--coefficient", "2", "--layers", "2",
                 "--prompt", "Hi", "--max-new-tokens", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"steering layer 2 of {raw_vector}" in printed
    assert "coefficient unit: none (raw)" in printed and "(as stored in the file)" in printed
    relative = SteeringVector.load(raw_vector).relative_norms()[2]
    assert f"a coefficient of 1 adds this fraction of the mean residual norm: {relative:.3g} at layer 2" in printed
    unit = json.loads(out.read_text())["coefficient_unit"]
    assert unit["unit"] == unit["file_unit"] == "none" and unit["rescaled"] is False
    assert unit["norm_over_resid"] == {"2": pytest.approx(relative)}


def test_steer_normalise_rescales_as_the_python_api_does(raw_vector, tiny, tmp_path, capsys):
    """The oracle: the command's completions are those of ``vector.normalised("resid")`` in Python."""
    out = tmp_path / "s.json"
    assert main(["steer", "--model", "tiny-random", "--vector", str(raw_vector), "--coefficient", "0.5",
                 "--layers", "2", "--normalise", "resid", "--prompt", "Tell a story.", "--max-new-tokens", "8",
                 "--out", str(out)]) == 0
    assert "coefficient unit: resid:" in capsys.readouterr().out
    record = json.loads(out.read_text())
    unit = record["coefficient_unit"]
    assert (unit["unit"], unit["file_unit"], unit["rescaled"]) == ("resid", "none", True)
    assert unit["norm_over_resid"] == {"2": pytest.approx(1.0)}
    vector = SteeringVector.load(raw_vector).select([2]).normalised("resid")
    expected = ist.generate(tiny, ["Tell a story."], max_new_tokens=8,
                            steering=ist.Steering(vector, 0.5, layers=[2], positions="after_prompt"))
    assert record["completions"][0]["text"] == expected[0].text
    raw = ist.generate(tiny, ["Tell a story."], max_new_tokens=8,
                       steering=ist.Steering(SteeringVector.load(raw_vector), 0.5, layers=[2], positions="after_prompt"))
    assert raw[0].text != expected[0].text  # the rescaling mattered


def test_normalise_resid_without_residual_norms_is_a_clean_error(tiny, tmp_path, capsys):
    path = SteeringVector({1: torch.ones(tiny.d_model)}, VectorMetadata(model=tiny.name, d_model=tiny.d_model)).save(
        tmp_path / "v.safetensors")
    assert main(["steer", "--model", "tiny-random", "--vector", str(path), "--coefficient", "1",
                 "--normalise", "resid", "--prompt", "Hi"]) == 2
    err = capsys.readouterr().err
    assert "--normalise resid" in err and "residual norm" in err


def test_a_file_without_the_normalisation_field_loads_as_raw_and_says_so(tiny, tmp_path, capsys):
    """Files written before the unit was shown, or by another tool, carry no ``normalisation``."""
    from interp_steer._tensor_files import write_safetensors
    from interp_steer.directions import FORMAT, FORMAT_VERSION

    metadata = {"model": tiny.name, "d_model": tiny.d_model, "resid_norm": {"1": 4.0}}
    path = write_safetensors(tmp_path / "old.safetensors", {"blocks.1.hook_resid_post": torch.full((tiny.d_model,), 0.25)},
                             FORMAT, FORMAT_VERSION, metadata, "steering vectors")
    assert SteeringVector.load(path).metadata.normalisation == "none"
    out = tmp_path / "s.json"
    assert main(["steer", "--model", "tiny-random", "--vector", str(path), "--coefficient", "1", "--prompt", "Hi",
                 "--max-new-tokens", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "steering layer 1 of" in printed and "coefficient unit: none (raw)" in printed
    assert json.loads(out.read_text())["coefficient_unit"]["unit"] == "none"


def test_an_unknown_normalisation_is_read_as_raw_and_said(tiny, tmp_path, capsys):
    path = SteeringVector({1: torch.ones(tiny.d_model)},
                          VectorMetadata(model=tiny.name, d_model=tiny.d_model, normalisation="caa")).save(
        tmp_path / "v.safetensors")
    assert main(["steer", "--model", "tiny-random", "--vector", str(path), "--coefficient", "1", "--prompt", "Hi",
                 "--max-new-tokens", "2"]) == 0
    assert "its normalisation 'caa' is unknown here, read as raw" in capsys.readouterr().out


def _prompts(folder):
    path = folder / "prompts.txt"
    path.write_text("Tell me about the sea.\nDescribe a city.\n")
    return path


def test_sweep_defaults_its_coefficients_to_the_unit_and_records_it(raw_vector, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", "--model", "tiny-random", "--vector", str(raw_vector), "--layers", "2", "--normalise", "resid",
                 "--prompts", str(_prompts(tmp_path)), "--max-new-tokens", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "--coefficients (the default for a resid vector): -0.4, -0.2, 0, 0.2, 0.4" in printed
    assert "steering layer 2 of" in printed
    report = json.loads((out / "sweep.json").read_text())
    assert report["coefficients"] == [-0.4, -0.2, 0.0, 0.2, 0.4]
    assert report["coefficient_unit"]["unit"] == "resid" and report["coefficient_unit"]["file_unit"] == "none"


def test_sweep_of_a_raw_vector_keeps_the_raw_default(raw_vector, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", "--model", "tiny-random", "--vector", str(raw_vector), "--prompts", str(_prompts(tmp_path)),
                 "--max-new-tokens", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "--coefficients (the default for a none vector): -8, -4, 0, 4, 8" in printed
    assert "2 layers of" in printed and "each steered on its own: 1, 2" in printed
    assert json.loads((out / "sweep.json").read_text())["layers"] == [1, 2]


def test_a_unit_vector_needs_its_coefficients_given(raw_vector, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", "--model", "tiny-random", "--vector", str(raw_vector), "--normalise", "unit",
                 "--prompts", str(_prompts(tmp_path)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--coefficients has no default for a unit-normalised vector" in err and "--normalise resid" in err
    assert not out.exists()


def test_ab_eval_records_the_unit(raw_vector, tmp_path, capsys):
    questions = tmp_path / "q.jsonl"
    rows = [{"question": f"Question {i}?\n\nChoices:\n(A) yes\n(B) no",
             "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"} for i in range(3)]
    questions.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "ab"
    assert main(["ab-eval", "--model", "tiny-random", "--vector", str(raw_vector), "--layers", "1",
                 "--normalise", "resid", "--questions", str(questions), "--out", str(out)]) == 0
    assert "--coefficients (the default for a resid vector): -0.2, -0.1, 0, 0.1, 0.2" in capsys.readouterr().out
    report = json.loads((out / "ab_eval.json").read_text())
    assert report["coefficient_unit"]["unit"] == "resid" and report["layers"] == [1]
    assert report["coefficients"] == [-0.2, -0.1, 0.0, 0.1, 0.2]


def test_lens_says_one_figure_and_the_unit(raw_vector, tmp_path, capsys):
    out = tmp_path / "lens"
    assert main(["lens", "--model", "tiny-random", "--vector", str(raw_vector), "--coefficient", "0.3", "--layers", "1",
                 "--normalise", "resid", "--prompt", "Hi there", "--window", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "coefficient unit: resid:" in printed
    assert printed.rstrip().endswith("and 1 figure")


@pytest.mark.parametrize("unit", ["none", "resid"])
def test_lens_and_dla_records_name_the_coefficients_unit(unit, raw_vector):
    from interp_steer.lens import describe_steering

    vector = SteeringVector.load(raw_vector)
    vector = vector.normalised(unit) if unit != "none" else vector
    assert describe_steering(ist.Steering(vector, 0.3))["unit"] == unit
