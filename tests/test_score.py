"""Completions made elsewhere, scored on the collision axes (``interp-steer score``). Oracles: a run's own
``generations.jsonl`` scored again gives the run's numbers; ``--alpha-means persona-b`` on a file with
α flipped gives exactly the unflipped numbers; an incomplete grid gives every cell present and says
what each missing part needs; malformed lines fail with ``file:line``."""

from __future__ import annotations

import json
import math

import jsonschema
import numpy as np
import pytest

import interp_steer as ist
from interp_steer.cli import main
from interp_steer.data import CompletionRecord, DatasetError, load_generations, save_generations
from interp_steer.studies.collision.config import ScoreConfig
from interp_steer.studies.collision.imported import score
from interp_steer.studies.collision.result import schema


@pytest.fixture(scope="module")
def run(tiny, tmp_path_factory):
    from interp_steer.studies import collide

    out = tmp_path_factory.mktemp("collide")
    result = collide(tiny, quick=True, max_prompts=4, max_passages=20, max_new_tokens=6, lambdas=(0.5, 2.0),
                     save_generations=True)
    result.save(out, figures=False)
    return result, out


def close(a, b, path="", rel=1e-9):
    """Every number of ``a`` equals ``b``'s (to float rounding), recursively."""
    if isinstance(a, dict):
        for key in a:
            close(a[key], b[key], f"{path}/{key}", rel)
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            close(x, y, f"{path}[{i}]", rel)
    elif isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=rel, abs=1e-12), path
    else:
        assert a == b, path


def test_scoring_a_runs_own_generations_reproduces_its_numbers(run, tmp_path, capsys):
    result, out = run
    lines = load_generations(out / "generations.jsonl")
    assert len(lines) == 4 * 11 and all(r.model == result.model["name"] and r.token_ids for r in lines)
    assert main(["score", "--generations", str(out / "generations.jsonl"), "--scorer-model", "tiny-random",
                 "--builtin-corpora", "--max-passages", "20", "--out", str(tmp_path)]) == 0
    assert "wrote" in capsys.readouterr().out
    scored = json.loads((tmp_path / "collision.json").read_text())
    original = json.loads((out / "collision.json").read_text())
    jsonschema.validate(scored, schema())
    jsonschema.validate(original, schema())
    assert scored["imported"]["scored_by"] == original["model"]["name"]
    assert scored["imported"]["tokens"] == {"own_token_ids": 44}
    for cell in original["cells"]:
        cell.pop("mix_norm")  # the file does not carry the vectors
    for cell in scored["cells"]:
        cell.pop("mix_norm")
        cell.pop("n_prompts")
    scored["unsteered"].pop("n_prompts")
    # The run scored perplexity from the outputs generation kept below the steering layer; score()
    # reads each completion in one forward: the same numbers to float32 rounding (about 1e-7 relative
    # per completion). Everything else is computed from identical inputs, to float64 rounding.
    for key in ("unsteered", "cells", "dominance", "coherence", "findings"):
        close(original[key], scored[key], key, rel=1e-5)
    for key in ("readout", "style_classifier", "localisation"):
        close(original[key], scored[key], key)
    assert (tmp_path / "report.md").read_text().count("not judged") == 0
    assert (tmp_path / "imported.png").stat().st_size > 5000


POSITIVE = ["What a wonderful, joyful day, full of hope and love.", "Bright smiles and happy friends everywhere.",
            "We won, and it was great and beautiful.", "Such a kind and lovely gift, thank you!"]
NEGATIVE = ["A terrible, hopeless night of grief and fear.", "Cold, cruel and lonely, everything is lost.",
            "The awful news broke them; pain and despair.", "Hate and anger ruined the sad, dark town."]


def synthetic_grid(flip: bool = False) -> list[CompletionRecord]:
    """Four prompts; at α the completion joins the positive and negative sentences in proportion, so
    VADER separates the pure ends clearly and d(α) is finite."""
    records = []
    for p, (good, bad) in enumerate(zip(POSITIVE, NEGATIVE, strict=True)):
        for alpha in (0.0, 0.25, 0.5, 0.75, 1.0):
            parts = [good] * round(4 * alpha) + [bad] * round(4 * (1 - alpha))
            label = 1 - alpha if flip else alpha
            records.append(CompletionRecord(f"prompt {p}", " ".join(parts), label, 0.5))
        records.append(CompletionRecord(f"prompt {p}", "A plain day.", None, 0.0))
    return records


