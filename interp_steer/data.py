"""Record types, validating file loaders and the built-in datasets.

File formats (UTF-8; blank lines are ignored; every error names the file and line and says how to fix it):

- **contrast pairs** — JSONL, one ``{"positive": str, "negative": str}`` per line;
- **corpus** — JSONL with one ``{"text": str}`` per line, or plain text with one passage per line;
- **A/B questions** — JSONL in CAA's format, ``{"question": str, "answer_matching_behavior": "(A)",
  "answer_not_matching_behavior": "(B)"}``; both letters must appear as ``(X)`` in the question;
- **prompt list** — same as a corpus (JSONL ``{"text"}`` or one prompt per line);
- **completions made elsewhere** — JSONL, one ``{"prompt": str, "completion": str, "alpha": number in
  [0, 1], "lambda": number >= 0}`` per line (``lambda`` 0 or absent: unsteered, ``alpha`` then
  optional), with optional ``"sample"`` (int >= 0), ``"model"`` (str) and ``"token_ids"`` (the
  completion's token ids as generated); a completion may be empty.

Extra JSON fields are kept out of the records but do not raise. Exact duplicates raise unless
``allow_duplicates=True``: a repeated passage silently over-weights it in a mean.

Built-in data (``builtin_names()``) ships inside the package, each file with a card in
``interp_steer/datasets/CARDS.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

PathLike = str | os.PathLike

_LETTER = re.compile(r"^\s*\(([A-Z])\)\s*$")


class DatasetError(ValueError):
    """A data file is malformed. ``path`` and ``line`` (1-based, or None) locate the problem."""

    def __init__(self, path: PathLike, line: int | None, problem: str, fix: str):
        self.path, self.line, self.problem, self.fix = str(path), line, problem, fix
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}. Fix: {fix}")


@dataclass(frozen=True)
class ContrastPair:
    """Two texts that differ in one concept: ``positive`` has it, ``negative`` does not."""

    positive: str
    negative: str


@dataclass(frozen=True)
class ABQuestion:
    """A CAA-style two-choice question; answers are letters in parentheses, e.g. ``"(A)"``."""

    question: str
    answer_matching_behavior: str
    answer_not_matching_behavior: str

    @property
    def matching_letter(self) -> str:
        return _LETTER.match(self.answer_matching_behavior).group(1)

    @property
    def not_matching_letter(self) -> str:
        return _LETTER.match(self.answer_not_matching_behavior).group(1)


def reject_bare_string(value: Any, name: str, *, path_ok: bool = False) -> None:
    """Refuse a single string where a list (of texts, prompts, pairs or questions) is expected: a
    string is itself a sequence, so it would run one item per character, silently. Every public
    function that takes such a list calls this first, so the error is the same everywhere. With
    ``path_ok`` a string naming an existing file is accepted (the caller reads it)."""
    if not isinstance(value, (str, bytes)) or (path_ok and os.path.isfile(value)):
        return
    text = value if isinstance(value, str) else value.decode(errors="replace")
    shown = repr(text if len(text) <= 40 else text[:37] + "...")
    if path_ok:
        raise TypeError(f"{name}={shown} is a single string and no existing file: pass a list "
                        f"({name}=[{shown}]) or the path of a file")
    raise TypeError(f"{name} must be a list, not a single string: pass {name}=[{shown}]")


def reject_bare_strings(*, path_ok: bool = False, **values: Any) -> None:
    """:func:`reject_bare_string` on each keyword argument, named by its keyword (a study's entry
    point checks all of its corpora and prompts this way before anything else runs)."""
    for name, value in values.items():
        reject_bare_string(value, name, path_ok=path_ok)


# ----------------------------------------------------------------------------- reading


def _read_lines(path: PathLike) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; decoding errors name the line."""
    file = Path(path)
    if not file.exists():
        raise DatasetError(path, None, "file does not exist", "check the path")
    if file.is_dir():
        raise DatasetError(path, None, "is a directory, not a file", "pass the data file itself")
    raw = file.read_bytes()
    lines: list[tuple[int, str]] = []
    for number, chunk in enumerate(raw.split(b"\n"), start=1):
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DatasetError(
                path, number, f"not valid UTF-8 (byte {error.start} of the line)",
                "re-save the file as UTF-8",
            ) from None
        text = text.rstrip("\r").lstrip("\ufeff") if number == 1 else text.rstrip("\r")
        if text.strip():
            lines.append((number, text))
    if not lines:
        raise DatasetError(path, None, "file is empty (no non-blank lines)", "add at least one record")
    return lines


