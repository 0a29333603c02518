"""Did-you-mean in errors: a misspelt subcommand and a misspelt ``--model`` on the command line, and
the Python API's :class:`ModelSpecError` (:mod:`interp_steer._suggest`)."""

from __future__ import annotations

import pickle

import pytest

import interp_steer as ist
from interp_steer._suggest import close_matches, did_you_mean
from interp_steer.cli import main
from interp_steer.models import DEFAULT_MODEL, TINY_FAMILIES


def test_close_matches_finds_typos_and_names_cut_short():
    assert close_matches("colide", ["info", "collide", "score"]) == ["collide"]
    assert close_matches("smollm", [DEFAULT_MODEL, "tiny-random"]) == [DEFAULT_MODEL]
    assert close_matches("SMOLLM2", [DEFAULT_MODEL]) == [DEFAULT_MODEL]  # case does not matter
    assert close_matches("nonsense", [DEFAULT_MODEL, "tiny-random"]) == []
    assert close_matches("", ["info"]) == []
    assert did_you_mean("gema2", TINY_FAMILIES) == "did you mean 'gemma2' or 'gemma3'?"
    assert did_you_mean("xyz", TINY_FAMILIES) == ""


def command_line_error(capsys, *argv: str) -> str:
    assert main(list(argv)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def test_a_cut_short_model_spec_is_suggested_on_several_short_lines(capsys):
    err = command_line_error(capsys, "info", "--model", "smollm")
    lines = err.rstrip("\n").splitlines()
    assert lines[0] == ("interp-steer info: error: model spec 'smollm' is not a file, directory or hub id; "
                        f"did you mean '{DEFAULT_MODEL}'?")
    assert lines[1] == "  known model specs:"
    assert 5 <= len(lines) <= 10 and max(map(len, lines[1:])) <= 104
    assert "None" not in err and '"' not in err  # no Python values, no reprs
    for shown in (DEFAULT_MODEL, "ORG/NAME", "PATH", "tiny-random[:FAMILY][:SEED]", *TINY_FAMILIES):
        assert shown in err


def test_an_unknown_model_spec_lists_the_known_ones_without_a_guess(capsys):
    err = command_line_error(capsys, "info", "--model", "nonsense")
    assert err.startswith("interp-steer info: error: model spec 'nonsense' is not a file, directory or hub id.\n")
    assert "did you mean" not in err and "known model specs" in err and "None" not in err


def test_a_misspelt_tiny_family_is_suggested(capsys):
    err = command_line_error(capsys, "info", "--model", "tiny-random:gema2")
    assert "no tiny-random family 'gema2'; did you mean 'gemma2' or 'gemma3'?" in err.splitlines()[0]


def test_a_misspelt_subcommand_is_suggested(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["colide"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'colide'; did you mean 'collide'? (choose from 'info'," in err
    assert len(err.strip().splitlines()) == 1


def test_an_invalid_choice_with_nothing_close_is_left_as_argparse_says_it(capsys):
    with pytest.raises(SystemExit):
        main(["zzzzzz"])
    assert "invalid choice: 'zzzzzz' (choose from 'info'," in capsys.readouterr().err


def test_the_python_error_keeps_the_full_list_and_the_suggestion():
    with pytest.raises(ist.ModelSpecError) as info:
        ist.load_model("smollm")
    error = info.value
    assert str(error).startswith(f"model spec 'smollm' is not a file, directory or hub id; did you mean "
                                 f"'{DEFAULT_MODEL}'?\naccepted model specs:")
    assert f'None or "{DEFAULT_MODEL}"' in str(error)  # in Python, None is how to ask for the default
    assert error.suggestion == f"did you mean '{DEFAULT_MODEL}'?"
    copy = pickle.loads(pickle.dumps(error))  # a Ray worker's error comes back whole
    assert str(copy) == str(error) and copy.for_command_line() == error.for_command_line()
