"""The steering's signed effect on the next token, for any candidate prompt: the adversarial objective.

A candidate is the user's prompt as token ids (``content``). The model reads
``prefix + content + tail``, where ``prefix`` and ``tail`` are the chat template around a user turn
(for A/B questions the tail ends with the answer's opening ``(``), and the steering runs from the
content's last token on, as in generation. One batched forward scores many candidates: each
candidate is two rows of the same batch, unsteered and steered, and its effect is

- **A/B** (``kind="ab"``): ``sign(c) · (P_steered − P_unsteered)`` of the behaviour-matching letter,
  normalised over the two letters (CAA's readout, as :func:`~interp_steer.ab_eval` reads it);
- **open-ended** (``kind="tokens"``): the change under steering of ``log P(promoted) −
  log P(suppressed)`` for the first response token, ``P`` of a set being its total probability. The
  promoted and suppressed tokens are those whose probability this very steering raises and lowers
  most, on average, on the in-distribution prompts (:func:`indicative_tokens`; by probability, not
  log-probability, so that tokens the model would never say do not count). So the readout is the
  steering's own next-token behaviour in distribution, positive there by construction; a reversal
  is a prompt on which the steering moves the next token the other way. Cheap (one forward per
  row), deterministic and differentiable, which a scorer on generated text is not; the reversals it
  finds are then checked by generation and the study's scorer. (The concept's own vocabulary was
  tried first: log-odds words of the training texts. On the default model's topic-matched persona
  corpora the single-token words that separate them are topic leftovers, not tone, and the readout
  moved against the steering on most in-distribution prompts: not a behaviour to reverse.)

So an effect below 0 is the steering working against its coefficient. :meth:`SteeredReadout.token_gradients`
differentiates it with respect to a one-hot encoding of chosen content tokens through both rows
(GCG's linearisation); model parameters get no gradient (``torch.autograd.grad`` on the one-hot
only). ``to_dict``/``from_dict`` store everything a replay needs next to the vector file.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from interp_steer.data import reject_bare_strings
from interp_steer.directions import SteeringVector
from interp_steer.models import Model
from interp_steer.steering import RowDeltas, steer

_SENTINEL = "\u2063robustness-prompt\u2063"


def template_ids(model: Model, *, answer_prefix: str = "") -> tuple[list[int], list[int]]:
    """Token ids before and after a user's prompt in the model's chat template (without one: the
    tokenizer's own special tokens, then nothing), with ``answer_prefix`` opening the answer."""
    if not model.has_chat_template:
        before = model.encode([""], add_special_tokens=True)[0]
        after = model.encode([answer_prefix], add_special_tokens=False)[0] if answer_prefix else []
        return before, after
    text = str(model.format_chat(_SENTINEL))
    if text.count(_SENTINEL) != 1:
        raise ValueError(f"{model.name}'s chat template does not write the user's prompt verbatim once; the "
                         "adversarial readout cannot place edited prompts in it")
    head, tail = text.split(_SENTINEL)
    return (model.encode([head], add_special_tokens=False)[0],
            model.encode([tail + answer_prefix], add_special_tokens=False)[0])


def content_ids(model: Model, prompts: Sequence[str]) -> list[list[int]]:
    """The prompts as content token ids (no special tokens: the template's prefix carries them)."""
    reject_bare_strings(prompts=prompts)
    return model.encode(list(prompts), add_special_tokens=False)


@dataclass(frozen=True, eq=False)
class SteeredReadout:
    """Signed next-token effect of ``coefficient · vector`` on candidate prompts (see the module docstring).

    ``letters`` (A/B): the matching and not-matching letter ids; ``positive``/``negative``
    (open-ended): the promoted and suppressed token ids. Calling it with a list of content-id lists returns
    one effect each.
    """

    model: Model
    vector: SteeringVector
    coefficient: float
    kind: str
    prefix: tuple[int, ...]
    tail: tuple[int, ...]
    letters: tuple[int, int] | None = None
    positive: tuple[int, ...] = ()
    negative: tuple[int, ...] = ()
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.kind not in ("ab", "tokens"):
            raise ValueError(f"kind must be 'ab' or 'tokens', got {self.kind!r}")
        if self.kind == "ab" and (self.letters is None or len(self.letters) != 2):
            raise ValueError("an A/B readout needs letters=(matching id, not-matching id)")
        if self.kind == "tokens" and (not self.positive or not self.negative):
            raise ValueError("an open-ended readout needs non-empty promoted (positive) and suppressed (negative) token ids")
        if len(self.vector.layers) != 1:
            raise ValueError(f"the readout steers one layer; the vector has {list(self.vector.layers)}")
        if self.coefficient == 0:
            raise ValueError("coefficient 0 steers nothing: every effect would be 0")

    # ------------------------------------------------------------------ scoring

    def full_ids(self, content: Sequence[int]) -> list[int]:
        return [*self.prefix, *content, *self.tail]

    def _rows(self, candidates: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int], RowDeltas]:
        """Two rows per candidate, unsteered then steered, in one left-padded batch."""
        rows = [self.full_ids(c) for c in candidates for _ in range(2)]
        ids, mask = self.model.pad(rows, padding_side="left")
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        ends = [len(self.prefix) + len(c) for c in candidates for _ in range(2)]
        deltas = RowDeltas.from_rows([[(self.vector, c)] for _ in candidates for c in (0.0, self.coefficient)])
        return ids, mask, positions, ends, deltas

    def _forward(self, ids: torch.Tensor | None, embeds: torch.Tensor | None, mask: torch.Tensor,
                 positions: torch.Tensor, ends: list[int], deltas: RowDeltas) -> torch.Tensor:
        with steer(self.model, deltas, positions="after_prompt", prompt_end=ends):
            return self.model.hf_model(input_ids=ids, inputs_embeds=embeds, attention_mask=mask,
                                       position_ids=positions, logits_to_keep=1).logits[:, -1].float()

    def _effect(self, logits: torch.Tensor) -> torch.Tensor:
        """Effects from the last-position logits of (unsteered, steered) row pairs."""
        if self.kind == "ab":
            p = torch.softmax(logits[:, list(self.letters)], dim=-1)[:, 0].reshape(-1, 2)
            return float(np.sign(self.coefficient)) * (p[:, 1] - p[:, 0])
        # The promoted tokens are those this very coefficient raises (either sign): no sign flip.
        logp = torch.log_softmax(logits, dim=-1)
        readout = (torch.logsumexp(logp[:, list(self.positive)], -1)
                   - torch.logsumexp(logp[:, list(self.negative)], -1)).reshape(-1, 2)
        return readout[:, 1] - readout[:, 0]

    @torch.inference_mode()
    def __call__(self, candidates: Sequence[Sequence[int]]) -> np.ndarray:
        """One effect per candidate (content token ids); empty candidates are NaN (never chosen).

        Rows share what they can (:meth:`_packed_forward`): the template's prefix is computed once
        per readout, the candidates' heads (content up to its last token, which no steering reaches)
        once per distinct start, as a trie, and only the last content token and the template's tail
        run twice, unsteered and steered. The same numbers as :meth:`score_unshared` up to float
        rounding. Models whose attention cannot take a custom mask, or whose sliding window is
        shorter than a candidate's row, are scored unshared."""
        return self._score(candidates, share=self._can_pack(candidates))

    @torch.inference_mode()
    def score_unshared(self, candidates: Sequence[Sequence[int]]) -> np.ndarray:
        """:meth:`__call__` with every row run in full (the reference the shared path must match)."""
        return self._score(candidates, share=False)

    def _can_pack(self, candidates: Sequence[Sequence[int]]) -> bool:
        config = self.model.hf_model.config
        if getattr(config, "_attn_implementation", None) not in ("sdpa", "eager"):
            return False  # flash and flex kernels take no arbitrary mask
        if any(kind not in ("full_attention", "sliding_attention") for kind in getattr(config, "layer_types", None) or ()):
            return False  # recurrent or linear-attention layers ignore the mask: rows would mix
        window = getattr(config, "sliding_window", None)
        if window and getattr(config, "use_sliding_window", True):
            # Each row must fit in the window, and so must the packed sequence (in case a version
            # of transformers applies the window on top of a custom mask, in packed positions).
            needs = [len(c) + 2 * len(self.tail) + 1 for c in candidates] or [0]
            return len(self.prefix) + min(sum(needs), self.MAX_PACKED_TOKENS + max(needs)) <= window
        return True

    def _score(self, candidates: Sequence[Sequence[int]], *, share: bool) -> np.ndarray:
        out = np.full(len(candidates), np.nan)
        valid = [i for i, c in enumerate(candidates) if len(c) > 0]
        per_batch = max(1, self.batch_size // 2)
        for start in range(0, len(valid), per_batch):
            for chunk in self._packs(candidates, valid[start : start + per_batch]) if share else [valid[start : start + per_batch]]:
                chosen = [candidates[i] for i in chunk]
                if share:
                    logits = self._packed_forward(chosen)
                else:
                    ids, mask, positions, ends, deltas = self._rows(chosen)
                    logits = self._forward(ids, None, mask, positions, ends, deltas)
                out[chunk] = self._effect(logits).cpu().numpy()
        return out

    MAX_PACKED_TOKENS = 2048
    """Tokens in one packed sequence at most: its attention is quadratic in them, where padded rows
    grow linearly, so a large batch is packed in several sequences."""

    def _packs(self, candidates: Sequence[Sequence[int]], chunk: list[int]) -> list[list[int]]:
        """``chunk`` split so that no packed sequence (heads counted in full, as if none were shared,
        plus two tails each) exceeds :attr:`MAX_PACKED_TOKENS`."""
        packs: list[list[int]] = [[]]
        used = 0
        for i in chunk:
            need = len(candidates[i]) + 2 * len(self.tail) + 1
            if packs[-1] and used + need > self.MAX_PACKED_TOKENS:
                packs.append([])
                used = 0
            packs[-1].append(i)
            used += need
        return packs

    @functools.cached_property
    def _prefix_cache(self) -> Any:
        """The template prefix's KV cache, computed once per readout (never steered: steering starts
        at the prompt's last token). Copied before every use, since a forward extends it in place."""
        if not self.prefix:
            return None
        with torch.inference_mode():
            ids = torch.tensor([list(self.prefix)], device=self.model.device)
            return self.model.hf_model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values

    def _packed_forward(self, candidates: Sequence[Sequence[int]]) -> torch.Tensor:
        """Last-position logits of (unsteered, steered) row pairs from one forward of one packed sequence.

        After the cached prefix, the sequence holds the trie of the candidates' heads (one token per
        distinct start: a search's candidates are edits of a few seeds, so most of their heads are
        shared), then each candidate's last content token and the template's tail twice. A 4-D mask
        lets every token see the prefix, its own ancestors in the trie and its own row's earlier
        tokens, and positions count depth in the row, so each row computes what it would alone."""
        p = len(self.prefix)
        parent: list[int] = []
        tokens: list[int] = []
        depth: list[int] = []
        nodes: dict[tuple[int, int], int] = {}
        leaves = []
        for content in candidates:
            node = -1
            for token in content[:-1]:
                if (node, token) not in nodes:
                    nodes[node, token] = len(tokens)
                    parent.append(node)
                    tokens.append(token)
                    depth.append(depth[node] + 1 if node >= 0 else 0)
                node = nodes[node, token]
            leaves.append(node)
        n_nodes, width = len(tokens), 1 + len(self.tail)
        total = n_nodes + 2 * len(candidates) * width
        sees = np.zeros((total, total), dtype=bool)
        for j, up in enumerate(parent):  # parents come before their children
            if up >= 0:
                sees[j, :n_nodes] = sees[up, :n_nodes]
            sees[j, j] = True
        ids, positions, steered, last = tokens, [p + d for d in depth], [False] * n_nodes, []
        causal = np.tril(np.ones((width, width), dtype=bool))
        for content, leaf in zip(candidates, leaves, strict=True):
            for is_steered in (False, True):
                row = len(ids)
                if leaf >= 0:
                    sees[row : row + width, :n_nodes] = sees[leaf, :n_nodes]
                sees[row : row + width, row : row + width] = causal
                ids = [*ids, content[-1], *self.tail]
                positions += range(p + len(content) - 1, p + len(content) - 1 + width)
                steered += [is_steered] * width
                last.append(row + width - 1)
        device, dtype = self.model.device, self.model.hf_model.dtype
        mask = torch.zeros(1, 1, total, p + total, dtype=dtype, device=device)
        mask[0, 0, :, p:].masked_fill_(torch.from_numpy(~sees).to(device), torch.finfo(dtype).min)
        where = torch.tensor([[False] * p + steered], device=device)  # steer the tails of steered rows only
        cache = copy.deepcopy(self._prefix_cache)
        with steer(self.model, self.vector, self.coefficient, positions=where):
            out = self.model.hf_model(input_ids=torch.tensor([ids], device=device), attention_mask=mask,
                                      position_ids=torch.tensor([positions], device=device), past_key_values=cache,
                                      use_cache=cache is not None, logits_to_keep=torch.tensor(last, device=device))
        logits = out.logits[0]
        if logits.shape[0] != len(last):  # a transformers that ignores an index tensor keeps every position
            logits = logits[torch.tensor(last, device=logits.device)]
        return logits.float()

    def token_gradients(self, ids: Sequence[int], positions: Sequence[int]) -> np.ndarray:
        """``d effect / d one-hot(content[p])`` for each ``p`` in ``positions``, ``[len(positions), vocab]``:
        the first-order change of the effect when the token at ``p`` is swapped (GCG)."""
        content = list(ids)
        if not positions or min(positions) < 0 or max(positions) >= len(content):
            raise ValueError(f"positions {list(positions)} must index the {len(content)} content tokens")
        embedding = self.model.hf_model.get_input_embeddings().weight.detach()
        full, mask, pos_ids, ends, deltas = self._rows([content])
        columns = [len(self.prefix) + p for p in positions]
        with torch.enable_grad():
            one_hot = torch.zeros(len(positions), embedding.shape[0], device=embedding.device, dtype=embedding.dtype)
            one_hot[torch.arange(len(positions)), torch.tensor([content[p] for p in positions])] = 1.0
            one_hot.requires_grad_(True)
            embeds = embedding[full].clone()
            embeds[:, columns] = (one_hot @ embedding).unsqueeze(0).expand(full.shape[0], -1, -1)
            effect = self._effect(self._forward(None, embeds, mask, pos_ids, ends, deltas))[0]
            (grad,) = torch.autograd.grad(effect, one_hot)
        return grad.float().cpu().numpy()

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "coefficient": self.coefficient, "layer": self.vector.layers[0],
                "prefix_ids": list(self.prefix), "tail_ids": list(self.tail),
                "letters": list(self.letters) if self.letters else None,
                "positive": list(self.positive), "negative": list(self.negative)}

    @classmethod
    def from_dict(cls, model: Model, vector: SteeringVector, data: dict[str, Any], *, batch_size: int = 64) -> SteeredReadout:
        """The readout a study used, from its JSON (``adversarial.readout``) and its vector file."""
        layer = int(data["layer"])
        if layer not in vector.layers:
            raise ValueError(f"the readout steers layer {layer}, which the vector (layers {list(vector.layers)}) lacks")
        letters = tuple(data["letters"]) if data.get("letters") else None
        return cls(model, vector.select([layer]), float(data["coefficient"]), data["kind"], tuple(data["prefix_ids"]),
                   tuple(data["tail_ids"]), letters, tuple(data.get("positive") or ()),
                   tuple(data.get("negative") or ()), batch_size)


