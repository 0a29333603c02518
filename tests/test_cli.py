"""The command line, called in-process through ``main(argv)``."""

from __future__ import annotations

import json

import pytest

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
    assert "info" in out and "demo" in out


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
    assert "accepted model specs" in err


def test_demo_writes_json_and_png(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--model", "tiny-random", "--limit", "8", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["layers"] == [0, 1, 2, 3]
    assert summary["n_texts"] == {"persona_a": 8, "persona_b": 8, "baseline": 8}
    for key in ("resid_norm", "cosine_ab", "heldout_accuracy", "heldout_dprime"):
        assert len(summary[key]) == 4
    assert summary["best_layer"] in summary["layers"]
    png = (out / "layer_summary.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert "best layer" in capsys.readouterr().out


def test_demo_rejects_too_small_limit(capsys):
    assert main(["demo", "--model", "tiny-random", "--limit", "2"]) == 2
    assert "--limit" in capsys.readouterr().err