def test_alpha_means_persona_b_flips_alpha_exactly():
    ours = score(synthetic_grid()).to_dict()
    theirs = score(synthetic_grid(flip=True), config=ScoreConfig(alpha_means="persona-b")).to_dict()
    close(ours["dominance"], theirs["dominance"])
    close(ours["cells"], theirs["cells"])
    d = np.array(ours["dominance"]["vader"][0]["d"], dtype=float)
    assert np.isfinite(d).all() and d[0] == 0 and d[-1] == 1
    # read the wrong way round, A and B swap: d(α) becomes 1 − d(1 − α)
    mirrored = np.array(score(synthetic_grid(flip=True)).to_dict()["dominance"]["vader"][0]["d"], dtype=float)
    np.testing.assert_allclose(mirrored, 1 - d[::-1], atol=1e-9)


def test_an_incomplete_grid_gives_every_cell_present_and_says_what_is_missing(run, tmp_path):
    records = [r for r in run[0].generations if r.alpha != 0.0 and not (r.alpha == 0.5 and r.lam == 2.0)]
    long = "again " * 5000
    records += [CompletionRecord("A new prompt never seen.", "", 1.0, 0.5),
                CompletionRecord("A new prompt never seen.", long, 0.25, 0.5)]
    path = save_generations(tmp_path / "wild.jsonl", records)
    result = score(path)
    data = result.to_dict()
    jsonschema.validate(data, schema())
    cells = {(c["lambda"], c["alpha"]) for c in data["cells"]}
    assert cells == {(lam, a) for lam in (0.5, 2.0) for a in (0.25, 0.5, 0.75, 1.0)} - {(2.0, 0.5)}
    assert data["grid"]["alphas"] == [0.25, 0.5, 0.75, 1.0]
    assert all(e["missing"] == "dominance needs both pure ends; α = 0 is absent" for e in data["dominance"]["vader"])
    assert "probe readout needs a scorer model" in data["dominance"]["probe_valence"]["missing"]
    assert "scorer model" in data["coherence"]["missing"] and "α = 0 absent" in data["coherence"]["missing"]
    assert {f["key"] for f in data["findings"] if "missing" in f} == {"dominance", "coherence", "shared_layer"}
    assert data["imported"]["empty_completions"] == 1
    excluded = {(e["line"], e["metric"]) for e in data["imported"]["excluded"]}
    empty_line = len(records)  # the empty completion is the second-to-last line, lines count from 1
    assert (empty_line - 1, "repetition") in excluded and (empty_line - 1, "distinct_2") in excluded
    assert not any(metric == "perplexity" for _, metric in excluded)  # not scored at all without a model
    assert all(e["line"] >= 1 and e["reason"] for e in data["imported"]["excluded"])
    assert data["imported"]["completeness"]["prompts"] == 5
    one = next(c for c in data["cells"] if (c["lambda"], c["alpha"]) == (0.5, 0.25))
    assert one["n_prompts"] == 5 and one["metrics"]["vader"]["n"] == 5
    assert one["metrics"]["perplexity"]["n"] == 0  # no scorer: an empty interval, not a made-up number
    from conftest import rendered

    page, _ = rendered(result)
    assert "not judged" in page
    cells_frame = result.to_frame()
    assert set(cells_frame["lambda"]) == {0.0, 0.5, 2.0} and result.to_frame("dominance").empty
    written = result.save(tmp_path / "out")
    report = written["report"].read_text()
    assert "dominance needs both pure ends; α = 0 is absent" in report and "not judged" in report
    assert "## Left out of an axis" in report