@torch.inference_mode()
def indicative_tokens(model: Model, vector: SteeringVector, coefficient: float, prompts: Sequence[str], k: int,
                      *, batch_size: int = 64) -> tuple[list[int], list[int], dict[str, Any]]:
    """The ``k`` tokens whose probability as the first response token ``coefficient · vector`` raises
    most, and the ``k`` it lowers most, averaged over ``prompts`` (special tokens excluded)."""
    reject_bare_strings(prompts=prompts)
    prefix, tail = template_ids(model)
    contents = content_ids(model, prompts)
    rows = [[*prefix, *c, *tail] for c in contents for _ in range(2)]
    ends = [len(prefix) + len(c) for c in contents for _ in range(2)]
    step = max(2, batch_size - batch_size % 2)  # whole (unsteered, steered) pairs per batch
    total = torch.zeros(())
    for start in range(0, len(rows), step):
        part = slice(start, min(start + step, len(rows)))
        ids, mask = model.pad(rows[part], padding_side="left")
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        n = (part.stop - part.start) // 2
        deltas = RowDeltas.from_rows([[(vector, c)] for _ in range(n) for c in (0.0, coefficient)])
        with steer(model, deltas, positions="after_prompt", prompt_end=ends[part]):
            logits = model.hf_model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                    logits_to_keep=1).logits[:, -1].float()
        p = torch.softmax(logits, dim=-1).reshape(n, 2, -1)
        total = total + (p[:, 1] - p[:, 0]).sum(0).cpu()
    mean = total / len(contents)
    mean[list(model.tokenizer.all_special_ids)] = 0.0
    promoted = torch.topk(mean, k).indices.tolist()
    suppressed = torch.topk(-mean, k).indices.tolist()
    decode = model.tokenizer.convert_ids_to_tokens
    info = {"promoted_tokens": decode(promoted), "suppressed_tokens": decode(suppressed),
            "probability_shift": {"promoted": float(mean[promoted].sum()), "suppressed": float(mean[suppressed].sum())},
            "rule": (f"top {k} tokens by mean change in first-response-token probability under the steering, "
                     f"over {len(contents)} in-distribution prompts at coefficient {coefficient:g}")}
    return promoted, suppressed, info


__all__ = ["SteeredReadout", "content_ids", "indicative_tokens", "template_ids"]
