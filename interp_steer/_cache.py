"""A key/value cache for the generation loop that writes each step in place.

Hugging Face's ``DynamicCache`` grows each layer's keys and values by concatenation, so every
decoding step copies the whole cache of every layer once more: on the default model's collision
grid (46 rows, 40 new tokens) that copying was about a tenth of the decoding time. The layers here
set aside room for the whole generation when they are first written and expose the filled part as
a view, so a step writes only its own position. The values attention reads are the same numbers
(``tests/test_plain.py`` checks the tokens and logits against ``DynamicCache`` on every family).

Anything that replaces a layer's tensors (selecting rows after a shared prefill, cropping) is seen
at the next write, which moves the new tensors into fresh room.
"""

from __future__ import annotations

import functools

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class RoomLayer(DynamicLayer):
    """A :class:`DynamicLayer` with room for ``capacity`` positions, written in place."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self._room: tuple[torch.Tensor, torch.Tensor] | None = None
        self._shown: torch.Tensor | None = None  # the view last handed out, to notice replacements

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        length = self.get_seq_length()
        if length and self.keys.shape[:-2] != key_states.shape[:-2]:
            # What concatenation would refuse; an in-place write would broadcast instead.
            raise ValueError(f"the cache holds {list(self.keys.shape[:-2])} (batch, heads); new states have "
                             f"{list(key_states.shape[:-2])}")
        end = length + key_states.shape[-2]
        if end > self.capacity:
            self.capacity = 2 * end  # past the room set aside, grow geometrically, not step by step
        if self._room is None or self.keys is not self._shown or self._room[0].shape[-2] < end:
            self._room = (self._make_room(self.keys, key_states, length),
                          self._make_room(self.values, value_states, length))
        keys, values = self._room
        keys[..., length:end, :] = key_states
        values[..., length:end, :] = value_states
        self.keys, self.values = keys[..., :end, :], values[..., :end, :]
        self._shown = self.keys
        return self.keys, self.values

    def _make_room(self, old: torch.Tensor, new: torch.Tensor, length: int) -> torch.Tensor:
        room = new.new_empty((*new.shape[:-2], self.capacity, new.shape[-1]))
        if length:
            room[..., :length, :] = old
        return room


def room_cache(capacity: int) -> DynamicCache:
    """An empty cache whose layers (created as the model writes them) hold ``capacity`` positions
    before they need to grow."""
    cache = DynamicCache()
    cache.layer_class_to_replicate = functools.partial(RoomLayer, capacity)
    return cache