def _read_jsonl(path: PathLike) -> list[tuple[int, dict[str, Any]]]:
    records = []
    for number, text in _read_lines(path):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise DatasetError(
                path, number, f"invalid JSON ({error.msg} at column {error.colno})",
                "write one JSON object per line (JSONL)",
            ) from None
        except RecursionError:
            raise DatasetError(path, number, "JSON nested too deeply to read",
                               "write one flat JSON object per line (JSONL)") from None
        if not isinstance(value, dict):
            raise DatasetError(
                path, number, f"expected a JSON object, got {type(value).__name__}",
                "write one JSON object per line (JSONL)",
            )
        records.append((number, value))
    return records


def _text_field(path: PathLike, number: int, record: dict[str, Any], field: str) -> str:
    if field not in record:
        raise DatasetError(
            path, number, f"missing field {field!r} (found: {sorted(record)})",
            f"add a {field!r} string to every line",
        )
    value = record[field]
    if not isinstance(value, str):
        raise DatasetError(
            path, number, f"field {field!r} must be a string, got {type(value).__name__}",
            f"make {field!r} a JSON string",
        )
    if not value.strip():
        raise DatasetError(path, number, f"field {field!r} is empty", "remove the line or fill it in")
    return value


def _check_duplicates(path: PathLike, keyed: Sequence[tuple[int, Any]], what: str,
                      fix: str = "remove the repeats, or pass allow_duplicates=True if they are intended") -> None:
    first_seen: dict[Any, int] = {}
    clashes: list[tuple[int, int]] = []
    for number, key in keyed:
        if key in first_seen:
            clashes.append((number, first_seen[key]))
        else:
            first_seen.setdefault(key, number)
    if clashes:
        shown = "; ".join(f"line {n} repeats line {m}" for n, m in clashes[:5])
        if len(clashes) > 5:
            shown += f"; and {len(clashes) - 5} more"
        raise DatasetError(path, clashes[0][0], f"duplicate {what}: {shown}", fix)


def _is_jsonl(path: PathLike) -> bool:
    if Path(path).suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return True
    first = _read_lines(path)[0][1].lstrip()
    return first.startswith("{")


# ----------------------------------------------------------------------------- loaders


def load_pairs(path: PathLike, *, allow_duplicates: bool = False) -> list[ContrastPair]:
    """Contrast pairs from JSONL ``{"positive", "negative"}``."""
    pairs, keyed = [], []
    for number, record in _read_jsonl(path):
        pair = ContrastPair(
            _text_field(path, number, record, "positive"),
            _text_field(path, number, record, "negative"),
        )
        if pair.positive.strip() == pair.negative.strip():
            raise DatasetError(
                path, number, "positive and negative are identical, so the pair contrasts nothing",
                "make the two texts differ in the concept",
            )
        pairs.append(pair)
        keyed.append((number, (pair.positive, pair.negative)))
    if not allow_duplicates:
        _check_duplicates(path, keyed, "pair")
    return pairs


def load_corpus(path: PathLike, *, allow_duplicates: bool = False, field: str = "text") -> list[str]:
    """Passages from JSONL ``{"text"}`` or from plain text, one passage per line."""
    if _is_jsonl(path):
        numbered = [(n, _text_field(path, n, r, field)) for n, r in _read_jsonl(path)]
    else:
        numbered = [(n, line.strip()) for n, line in _read_lines(path)]
    if not allow_duplicates:
        _check_duplicates(path, [(n, t.strip()) for n, t in numbered], "passage")
    return [text for _, text in numbered]


