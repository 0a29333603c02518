"""The :class:`Model` object: a TransformerBridge with its tokenizer, layer and hook names, chat
formatting and encoding (:func:`interp_steer.models.load_model` builds one)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from interp_steer._types import HookPoint, PaddingSide
from interp_steer.data import reject_bare_string
from interp_steer.models.spec import DEFAULT_GGUF_FILE, DEFAULT_HUB_ID, DEFAULT_MODEL, TINY_RANDOM

RESID_POINTS: tuple[HookPoint, ...] = ("resid_pre", "resid_mid", "resid_post")
"""Residual-stream hook points, in the order they fire inside a block."""


class ChatText(str):
    """Text rendered by a chat template (what :meth:`Model.format_chat` returns).

    It is a plain ``str`` in every way but one: :meth:`Model.encode` adds no special tokens to it,
    because the template already wrote the ones it wants. The mark survives ``chat_text + more``
    (an answer opening such as ``"("``, a completion); other string operations (f-strings,
    slicing, ``join``) return a plain ``str``, for which the BOS-text rule of :meth:`Model.encode`
    still applies.
    """

    __slots__ = ()

    def __add__(self, other: str) -> str:
        joined = str.__add__(self, other)
        return joined if joined is NotImplemented else ChatText(joined)


# Stands in for the user's prompt when rendering a template to find what it writes after the prompt.
# Private-use characters: no template trims, escapes or recases them.
_PROMPT_SENTINEL = "\ue000interp_steer prompt\ue001"


@dataclass(frozen=True, eq=False)
class Model:
    """A TransformerBridge with its tokenizer and the facts the rest of the toolkit needs.

    Build it with :func:`load_model`. The bridge is used as-is: every intervention in this package
    adds scoped hooks to it and removes exactly those.
    """

    bridge: Any
    tokenizer: Any
    name: str
    source: str

    @property
    def n_layers(self) -> int:
        return int(self.bridge.cfg.n_layers)

    @property
    def d_model(self) -> int:
        return int(self.bridge.cfg.d_model)

    @property
    def hf_model(self) -> torch.nn.Module:
        """The wrapped Hugging Face model (same weights the bridge runs)."""
        return self.bridge.original_model

    @property
    def spec(self) -> str | None:
        """A spec that loads this model again (:func:`load_model`), in :func:`normalise_spec`'s form,
        or None for one built from weights no spec names (what a Ray actor loads: :mod:`interp_steer.units`)."""
        kind, _, target = self.source.partition(":")
        if self.source == f"hub:{DEFAULT_HUB_ID}" or (kind == "gguf" and Path(target).name == DEFAULT_GGUF_FILE):
            return DEFAULT_MODEL
        if kind == "memory":
            return target if target.startswith(TINY_RANDOM) else None
        return target if kind in ("hub", "local", "gguf") else None

    @property
    def device(self) -> torch.device:
        """Where the input embedding is, so where token ids go (the first of :attr:`devices`)."""
        return next(self.hf_model.parameters()).device

    @property
    def devices(self) -> tuple[torch.device, ...]:
        """Every device holding parameters, in the order the forward pass meets them: one, unless the
        model was spread over GPUs (``load_model(..., n_devices=k)``)."""
        return tuple(dict.fromkeys(p.device for p in self.hf_model.parameters()))

    @property
    def dtype(self) -> torch.dtype:
        return next(self.hf_model.parameters()).dtype

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def resolve_layers(self, layers: int | Sequence[int] | str | None = None) -> tuple[int, ...]:
        """Normalise a layer selection to a tuple of distinct layer indices in ``[0, n_layers)``.

        ``None`` or ``"all"`` selects every layer; negative indices count from the end; a string
        such as ``"10,15"`` is accepted for command-line use.
        """
        if layers is None or (isinstance(layers, str) and layers.strip().lower() == "all"):
            return tuple(range(self.n_layers))
        if isinstance(layers, str):
            try:
                layers = [int(part) for part in layers.split(",") if part.strip()]
            except ValueError:
                raise ValueError(
                    f"layers={layers!r}: expected comma-separated integers such as '10,15' or 'all'"
                ) from None
        if isinstance(layers, int):
            layers = [layers]
        resolved: list[int] = []
        for layer in layers:
            if isinstance(layer, bool) or not isinstance(layer, int):
                raise TypeError(f"layers must be integers, got {layer!r} ({type(layer).__name__})")
            index = layer + self.n_layers if layer < 0 else layer
            if not 0 <= index < self.n_layers:
                raise ValueError(
                    f"layer {layer} is out of range: {self.name} has {self.n_layers} layers "
                    f"(valid: 0..{self.n_layers - 1}, or negative from the end)"
                )
            if index in resolved:
                raise ValueError(f"layer {layer} is listed twice in layers={list(layers)!r}")
            resolved.append(index)
        if not resolved:
            raise ValueError("layers is empty: pass at least one layer, or None for all layers")
        return tuple(resolved)

    def hook_name(self, layer: int, point: HookPoint = "resid_post") -> str:
        """The bridge's hook name for ``point`` at ``layer``, e.g. ``blocks.15.hook_resid_post``.

        Raises if the point is unknown or the bridge does not have that hook, so a misspelling
        can never run silently unhooked.
        """
        if point not in RESID_POINTS:
            raise ValueError(f"unknown hook point {point!r}; expected one of {list(RESID_POINTS)}")
        (index,) = self.resolve_layers([layer])
        name = f"blocks.{index}.hook_{point}"
        if name not in self.bridge.hook_dict:
            raise KeyError(f"{self.name} has no hook named {name!r}")
        return name

    def format_chat(self, prompt: str, *, system: str | None = None) -> ChatText:
        """Wrap a user prompt in the model's chat template, ending where the assistant starts.

        The result is a :class:`ChatText`, which :meth:`encode` encodes as Hugging Face's
        ``apply_chat_template(..., tokenize=True)`` does: without adding special tokens.
        """
        if not self.has_chat_template:
            raise ValueError(
                f"{self.name} has no chat template; pass the text as-is (chat=False) instead"
            )
        messages = [] if system is None else [{"role": "system", "content": system}]
        messages.append({"role": "user", "content": prompt})
        return ChatText(
            self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )

    def chat_prompt(self, prompt: str, *, system: str | None = None) -> tuple[ChatText, int]:
        """The prompt in the chat template, and how many of its tokens (as :meth:`encode` gives
        them) run up to the end of the user's prompt; the rest is the template's end of turn and
        assistant header.

        The end is found without searching for the prompt, so templates that trim the message
        (Llama-3's ``| trim``) or write the prompt's text elsewhere are handled: the template is
        rendered once more with a sentinel for the prompt, and what follows the sentinel is what
        follows the prompt. Templates whose tail depends on the message fall back to the last
        occurrence of the prompt (as given, then stripped of surrounding whitespace); a template
        that rewrites the prompt beyond that is an error.
        """
        text = self.format_chat(prompt, system=system)
        end = self._prompt_end(text, prompt, system)
        return text, self._count_tokens_before(text, end)

    def _prompt_end(self, text: str, prompt: str, system: str | None) -> int:
        probe = self.format_chat(_PROMPT_SENTINEL, system=system)
        if probe.count(_PROMPT_SENTINEL) == 1:
            before, after = probe.split(_PROMPT_SENTINEL)
            if text.startswith(before) and text.endswith(after) and len(before) + len(after) <= len(text):
                return len(text) - len(after)
        for needle in (prompt, prompt.strip()):
            if needle and needle in text:
                return text.rindex(needle) + len(needle)
        raise ValueError(
            f"cannot find where the user's prompt ends in {self.name}'s chat template: the template "
            f"changes the prompt's text beyond trimming whitespace (prompt {prompt[:60]!r}, rendered "
            f"{text[-200:]!r}). Format the text yourself and pass chat=False, or fix the template."
        )

    def _count_tokens_before(self, text: str, end: int) -> int:
        """How many tokens of ``encode([text])[0]`` start before character ``end`` of ``text``."""
        special = self._adds_special_tokens(text)
        try:
            offsets = self.tokenizer(str(text), add_special_tokens=special,
                                     return_offsets_mapping=True)["offset_mapping"]
        except NotImplementedError:  # a slow (Python) tokenizer has no offsets: encode the head
            return len(self.encode([text[:end]], add_special_tokens=special)[0])
        # Special tokens the tokenizer adds (a BOS) have the empty span (0, 0): before any end.
        return sum(1 for start, _ in offsets if start < end)

    def _adds_special_tokens(self, text: str) -> bool:
        bos = self.tokenizer.bos_token
        return not (isinstance(text, ChatText) or (bos and text.startswith(bos)))

    def encode(
        self, texts: Sequence[str], *, add_special_tokens: bool | None = None
    ) -> list[list[int]]:
        """Token ids of each text, with exactly the special tokens the model expects.

        The rule (``add_special_tokens=None``): a text gets the tokenizer's own special tokens (its
        BOS, for Llama, Mistral or Gemma tokenizers) unless it is already a rendered prompt, which
        is encoded with none added, as Hugging Face's ``apply_chat_template(..., tokenize=True)``
        encodes its rendering. A text is a rendered prompt when it is a :class:`ChatText` (from
        :meth:`format_chat`, also after ``+`` with more text) or when it begins with the tokenizer's
        BOS text (a corpus templated elsewhere, or text that names its BOS itself). So a template
        that writes the BOS gives exactly one, never two, and plain text gets the tokenizer's BOS.
        ``add_special_tokens=True``/``False`` forces either for every text (``False`` for a
        fragment such as the first token of a continuation).

        No BOS is ever added beyond that (TransformerLens's ``to_tokens`` prepends one by default;
        SmolLM2's tokenizer adds none and its BOS text is ``<|im_start|>``, so its ids are the
        tokenizer's own either way).
        """
        reject_bare_string(texts, "texts")
        texts = list(texts)
        flags = [self._adds_special_tokens(t) if add_special_tokens is None else bool(add_special_tokens)
                 for t in texts]
        out: list[list[int]] = [[] for _ in texts]
        for flag in sorted(set(flags)):
            rows = [i for i, f in enumerate(flags) if f == flag]
            encoded = self.tokenizer([str(texts[i]) for i in rows], add_special_tokens=flag)["input_ids"]
            for i, ids in zip(rows, encoded, strict=True):
                out[i] = list(ids)
        return out

    def pad(
        self, token_ids: Sequence[Sequence[int]], *, padding_side: PaddingSide = "right"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad token-id lists into ``(input_ids, attention_mask)`` tensors on the model's device."""
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        width = max(len(ids) for ids in token_ids)
        ids = torch.full((len(token_ids), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(token_ids), width), dtype=torch.long)
        for row, seq in enumerate(token_ids):
            span = slice(0, len(seq)) if padding_side == "right" else slice(width - len(seq), width)
            ids[row, span] = torch.tensor(seq, dtype=torch.long)
            mask[row, span] = 1
        return ids.to(self.device), mask.to(self.device)

    @property
    def pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary: name, source, sizes and the hook names used for the residual."""
        return {
            "name": self.name,
            "source": self.source,
            "n_layers": self.n_layers,
            "d_model": self.d_model,
            "n_heads": int(self.bridge.cfg.n_heads),
            "vocab_size": int(self.bridge.cfg.d_vocab),
            "device": str(self.device),
            "devices": [str(d) for d in self.devices],
            "dtype": str(self.dtype).replace("torch.", ""),
            "chat_template": self.has_chat_template,
            "hook_points": {p: f"blocks.{{L}}.hook_{p}" for p in RESID_POINTS},
        }


__all__ = ["RESID_POINTS", "ChatText", "Model"]
