"""Every loader error path names the file and line; built-in data is complete and loads."""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter

import pytest

import interp_steer as ist
from interp_steer.data import DatasetError


def write(tmp_path, name, content: str | bytes):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def jsonl(*records) -> str:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n"


GOOD_Q = {
    "question": "Pick one.\n\nChoices:\n(A) yes\n(B) no",
    "answer_matching_behavior": "(A)",
    "answer_not_matching_behavior": "(B)",
}


def test_pairs_load_and_skip_blank_lines(tmp_path):
    path = write(tmp_path, "p.jsonl", jsonl({"positive": "I help.", "negative": "I harm."}, "", {"positive": "a", "negative": "b", "extra": 1}))
    pairs = ist.load_pairs(path)
    assert pairs == [ist.ContrastPair("I help.", "I harm."), ist.ContrastPair("a", "b")]


@pytest.mark.parametrize(
    ("content", "line", "match"),
    [
        ("", None, "empty"),
        ("\n\n  \n", None, "empty"),
        (jsonl({"positive": "a", "negative": "b"}, "{not json"), 2, "invalid JSON"),
        (jsonl({"positive": "a"}), 1, "missing field 'negative'"),
        (jsonl({"positive": "a", "negative": 3}), 1, "must be a string"),
        (jsonl({"positive": "a", "negative": "  "}), 1, "is empty"),
        (jsonl({"positive": "same", "negative": "same"}), 1, "identical"),
        (jsonl(["a", "b"]), 1, "expected a JSON object"),
        (jsonl({"positive": "a", "negative": "b"}, {"positive": "c", "negative": "d"}, {"positive": "a", "negative": "b"}), 3, "line 3 repeats line 1"),
    ],
)
def test_pair_errors_name_file_and_line(tmp_path, content, line, match):
    path = write(tmp_path, "pairs.jsonl", content)
    with pytest.raises(DatasetError, match=match) as info:
        ist.load_pairs(path)
    assert info.value.line == line
    assert str(path) in str(info.value) and "Fix:" in str(info.value)


def test_non_utf8_names_the_line(tmp_path):
    path = write(tmp_path, "c.txt", b"fine line\nbad \xff\xfe line\n")
    with pytest.raises(DatasetError, match="not valid UTF-8") as info:
        ist.load_corpus(path)
    assert info.value.line == 2


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        ist.load_corpus(tmp_path / "nope.jsonl")
    with pytest.raises(DatasetError, match="directory"):
        ist.load_corpus(tmp_path)


def test_duplicates_can_be_allowed_explicitly(tmp_path):
    path = write(tmp_path, "c.txt", "one\ntwo\none\n")
    with pytest.raises(DatasetError, match="line 3 repeats line 1"):
        ist.load_corpus(path)
    assert ist.load_corpus(path, allow_duplicates=True) == ["one", "two", "one"]


def test_corpus_formats(tmp_path):
    plain = write(tmp_path, "c.txt", "\ufefffirst passage\r\nsecond passage\n\n")
    assert ist.load_corpus(plain) == ["first passage", "second passage"]
    lines = write(tmp_path, "c.jsonl", jsonl({"text": "alpha", "id": 1}, {"text": "beta"}))
    assert ist.load_corpus(lines) == ["alpha", "beta"]
    with pytest.raises(DatasetError, match="missing field 'text'"):
        ist.load_corpus(write(tmp_path, "d.jsonl", jsonl({"txt": "x"})))
    assert ist.load_prompts(plain) == ["first passage", "second passage"]


def test_ab_questions_load(tmp_path):
    path = write(tmp_path, "q.jsonl", jsonl(GOOD_Q, {**GOOD_Q, "question": GOOD_Q["question"] + "?", "answer_matching_behavior": " (B) ", "answer_not_matching_behavior": "(A)"}))
    questions = ist.load_ab_questions(path)
    assert [q.matching_letter for q in questions] == ["A", "B"]
    assert [q.not_matching_letter for q in questions] == ["B", "A"]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"answer_matching_behavior": "A"}, "not a letter in parentheses"),
        ({"answer_matching_behavior": "(C)"}, r"names \(C\) but the question has no such choice"),
        ({"answer_not_matching_behavior": "(A)"}, "both answers are"),
        ({"question": ""}, "is empty"),
    ],
)
def test_ab_question_errors(tmp_path, change, match):
    path = write(tmp_path, "q.jsonl", jsonl(GOOD_Q, {**GOOD_Q, "question": "other (A) (B)", **change}))
    with pytest.raises(DatasetError, match=match) as info:
        ist.load_ab_questions(path)
    assert info.value.line == 2


