"""Resuming a forward pass after a block.

Interventions at one layer leave every earlier layer as it was: a steered forward computes blocks
0..L exactly as the unsteered forward of the same batch did. ``block_output`` records block L's
output in one forward; inside ``resumed`` later forwards of the same batch skip blocks 0..L and
take that output instead, so hooks at block L's output (a steering vector, a reader) and every
later block run as they would have. Blocks L+1.. then receive the very same tensor, so the outputs
are the full forward's bit for bit (tests/test_plain.py); the saving is the L+1 skipped blocks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from interp_steer._plain.routes import hooked_routes, plain_view
from interp_steer._plain.view import PlainView, Route


def _plain_blocks(model, view: PlainView) -> list[torch.nn.Module] | None:
    blocks = getattr(model.bridge, "blocks", None)
    if blocks is None or any(id(b) not in view.blocks for b in blocks):
        return None
    return [view.blocks[id(b)] for b in blocks]


@contextlib.contextmanager
def block_output(model, layer: int) -> Iterator[list[torch.Tensor]]:
    """Record block ``layer``'s output (before any hook at its output changes it) in each forward on
    the plain view inside the block; the yielded list receives one tensor per such forward (none
    where the forwards ran on the bridge)."""
    view = plain_view(model)
    blocks = None if view is None else _plain_blocks(model, view)
    outputs: list[torch.Tensor] = []
    if blocks is None:
        yield outputs
        return

    def record(_module, _args, output):
        # A copy: a later hook may change the block's output in place.
        outputs.append((output[0] if isinstance(output, tuple) else output).detach().clone())

    # Registered before forward_module routes any hook point to this module, so it runs first.
    handle = blocks[layer].register_forward_hook(record)
    try:
        yield outputs
    finally:
        handle.remove()


def _skip(*args, **kwargs):
    return args[0] if args else kwargs["hidden_states"]


@contextlib.contextmanager
def resumed(model, layer: int, output: torch.Tensor | None) -> Iterator[bool]:
    """Inside the block, forwards on the plain view skip blocks ``0..layer`` and take ``output`` as
    block ``layer``'s output (recorded by :func:`block_output` on the same batch); hooks from that
    output on run as usual. Yields whether it is in effect: not without an ``output`` or a plain
    view, nor where a hook point that a skipped part would run has hooks (the embedding, anything in
    blocks ``0..layer`` but block ``layer``'s output), since those would not fire. The decision is
    taken on entry, with the hooks in place then: a reader added inside must read at block ``layer``'s
    output or later. Where it is not in effect, forwards run whole, with the same results."""
    view = plain_view(model) if output is not None else None
    blocks = None if view is None else _plain_blocks(model, view)
    hooked = None if blocks is None else hooked_routes(model, view)[0]
    if hooked is None or not _can_skip(view, blocks, layer, hooked):
        yield False
        return
    if any("forward" in block.__dict__ for block in blocks):
        raise RuntimeError("resumed() is already in effect on this model; it does not nest")

    def taken(*args, **kwargs):
        hidden = _skip(*args, **kwargs)
        if hidden.shape != output.shape:
            raise ValueError(f"resuming after block {layer} with an output of shape {list(output.shape)} in a "
                             f"forward whose hidden states are {list(hidden.shape)}: record it on the same batch")
        return output.clone()  # the same record serves every forward; a hook may change its copy in place

    try:
        for block in blocks[:layer]:
            block.forward = _skip
        blocks[layer].forward = taken
        yield True
    finally:
        for block in blocks[: layer + 1]:
            block.__dict__.pop("forward", None)


def _can_skip(view: PlainView, blocks: list[torch.nn.Module], layer: int, hooked: list[Route]) -> bool:
    """Whether no hooked hook point sits where skipping blocks ``0..layer`` would stop it from firing
    or throw its change away: the input embedding, or any module inside those blocks other than
    block ``layer``'s own output."""
    skipped = {id(module) for block in blocks[: layer + 1] for module in block.modules()}
    embedding = view.root.get_input_embeddings()
    for _point, module, kind in hooked:
        if module is blocks[layer] and kind == "out":
            continue
        if id(module) in skipped or module is embedding:
            return False
    return True