@pytest.mark.parametrize("line, message", [
    ('{"prompt": "p", "completion": "c", "alpha": 1.5, "lambda": 0.3}', r"outside \[0, 1\]"),
    ('{"prompt": "p", "completion": "c", "lambda": 0.3}', "'alpha' is missing"),
    ('{"prompt": "p", "alpha": 0.5, "lambda": 0.3}', "missing field 'completion'"),
    ('{"prompt": "p", "completion": 3, "alpha": 0.5, "lambda": 0.3}', "must be a string"),
    ('{"prompt": "p", "completion": "c", "alpha": "half", "lambda": 0.3}', "finite number"),
    ('{"prompt": "p", "completion": "c", "alpha": 0.5, "lambda": -1}', "outside"),
    ('{"prompt": "p", "completion": "c", "alpha": 0.5, "lambda": 0.3, "sample": -2}', "'sample'"),
    ('{"prompt": "p", "completion": "c", "alpha": 0.5, "lambda": 0.3, "token_ids": [1, "x"]}', "token_ids"),
    ('{"prompt": "q", "completion": "c", "alpha": 0.5, "lambda": 0.3}', "duplicate completion"),
    ('["prompt"]', "expected a JSON object"),
])
def test_malformed_lines_name_the_file_and_line(tmp_path, capsys, line, message):
    path = tmp_path / "bad.jsonl"
    good = '{"prompt": "q", "completion": "c", "alpha": 0.5, "lambda": 0.3}'
    path.write_text(f'{good}\n{{"prompt": "q", "completion": "", "lambda": 0}}\n{line}\n')
    with pytest.raises(DatasetError, match=message) as error:
        load_generations(path)
    assert error.value.line == 3
    assert main(["score", "--generations", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{path}:3" in err and "\n" not in err.strip()


def test_text_only_scores_equal_the_metrics_functions():
    from interp_steer.metrics import repetition_rate, vader_valence

    texts = ["What a bright and hopeful morning!", "The dark closes in, cold and final.", "word word word word"]
    records = [CompletionRecord("p", t, a, 0.5) for t, a in zip(texts, (1.0, 0.0, 0.5), strict=True)]
    data = score(records).to_dict()
    by_alpha = {c["alpha"]: c["metrics"] for c in data["cells"]}
    expected = vader_valence(texts)
    for text, alpha, value in zip(texts, (1.0, 0.0, 0.5), expected, strict=True):
        assert by_alpha[alpha]["vader"]["mean"] == pytest.approx(value)
        assert by_alpha[alpha]["repetition"]["mean"] == pytest.approx(repetition_rate(text))
    assert ist.load_model  # the API stays importable beside the study


def test_each_strength_uses_the_mixes_it_has():
    """One strength with every α, one without its interior mixes and one without α = 1: d(α) where
    it can be computed, on that strength's own α values; the reason, naming the strength, elsewhere."""
    full = synthetic_grid()
    records = [r for r in full]
    records += [CompletionRecord(r.prompt, r.completion, r.alpha, 0.8) for r in full if r.alpha in (0.0, 1.0)]
    records += [CompletionRecord(r.prompt, r.completion, r.alpha, 1.2) for r in full
                if r.alpha is not None and r.alpha < 1]
    data = score(records).to_dict()
    by_lambda = {e["lambda"]: e for e in data["dominance"]["vader"]}
    assert "missing" not in by_lambda[0.5] and by_lambda[0.5]["alphas"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert by_lambda[0.8]["missing"] == "dominance needs a mix between the pure ends; λ = 0.8 has only α = 0 and α = 1"
    assert by_lambda[1.2]["missing"] == "dominance needs both pure ends; α = 1 is absent at λ = 1.2"
    alone = score(full).to_dict()["dominance"]["vader"][0]
    close(alone, by_lambda[0.5])


def test_records_built_in_code_follow_the_files_rules():
    with pytest.raises(ValueError, match="needs alpha"):
        CompletionRecord("p", "c", None, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        CompletionRecord("p", "c", 1.5, 0.5)
    with pytest.raises(ValueError, match="lambda"):
        CompletionRecord("p", "c", 0.5, -1.0)
    assert CompletionRecord("p", "c", 0.5, 0.0).alpha is None  # unsteered: no mix
    twice = [CompletionRecord("p", "c", 0.5, 0.3), CompletionRecord("p", "d", 0.5, 0.3)]
    with pytest.raises(ValueError, match="two completions"):
        score(twice)


def test_the_command_names_its_file_and_a_finding_says_which_mix_it_lacks(tmp_path):
    records = [r for r in synthetic_grid() if r.alpha != 0.5]
    records += [CompletionRecord(r.prompt, r.completion, r.alpha, 0.9) for r in synthetic_grid()
                if r.alpha in (0.0, 0.25, 1.0)]
    path = save_generations(tmp_path / "g.jsonl", records)
    assert main(["score", "--generations", str(path), "--no-figures", "--out", str(tmp_path / "out")]) == 0
    data = json.loads((tmp_path / "out" / "collision.json").read_text())
    assert data["imported"]["source"] == str(path)
    assert "imported.png" not in (tmp_path / "out" / "report.md").read_text()
    result = score(records)
    assert result.grid.alphas == (0.0, 0.25, 0.75, 1.0)


def test_a_degenerate_completion_is_cut_for_the_model_and_the_cut_is_counted(tiny):
    records = synthetic_grid()
    records[0] = CompletionRecord(records[0].prompt, "on and on " * 3000, records[0].alpha, records[0].lam)
    corpora = {name: ist.load_builtin(name)[:20] for name in ("persona_a", "persona_b", "baseline")}
    result = score(records, scorer=tiny, config=ScoreConfig(max_completion_tokens=400, max_passages=20), **corpora)
    data = result.to_dict()
    assert data["imported"]["tokens"]["cut_to_max_completion_tokens"] == 1
    first = np.asarray(result.per_prompt["perplexity"])[0, 0, 0]  # λ 0.5, α 0, prompt 0: the long one
    assert np.isfinite(first) and np.isfinite(np.asarray(result.per_prompt["probe_log_odds"])[0, 0, 0])
    jsonschema.validate(data, schema())


@pytest.mark.parametrize("family", ["smollm2", "llama3", "qwen2", "gemma2", "gemma3", "phi3", "olmo2", "gpt2"])
def test_a_files_generations_are_rebuilt_as_generate_made_them(family):
    """``score`` rebuilds each line's prompt with the scorer's chat template, as ``generate`` formats
    it (a template that writes a BOS, as Llama 3's and Gemma's do, included), and keeps the line's
    own token ids: the rebuilt generations are the originals, so their perplexities are too."""
    from interp_steer.likelihood import completion_perplexity
    from interp_steer.studies.collision.imported import _generations

    model = ist.load_model(f"tiny-random:{family}")
    prompts = ["Tell me about the harbour.", "Hi"]
    made = ist.generate(model, prompts, max_new_tokens=5, min_new_tokens=5, progress=False)
    records = [CompletionRecord(g.prompt, g.text, 0.5, 0.5, 0, model.name, g.token_ids) for g in made]
    rebuilt, counts = _generations(model, records, cap=512)
    assert counts == {"own_token_ids": 2}
    assert [(g.prompt_ids, g.token_ids) for g in rebuilt] == [(g.prompt_ids, g.token_ids) for g in made]
    assert np.array_equal(completion_perplexity(model, rebuilt), completion_perplexity(model, made))


def test_a_runs_generations_load_back_and_a_scored_grid_too(run, tmp_path):
    from test_result_load import assert_round_trip

    from interp_steer.studies._common import NotSavedError
    from interp_steer.studies.collision.result import CollisionResult

    result, out = run

    def key(r):
        return r.prompt, r.alpha, r.lam, r.sample, r.completion, r.token_ids

    assert [key(r) for r in CollisionResult.load(out).generations] == [key(r) for r in result.generations]
    scored = score(out / "generations.jsonl")
    loaded = assert_round_trip(scored, tmp_path / "scored", ("cells", "dominance"), tmp_path / "again")
    assert loaded.grid.n_completions == len(scored.grid.rows) and loaded.grid.cells == scored.grid.cells
    with pytest.raises(NotSavedError, match="rows was not saved"):
        _ = loaded.grid.rows
    with pytest.raises(ValueError, match="a collision run, not completions scored by `interp-steer score`"):
        type(scored).load(out)
    with pytest.raises(ValueError, match="completions scored by `interp-steer score`, not a collision run"):
        CollisionResult.load(tmp_path / "scored")