@dataclass(frozen=True)
class CompletionRecord:
    """One completion of a steering grid made elsewhere: ``lam`` 0 is the unsteered model (``alpha``
    None), otherwise the cell ``(alpha, lam)``; ``line`` is where it was read (0 when built in code)."""

    prompt: str
    completion: str
    alpha: float | None
    lam: float
    sample: int = 0
    model: str | None = None
    token_ids: tuple[int, ...] | None = None
    line: int = 0

    def __post_init__(self) -> None:
        # The same rules as the file loader's, for records built in code.
        where = f"line {self.line}: " if self.line else ""
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValueError(f"{where}prompt must be a non-empty string")
        if not isinstance(self.completion, str):
            raise ValueError(f"{where}completion must be a string (it may be empty)")
        if isinstance(self.lam, bool) or not isinstance(self.lam, (int, float)) or not 0 <= self.lam < float("inf"):
            raise ValueError(f"{where}lambda must be a finite number >= 0, got {self.lam!r}")
        if self.lam == 0:
            object.__setattr__(self, "alpha", None)  # unsteered: no mix
        elif self.alpha is None or isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) \
                or not 0 <= self.alpha <= 1:
            raise ValueError(f"{where}a steered completion (lambda {self.lam:g}) needs alpha in [0, 1], got {self.alpha!r}")
        if isinstance(self.sample, bool) or not isinstance(self.sample, int) or self.sample < 0:
            raise ValueError(f"{where}sample must be an integer >= 0, got {self.sample!r}")

    def to_record(self) -> dict[str, Any]:
        """The JSONL line (``load_generations`` reads it back)."""
        out: dict[str, Any] = {"prompt": self.prompt, "completion": self.completion, "alpha": self.alpha,
                               "lambda": self.lam, "sample": self.sample}
        if self.model is not None:
            out["model"] = self.model
        if self.token_ids is not None:
            out["token_ids"] = list(self.token_ids)
        return out


def _number(path: PathLike, number: int, record: dict[str, Any], field: str, *, low: float, high: float | None,
            default: float | None) -> float | None:
    value = record.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value in (float("inf"), float("-inf")):
        raise DatasetError(path, number, f"field {field!r} must be a finite number, got {value!r}",
                           f"write {field!r} as a JSON number")
    if value < low or (high is not None and value > high):
        span = f"[{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        raise DatasetError(path, number, f"field {field!r} is {value}, outside {span}", f"give {field!r} in {span}")
    return float(value)


def _completion_record(path: PathLike, number: int, record: dict[str, Any]) -> CompletionRecord:
    prompt = _text_field(path, number, record, "prompt")
    if "completion" not in record:
        raise DatasetError(path, number, f"missing field 'completion' (found: {sorted(record)})",
                           "add a 'completion' string to every line (it may be empty)")
    completion = record["completion"]
    if not isinstance(completion, str):
        raise DatasetError(path, number, f"field 'completion' must be a string, got {type(completion).__name__}",
                           "make 'completion' a JSON string")
    lam = _number(path, number, record, "lambda", low=0.0, high=None, default=0.0)
    alpha = _number(path, number, record, "alpha", low=0.0, high=1.0, default=None)
    if lam > 0 and alpha is None:
        raise DatasetError(path, number, f"lambda is {lam:g} but 'alpha' is missing",
                           "give the mix's alpha in [0, 1] for every steered completion (lambda 0 is unsteered)")
    sample = record.get("sample", 0)
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 0:
        raise DatasetError(path, number, f"field 'sample' must be an integer >= 0, got {sample!r}",
                           "number a prompt's samples 0, 1, 2, ...")
    model = record.get("model")
    if model is not None and not isinstance(model, str):
        raise DatasetError(path, number, f"field 'model' must be a string, got {type(model).__name__}",
                           "name the model that generated the line as a string, or leave it out")
    token_ids = record.get("token_ids")
    if token_ids is not None:
        if not isinstance(token_ids, list) or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0
                                                      for t in token_ids):
            raise DatasetError(path, number, "field 'token_ids' must be a list of integers >= 0",
                               "give the completion's token ids as generated, or leave the field out")
        token_ids = tuple(token_ids)
    return CompletionRecord(prompt, completion, None if lam == 0 else alpha, lam, sample, model, token_ids, number)


def load_generations(path: PathLike) -> list[CompletionRecord]:
    """Completions made elsewhere (see the module docstring). Two lines for the same prompt, cell
    and sample raise, naming both lines: a repeated completion would count twice."""
    records = [_completion_record(path, number, record) for number, record in _read_jsonl(path)]
    if not records:
        raise DatasetError(path, None, "no completions in the file", "write one JSON object per completion")
    _check_duplicates(path, [(r.line, (r.prompt, r.alpha, r.lam, r.sample)) for r in records],
                      "completion of the same prompt, cell (alpha, lambda) and sample",
                      "give repeated samples of a cell distinct 'sample' numbers, or remove the repeats")
    return records


def save_generations(path: PathLike, records: Sequence[CompletionRecord]) -> Path:
    """Write completions as JSONL that :func:`load_generations` reads back (atomically)."""
    from interp_steer._io import write_text_atomically

    lines = [json.dumps(r.to_record(), ensure_ascii=False) for r in records]
    return write_text_atomically(Path(path), "\n".join(lines) + "\n")


def load_prompts(path: PathLike, *, allow_duplicates: bool = False) -> list[str]:
    """Prompts from JSONL ``{"text"}`` or from plain text, one prompt per line."""
    return load_corpus(path, allow_duplicates=allow_duplicates)


def load_ab_questions(path: PathLike, *, allow_duplicates: bool = False) -> list[ABQuestion]:
    """A/B questions in CAA's JSONL format."""
    questions, keyed = [], []
    for number, record in _read_jsonl(path):
        question = _text_field(path, number, record, "question")
        answers = []
        for field in ("answer_matching_behavior", "answer_not_matching_behavior"):
            answer = _text_field(path, number, record, field)
            match = _LETTER.match(answer)
            if not match:
                raise DatasetError(
                    path, number, f"{field} is {answer!r}, not a letter in parentheses",
                    'write answers as "(A)", "(B)", ...',
                )
            if f"({match.group(1)})" not in question:
                raise DatasetError(
                    path, number, f"{field} names ({match.group(1)}) but the question has no such choice",
                    "make the answer letter match one of the question's choices",
                )
            answers.append(answer.strip())
        if answers[0] == answers[1]:
            raise DatasetError(
                path, number, f"both answers are {answers[0]}",
                "the matching and not-matching answers must be different letters",
            )
        questions.append(ABQuestion(question, answers[0], answers[1]))
        keyed.append((number, question.strip()))
    if not allow_duplicates:
        _check_duplicates(path, keyed, "question")
    return questions


# ----------------------------------------------------------------------------- built-in data

_BUILTIN = {
    "persona_a": ("persona_a.jsonl", "corpus"),
    "persona_b": ("persona_b.jsonl", "corpus"),
    "baseline": ("baseline.jsonl", "corpus"),
    "moral_pairs": ("moral_pairs.jsonl", "pairs"),
    "prompts": ("prompts.jsonl", "corpus"),
    "prompts_ood": ("prompts_ood.jsonl", "corpus"),
}


def builtin_names() -> list[str]:
    """Names accepted by :func:`builtin_path` and :func:`load_builtin`."""
    return sorted(_BUILTIN)


def builtin_path(name: str) -> Path:
    """Path of a built-in data file (inside the installed package)."""
    if name not in _BUILTIN:
        raise KeyError(f"no built-in dataset {name!r}; available: {builtin_names()}")
    return Path(str(resources.files("interp_steer.datasets") / _BUILTIN[name][0]))


def load_builtin(name: str) -> list[str] | list[ContrastPair]:
    """A built-in dataset: a list of passages/prompts, or of :class:`ContrastPair` for pairs."""
    path = builtin_path(name)
    return load_pairs(path) if _BUILTIN[name][1] == "pairs" else load_corpus(path)


def builtin_texts_for_tokenizer() -> Iterator[str]:
    """Every built-in text, for training the tiny test tokenizer."""
    for name in builtin_names():
        for item in load_builtin(name):
            if isinstance(item, ContrastPair):
                yield item.positive
                yield item.negative
            else:
                yield item


def dataset_hash(items: Sequence[str | ContrastPair | ABQuestion]) -> str:
    """SHA-256 of the records' canonical JSON: identifies the exact data a result was built from."""
    canonical = [asdict(item) if not isinstance(item, str) else item for item in items]
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode("utf-8")).hexdigest()


__all__ = [
    "ABQuestion",
    "CompletionRecord",
    "ContrastPair",
    "DatasetError",
    "builtin_names",
    "builtin_path",
    "dataset_hash",
    "load_ab_questions",
    "load_builtin",
    "load_corpus",
    "load_generations",
    "load_pairs",
    "load_prompts",
    "reject_bare_string",
    "reject_bare_strings",
    "save_generations",
]
