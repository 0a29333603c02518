"""The two sides of a contrast as texts: contrast pairs or two lists of texts in, the texts to collect
activations from out (with the data's hash and whether row ``i`` of both sides is one pair); CAA's
contrast for A/B questions; and how a read position is recorded in a vector's or field's metadata.
:func:`interp_steer.build_vector` and :func:`interp_steer.fit_field` both start here.
"""

from __future__ import annotations

from collections.abc import Sequence

from interp_steer._types import ReadPosition
from interp_steer.data import ABQuestion, ContrastPair, dataset_hash, reject_bare_string
from interp_steer.models import Model


def contrast_texts(
    model: Model,
    positive: Sequence[str] | Sequence[ContrastPair],
    negative: Sequence[str] | None = None,
    *,
    chat: bool = False,
) -> tuple[list[str], list[str], str, bool]:
    """The two sides of a contrast as texts, ready to collect: ``(positive, negative, hash, paired)``.

    Contrast pairs as ``positive`` (no ``negative``) or two lists of texts, as :func:`build_vector`
    and :func:`interp_steer.fields.fit_field` take them. The hash identifies the data as given
    (before any chat template); ``paired`` says row ``i`` of both sides came from one pair.
    """
    if negative is None:
        pairs = list(positive)
        if not pairs or not all(isinstance(p, ContrastPair) for p in pairs):
            raise TypeError("pass ContrastPair items as `positive`, or two lists of texts")
        pos_texts, neg_texts = [p.positive for p in pairs], [p.negative for p in pairs]
        digest = dataset_hash(pairs)
    else:
        pos_texts, neg_texts = list(positive), list(negative)
        digest = dataset_hash([*pos_texts, "\x00", *neg_texts])
    if chat:
        pos_texts = [model.format_chat(t) for t in pos_texts]
        neg_texts = [model.format_chat(t) for t in neg_texts]
    return pos_texts, neg_texts, digest, negative is None


def position_label(position: ReadPosition, chat: bool) -> str:
    """How a read position is recorded in metadata (``"last (chat)"`` for chat-wrapped texts)."""
    return str(position) + (" (chat)" if chat else "")


def ab_contrast_pairs(model: Model, questions: Sequence[ABQuestion]) -> list[ContrastPair]:
    """CAA's contrast for A/B questions: the question as a chat user turn, the assistant's answer
    opened with ``(`` and the behaviour-matching (positive) or not-matching (negative) letter; read
    the activations at that last token (``position="last"``).

    Models without a chat template get a plain ``Question: ...\nAnswer: (X`` layout.
    """
    reject_bare_string(questions, "questions")
    def answer(question: ABQuestion, letter: str) -> str:
        if model.has_chat_template:
            return model.format_chat(question.question) + f"({letter}"  # stays a ChatText
        return f"Question: {question.question}\nAnswer: ({letter}"

    return [ContrastPair(answer(q, q.matching_letter), answer(q, q.not_matching_letter)) for q in questions]
