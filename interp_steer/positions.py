"""Where steering acts: the position rules of :func:`interp_steer.steer`, in each row's own token
coordinates (0 is the row's first real, non-padding token), so that a prompt is steered at the same
tokens alone or batched, padded on either side, and under a KV cache. The rules themselves are
listed in :mod:`interp_steer.steering`; here they are checked when a steering is specified
(:func:`check_positions`) and turned into the ``[batch, seq]`` mask of one forward
(:func:`position_mask`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from interp_steer._device import on_device_of
from interp_steer._types import Positions


def check_positions(positions: object) -> None:
    """Refuse, when the steering is specified, a position rule that has no meaning in row coordinates."""
    if isinstance(positions, str):
        if positions not in ("all", "after_prompt"):
            raise ValueError(f"positions={positions!r}: expected 'all', 'after_prompt', an int, a slice or a boolean mask")
        return
    if isinstance(positions, bool):
        raise TypeError("positions must be 'all', 'after_prompt', an int, a slice or a boolean mask, not a bool")
    if isinstance(positions, int):
        if positions < 0:
            raise ValueError(
                f"positions={positions}: negative positions count from the end, which is unknown while "
                "generating (every step adds a token); give a row index >= 0 (0 = the row's first real "
                "token), positions='after_prompt', or a boolean mask"
            )
        return
    if isinstance(positions, slice):
        bounds = {"start": positions.start, "stop": positions.stop}
        for name, value in bounds.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(
                    f"positions={positions!r}: slice {name} must be an int >= 0 or None (row coordinates, "
                    "0 = the row's first real token; negative ones count from an end that is unknown "
                    "while generating)"
                )
        if positions.step is not None and (not isinstance(positions.step, int) or positions.step < 1):
            raise ValueError(f"positions={positions!r}: slice step must be a positive int")
        return
    if isinstance(positions, Tensor) and positions.dtype == torch.bool:
        if positions.ndim not in (1, 2):
            raise ValueError(f"a boolean position mask must be [length] or [batch, length], got {list(positions.shape)}")
        return
    raise TypeError(f"positions={positions!r}: expected 'all', 'after_prompt', an int, a slice or a boolean mask")


def position_mask(positions: Positions, offset: int | Tensor, starts: Tensor | None, prompt_end: Tensor | None,
                  batch: int, seq: int, device: torch.device) -> Tensor | None:
    """Which of this call's positions to steer, ``[batch, seq]`` bool, or None for all of them.

    A position's row coordinate is its absolute position (``offset + j``) minus its row's first real
    token; padding before that is negative and never matches a rule. ``offset`` is the absolute
    position of the call's first token (an int, or a 1-element tensor), ``starts`` each row's first
    real token in those coordinates (``[batch]``, None without a padding mask), ``prompt_end`` each
    row's prompt length (for ``"after_prompt"``)."""
    if isinstance(positions, str) and positions == "all":
        return None
    if not isinstance(offset, int):
        offset = on_device_of(offset, device)
    row = torch.arange(seq, device=device)[None, :] + offset  # [1, seq], absolute
    if starts is not None:
        if starts.shape[0] != batch:
            raise ValueError(f"the attention mask has {starts.shape[0]} rows but the batch has {batch}")
        row = row - on_device_of(starts, device)[:, None]  # [batch, seq]
    if isinstance(positions, str):  # "after_prompt": from the prompt's last token on
        prompt_end = on_device_of(prompt_end, device)
        if prompt_end.shape[0] != batch:
            raise ValueError(f"prompt_end has {prompt_end.shape[0]} rows but the batch has {batch}")
        wanted = row >= prompt_end[:, None] - 1
    elif isinstance(positions, int):
        wanted = row == positions
    elif isinstance(positions, slice):
        start, step = positions.start or 0, positions.step or 1
        wanted = (row >= start) & ((row - start) % step == 0)
        if positions.stop is not None:
            wanted &= row < positions.stop
    else:  # a boolean mask over row positions, [length] or [batch, length]
        mask = on_device_of(positions, device)
        length = mask.shape[-1]
        index = row.clamp(0, length - 1)
        if mask.ndim == 1:
            picked = mask[index]
        else:
            if mask.shape[0] != batch:
                raise ValueError(f"the position mask has {mask.shape[0]} rows but the batch has {batch}")
            picked = mask.gather(1, index.expand(batch, seq))
        wanted = picked & (row >= 0) & (row < length)
    return wanted.expand(batch, seq)
