"""The command line, called in-process through ``main(argv)``."""

from __future__ import annotations

import json

import pytest
import torch

from interp_steer import __version__
from interp_steer.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_subcommands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "info" in out and "collide" in out


def test_info_json(capsys):
    assert main(["info", "--model", "tiny-random", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["n_layers"] == 4 and facts["d_model"] == 64
    assert facts["name"] == "tiny-random:0"


def test_info_text(capsys):
    assert main(["info", "--model", "tiny-random"]) == 0
    out = capsys.readouterr().out
    assert "blocks.{L}.hook_resid_post" in out


def test_bad_model_is_a_clean_error(capsys):
    assert main(["info", "--model", "not-a-model"]) == 2
    err = capsys.readouterr().err
    assert "known model specs" in err


@pytest.mark.skipif(torch.cuda.device_count() >= 3, reason="checks the refusal on a machine with fewer than 3 GPUs")
@pytest.mark.parametrize("command", [["info"], ["collide", "--quick"], ["patch"], ["robustness", "--quick"], ["svf", "--quick"]])
def test_more_devices_than_gpus_is_a_clean_error(command, tmp_path, capsys):
    """--n-devices on every model-loading command: more GPUs than there are is a one-line usage
    error before any work (no output directory written)."""
    out = [] if command == ["info"] else ["--out", str(tmp_path / "run")]
    assert main([*command, "--model", "tiny-random", "--n-devices", "3", *out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "n_devices=3" in err[0] and "--n-devices" in err[0]
    assert not (tmp_path / "run").exists()


def test_extract_pairs_writes_a_loadable_vector_and_gguf(tmp_path, capsys):
    from interp_steer import SteeringVector, builtin_path

    out = tmp_path / "moral.safetensors"
    code = main(["extract", "--model", "tiny-random", "--pairs", str(builtin_path("moral_pairs")),
                 "--layers", "1,3", "--out", str(out), "--gguf", str(tmp_path / "moral.gguf")])
    assert code == 0
    vector = SteeringVector.load(out)
    assert vector.layers == (1, 3) and vector.metadata.method == "mean_diff"
    assert vector.metadata.n_positive == 120
    assert sorted(SteeringVector.read_gguf(tmp_path / "moral.gguf")) == [1, 3]


def test_extract_ab_questions_reads_at_the_answer_letter(tmp_path):
    from interp_steer import SteeringVector

    questions = tmp_path / "q.jsonl"
    rows = [{"question": f"Question {i}?\n\nChoices:\n(A) yes {i}\n(B) no {i}",
             "answer_matching_behavior": "(A)" if i % 2 else "(B)",
             "answer_not_matching_behavior": "(B)" if i % 2 else "(A)"} for i in range(6)]
    questions.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "ab.safetensors"
    assert main(["extract", "--model", "tiny-random", "--pairs", str(questions), "--layers", "2",
                 "--out", str(out)]) == 0
    assert SteeringVector.load(out).metadata.n_positive == 6


def test_extract_corpora_with_methods(tmp_path):
    from interp_steer import SteeringVector, builtin_path

    for method in ("probe", "mean_diff"):
        out = tmp_path / f"{method}.safetensors"
        assert main(["extract", "--model", "tiny-random", "--positive", str(builtin_path("persona_a")),
                     "--negative", str(builtin_path("baseline")), "--method", method,
                     "--position", "mean", "--out", str(out)]) == 0
        assert SteeringVector.load(out).metadata.position == "mean"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--positive", "a.txt", "--out", "v.safetensors"], "--negative"),
        (["--pairs", "p.jsonl", "--out", "v.pt"], ".safetensors"),
    ],
)
def test_extract_bad_arguments(argv, message, capsys):
    assert main(["extract", "--model", "tiny-random", *argv]) == 2
    assert message in capsys.readouterr().err


def test_extract_bad_data_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"positive": "a", "negative": "b"}\n{"positive": "c"}\n')
    assert main(["extract", "--model", "tiny-random", "--pairs", str(bad), "--out",
                 str(tmp_path / "v.safetensors")]) == 2
    assert f"{bad}:2" in capsys.readouterr().err


def test_locate_writes_the_documented_schema(tmp_path):
    from interp_steer import builtin_path

    out = tmp_path / "loc"
    a, b, base = (builtin_path(n) for n in ("persona_a", "persona_b", "baseline"))
    assert main(["locate", "--model", "tiny-random", "--concept", f"a={a}:{base}",
                 "--concept", f"b={b}:{base}", "--folds", "3", "--out", str(out)]) == 0
    report = json.loads((out / "locate.json").read_text())
    assert report["model"] == "tiny-random:0" and report["n_layers"] == 4
    assert set(report["concepts"]) == {"a", "b"}
    for concept in report["concepts"].values():
        for key in ("accuracy", "accuracy_std", "auroc"):
            assert len(concept[key]) == 4 and all(0.0 <= x <= 1.0 for x in concept[key])
        assert concept["best_layer"] in range(4)
    assert report["shared_layer"] in range(4)
    assert (out / "locate.png").read_bytes().startswith(b"\x89PNG")


def test_locate_bad_concept_spec(capsys):
    assert main(["locate", "--model", "tiny-random", "--concept", "nofiles", "--out", "x"]) == 2
    assert "NAME=POS_FILE:NEG_FILE" in capsys.readouterr().err


def test_geometry_report(tmp_path):
    import torch

    from interp_steer import SteeringVector, VectorMetadata

    meta = VectorMetadata(model="m", d_model=3, resid_norm={1: 2.0, 2: 2.0})
    SteeringVector({1: torch.tensor([1.0, 0, 0]), 2: torch.tensor([0, 1.0, 0])}, meta).save(tmp_path / "a.safetensors")
    SteeringVector({1: torch.tensor([1.0, 1, 0]), 2: torch.tensor([0, -1.0, 0])}, meta).save(tmp_path / "b.safetensors")
    out = tmp_path / "geo"
    assert main(["geometry", str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"),
                 "--out", str(out)]) == 0
    report = json.loads((out / "geometry.json").read_text())
    assert report["cosine"]["a vs b"]["cosine"] == pytest.approx([2 ** -0.5, -1.0])
    assert report["vectors"]["a"]["norm_over_resid"] == pytest.approx([0.5, 0.5])
    for name in ("geometry.png", "cosine_across_layers.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")


@pytest.fixture
def moral_vector(tmp_path):
    from interp_steer import builtin_path

    path = tmp_path / "moral.safetensors"
    assert main(["extract", "--model", "tiny-random", "--pairs", str(builtin_path("moral_pairs")),
                 "--layers", "1,2", "--out", str(path)]) == 0
    return path


def test_steer_prints_and_writes_completions(moral_vector, tmp_path, capsys):
    out = tmp_path / "s.json"
    assert main(["steer", "--model", "tiny-random", "--vector", str(moral_vector), "--coefficient", "-3",
                 "--layers", "2", "--prompt", "Tell a story.", "--max-new-tokens", "6", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["coefficient"] == -3.0 and record["positions"] == "after_prompt" and record["layers"] == [2]
    assert record["coefficient_unit"]["unit"] == "none"
    assert len(record["completions"]) == 1 and record["completions"][0]["prompt"] == "Tell a story."
    assert "### Tell a story." in capsys.readouterr().out


def test_sweep_writes_metrics_and_heatmaps(moral_vector, tmp_path):
    from interp_steer import builtin_path

    out = tmp_path / "sweep"
    readout = f"{builtin_path('persona_a')}:{builtin_path('persona_b')}"
    assert main(["sweep", "--model", "tiny-random", "--vector", str(moral_vector), "--layers", "2",
                 "--coefficients", "-4,0,4", "--prompts", str(builtin_path("prompts_ood")),
                 "--max-new-tokens", "6", "--readout", readout, "--out", str(out)]) == 0
    report = json.loads((out / "sweep.json").read_text())
    assert report["coefficients"] == [-4.0, 0.0, 4.0] and report["layers"] == [2]
    vader = report["metrics"]["vader"]
    assert len(vader["mean"][0]) == 3 and vader["n_items"] == 15
    backfire = report["backfire"]  # was "backfire_vader": the metric and direction are now settings
    assert backfire["metric"] == "vader" and backfire["direction"] == 1
    assert set(backfire["cells"]) == {"2,-4", "2,4"} and backfire["floor_source"].startswith("seeds")
    probe = report["metrics"]["probe_valence"]
    assert all(0.0 <= p <= 1.0 for p in probe["mean"][0])
    for name in ("vader", "perplexity", "repetition", "distinct_2", "probe_valence"):
        assert (out / f"sweep_{name}.png").read_bytes().startswith(b"\x89PNG")


def test_ab_eval_cli(moral_vector, tmp_path):
    questions = tmp_path / "q.jsonl"
    rows = [{"question": f"Question {i}?\n\nChoices:\n(A) yes\n(B) no",
             "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"} for i in range(4)]
    questions.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "ab"
    assert main(["ab-eval", "--model", "tiny-random", "--vector", str(moral_vector), "--questions",
                 str(questions), "--coefficients", "-2,0,2", "--out", str(out)]) == 0
    report = json.loads((out / "ab_eval.json").read_text())
    assert report["layers"] == [1, 2] and report["n_items"] == 4
    assert all(0 <= p <= 1 for row in report["mean"] for p in row)
    anti = report["anti_steerable"]
    assert set(anti["cells"]) == {"1,-2", "1,2", "2,-2", "2,2"} and set(anti["slope"]) == {"1", "2"}
    assert all(0 <= cell["mean"] <= 1 and cell["n"] == 4 for cell in anti["cells"].values())
    assert (out / "ab_eval.png").read_bytes().startswith(b"\x89PNG")


def test_vector_for_another_model_is_refused(tmp_path, capsys):
    import torch

    from interp_steer import SteeringVector, VectorMetadata

    path = SteeringVector({1: torch.ones(8)}, VectorMetadata(model="gpt2", d_model=8)).save(tmp_path / "g.safetensors")
    assert main(["steer", "--model", "tiny-random", "--vector", str(path), "--coefficient", "1",
                 "--prompt", "x"]) == 2
    assert "d_model" in capsys.readouterr().err


def _run_module(*argv: str):
    """Run ``python -m ...`` in a fresh interpreter from the repository root, so this checkout's
    package is the one imported."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", *argv], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("module", ["interp_steer", "interp_steer.cli"])
def test_python_dash_m_runs_subcommands(module):
    # The module's own entry point must see every subcommand's function (it once sat above two of
    # them, so every subcommand died with a NameError), and `python -m interp_steer` must exist.
    done = _run_module(module, "info", "--model", "tiny-random", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["name"] == "tiny-random:0"


@pytest.mark.parametrize("flag, expected", [("--help", "collide"), ("--version", __version__)])
def test_python_dash_m_help_and_version(flag, expected):
    done = _run_module("interp_steer", flag)
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout
