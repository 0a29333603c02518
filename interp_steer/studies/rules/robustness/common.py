"""The input check every robustness rule shares: one value per item, as a 1-D array of finite numbers
(NaN for a missing value)."""

from __future__ import annotations

from typing import Any

import numpy as np


def one_d(values: Any, name: str, per: str, hint: str = "") -> np.ndarray:
    """``values`` as a 1-D float array, refusing other shapes and ±inf with a message naming ``name``."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, one value {per}; got shape {arr.shape} (a 2-D array is not "
                         f"flattened: pass the column of the primary coefficient)")
    if np.isinf(arr).any():
        raise ValueError(f"{name} holds infinite values: pass finite numbers (NaN for a missing value, which is left "
                         f"out){hint}")
    return arr
