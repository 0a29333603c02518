"""Deciding at each forward which module runs it: the model's plain view (checked against the model,
built again after a change) with every hooked, routable hook point run from a PyTorch hook on its
plain module, or the bridged model where that cannot be done (said once, on the log)."""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Iterator

import torch

from interp_steer._plain.check import build
from interp_steer._plain.hooks import hooks_anywhere
from interp_steer._plain.switch import fast_path_enabled
from interp_steer._plain.view import PlainView, Route

_log = logging.getLogger("interp_steer.fast_path")

_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_TOLD: weakref.WeakSet = weakref.WeakSet()  # models whose first fall-back was logged


def _current(model) -> tuple[PlainView | None, str | None]:
    """The model's plain view, checked against the model (and built again where it changed), or None
    and why not (None as the reason where the switch is off)."""
    if not fast_path_enabled():
        return None, None
    entry = _VIEWS.get(model)
    if entry is not None:
        changed = entry.snapshot.change(model)
        if changed is None:
            return entry.view, entry.reason
        _log.debug("%s: %s since its plain view was built; building it again", _name(model), changed)
        del _VIEWS[model]
        why = f"{changed} since the plain view was built"
    else:
        why = "the plain view is not built yet"
    if hooks_anywhere(model):
        # The check against the bridge runs both models bare; decide at a later call without hooks.
        return None, f"{why}, and it is built only while nothing is hooked"
    entry = build(model)
    _VIEWS[model] = entry
    return entry.view, entry.reason


def plain_view(model) -> PlainView | None:
    """The model's plain view (built at the first call made while nothing is hooked, and again after
    any change to the model), or None where the fast path is off or a view cannot stand in for the
    bridge: see :mod:`interp_steer._plain`. While hooks are in place a missing view is not built (the check
    against the bridge must run both models bare): a caller that puts its own hooks in place calls
    this once before them."""
    return _current(model)[0]


def _name(model) -> str:
    return str(getattr(model, "name", None) or type(model).__name__)


def _route(hook_point, plain: torch.nn.Module, kind: str):
    """A PyTorch hook on ``plain`` that runs ``hook_point`` where the bridged component does."""
    if kind == "in":
        def before(_module, args, kwargs):
            # As the block bridge does: the hidden states are the first positional argument or a keyword.
            if args and isinstance(args[0], torch.Tensor):
                return (hook_point(args[0]), *args[1:]), kwargs
            if isinstance(kwargs.get("hidden_states"), torch.Tensor):
                return args, {**kwargs, "hidden_states": hook_point(kwargs["hidden_states"])}
            return None

        return plain.register_forward_pre_hook(before, with_kwargs=True)

    def after(_module, _args, output):
        if isinstance(output, torch.Tensor):
            return hook_point(output)
        if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
            return (hook_point(output[0]), *output[1:])
        return None

    return plain.register_forward_hook(after)


def hooked_routes(model, view: PlainView) -> tuple[list[Route] | None, str | None]:
    """The routes of the hooked hook points, or None and why the view cannot run them now."""
    entry = _VIEWS.get(model)
    if entry is None or entry.view is not view:
        return None, "the plain view was built again meanwhile"
    return entry.snapshot.hooked(view.routes)


def _fell_back(model, reason: str | None) -> None:
    """One log line the first time a model runs on the bridge for a reason other than the switch."""
    if reason is None or model in _TOLD:
        return
    _TOLD.add(model)
    _log.info("%s: forward passes run through the bridge's wrappers (slower, same results): %s",
              _name(model), reason)


@contextlib.contextmanager
def forward_module(model) -> Iterator[torch.nn.Module]:
    """The module to run this moment's forward passes on: the plain view, with every active hook
    point routed to it, or the bridged Hugging Face model where that cannot be done. The view is
    built (or built again, after a change) at a call made while nothing is hooked: a caller that puts
    its own hooks in place (a steering scope) calls :func:`plain_view` once before them, then this
    after they are. Make every forward inside the block."""
    view, reason = _current(model)
    routes = None
    if view is not None:
        routes, reason = hooked_routes(model, view)
    if routes is None:
        _fell_back(model, reason)
        yield model.hf_model
        return
    handles = [_route(*route) for route in routes]
    try:
        yield view.root
    finally:
        for handle in handles:
            handle.remove()