def test_builtin_datasets_are_complete_and_have_cards():
    sizes = {name: len(ist.load_builtin(name)) for name in ist.builtin_names()}
    assert sizes == {"persona_a": 120, "persona_b": 120, "baseline": 120, "moral_pairs": 120, "prompts": 30, "prompts_ood": 15}
    cards = (ist.builtin_path("persona_a").parent / "CARDS.md").read_text()
    for name in ist.builtin_names():
        assert f"`{ist.builtin_path(name).name}`" in cards
    assert all(isinstance(p, ist.ContrastPair) for p in ist.load_builtin("moral_pairs"))
    # The in-distribution and out-of-distribution prompt sets are disjoint.
    assert not set(ist.load_builtin("prompts")) & set(ist.load_builtin("prompts_ood"))
    with pytest.raises(KeyError, match="available"):
        ist.builtin_path("persona_c")


def test_persona_corpora_are_topic_matched():
    settings = [
        [json.loads(line)["setting"] for line in ist.builtin_path(name).read_text().splitlines()]
        for name in ("persona_a", "persona_b", "baseline")
    ]
    assert settings[0] == settings[1] == settings[2]
    assert len(set(settings[0])) == len(settings[0])


# How closely the built-in baseline must match the persona corpora on surface statistics. A probe
# separates two corpora by whatever differs between them; a baseline that is shorter or opens with
# its own words hands persona-vs-baseline probes a shortcut (the first baseline was 5 words shorter
# and opened with "The"/"A" in 95 % of passages: probes scored >= 0.99 at 27 of 30 layers and
# v_A, v_B shared a large length/opening component). Each bound is checked against both personas.
MEAN_WORDS_TOLERANCE = 2.0  # words: under one passage-level SD (~2.3), where the old gap was 5
SD_WORDS_RATIO = 1.5  # spread of passage lengths within a factor 1.5 either way
TYPES_TOLERANCE = 0.15  # distinct lower-cased words within 15 %: the personas differ by 5 %
# No opening word may be more common in the baseline than in the persona that uses it most by more
# than 10 percentage points (the old baseline: "A" opened 35 % of passages, 2.5 % at most in a persona).
FIRST_WORD_EXCESS = 0.10

_WORD = re.compile(r"[a-z0-9]+(?:['’-][a-z0-9]+)*")


def _texts(name: str) -> list[str]:
    return [json.loads(line)["text"] for line in ist.builtin_path(name).read_text().splitlines()]


def _first_words(texts: list[str]) -> dict[str, float]:
    counts = Counter(text.split()[0].strip(".,;:!?\"'") for text in texts)
    return {word: n / len(texts) for word, n in counts.items()}


def _total_variation(p: dict[str, float], q: dict[str, float]) -> float:
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def test_baseline_matches_the_personas_on_surface_statistics():
    corpora = {name: _texts(name) for name in ("persona_a", "persona_b", "baseline")}
    words = {name: [len(text.split()) for text in texts] for name, texts in corpora.items()}
    types = {name: len({w for text in texts for w in _WORD.findall(text.lower())})
             for name, texts in corpora.items()}
    first = {name: _first_words(texts) for name, texts in corpora.items()}
    base_mean, base_sd = statistics.mean(words["baseline"]), statistics.pstdev(words["baseline"])
    for persona in ("persona_a", "persona_b"):
        mean, sd = statistics.mean(words[persona]), statistics.pstdev(words[persona])
        assert abs(base_mean - mean) <= MEAN_WORDS_TOLERANCE, (
            f"baseline averages {base_mean:.1f} words, {persona} {mean:.1f}")
        assert 1 / SD_WORDS_RATIO <= base_sd / sd <= SD_WORDS_RATIO, (
            f"baseline length SD {base_sd:.2f}, {persona} {sd:.2f}")
        assert abs(types["baseline"] / types[persona] - 1) <= TYPES_TOLERANCE, (
            f"baseline has {types['baseline']} word types, {persona} {types[persona]}")
    for word, share in first["baseline"].items():
        persona_max = max(first["persona_a"].get(word, 0.0), first["persona_b"].get(word, 0.0))
        assert share <= persona_max + FIRST_WORD_EXCESS, (
            f"{share:.0%} of baseline passages open with {word!r}, at most {persona_max:.0%} of a persona's")
    # As a whole, the baseline's openings are no further from the personas' (pooled) than the two
    # personas' openings are from each other.
    pooled = {w: (first["persona_a"].get(w, 0.0) + first["persona_b"].get(w, 0.0)) / 2
              for w in set(first["persona_a"]) | set(first["persona_b"])}
    assert _total_variation(first["baseline"], pooled) <= _total_variation(first["persona_a"], first["persona_b"])
    settings = [[json.loads(line)["setting"] for line in ist.builtin_path(name).read_text().splitlines()]
                for name in corpora]
    assert settings[0] == settings[1] == settings[2]


def test_dataset_hash_identifies_content():
    a = [ist.ContrastPair("x", "y")]
    assert ist.dataset_hash(a) == ist.dataset_hash([ist.ContrastPair("x", "y")])
    assert ist.dataset_hash(a) != ist.dataset_hash([ist.ContrastPair("y", "x")])
    assert ist.dataset_hash(["a", "b"]) != ist.dataset_hash(["b", "a"])
