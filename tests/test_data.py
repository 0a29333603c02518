"""Every loader error path names the file and line; built-in data is complete and loads."""

from __future__ import annotations

import json

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


def test_dataset_hash_identifies_content():
    a = [ist.ContrastPair("x", "y")]
    assert ist.dataset_hash(a) == ist.dataset_hash([ist.ContrastPair("x", "y")])
    assert ist.dataset_hash(a) != ist.dataset_hash([ist.ContrastPair("y", "x")])
    assert ist.dataset_hash(["a", "b"]) != ist.dataset_hash(["b", "a"])
