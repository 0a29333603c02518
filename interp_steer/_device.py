"""One rule for the tensors this package makes: make them on the device of the tensor they meet.

Masks, offsets, indices and deltas built from Python data (or kept on the CPU, like steering vectors)
are combined with model activations that may live on a GPU; mixing the two fails there and nowhere
else. Every such tensor goes through :func:`on_device_of` instead of an ad hoc ``.to()``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def on_device_of(data: Any, like: Tensor | torch.device, dtype: torch.dtype | None = None) -> Tensor:
    """``data`` (a tensor, list or number) as a tensor on ``like``'s device (a tensor or a device),
    in ``dtype`` when given. A tensor already there, in that dtype, is returned as it is (no copy),
    so this is free on the hot path."""
    device = like.device if isinstance(like, Tensor) else torch.device(like)
    return torch.as_tensor(data, dtype=dtype, device=device)
