"""Package attributes imported on first use (PEP 562).

``import interp_steer`` and the command line's parser import no torch, transformers or
TransformerLens: a package lists where each public name lives, and the module holding it is imported
the first time the name is read (then kept in the package's namespace).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


def export_lazily(namespace: dict[str, Any], names: dict[str, str]) -> None:
    """Give the package whose globals are ``namespace`` the attributes ``names`` (attribute ->
    absolute module name, or ``"module:name"`` for a name the module spells differently), each
    imported when first read."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, original = module.partition(":")
        value = getattr(importlib.import_module(module), original or name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    namespace["__getattr__"] = __getattr__
    namespace["__dir__"] = __dir__
    sys.modules[package].__class__ = _keeping(names)


def _keeping(names: dict[str, str]) -> type:
    """A module class that keeps exported names from being hidden by subpackages of the same name:
    importing ``interp_steer.studies.svf`` binds the subpackage as ``interp_steer.studies.svf``, where
    the package exports the function ``svf`` (as it did when it imported everything eagerly)."""

    class LazyPackage(types.ModuleType):
        def __setattr__(self, name: str, value: Any) -> None:
            if name in names and isinstance(value, types.ModuleType):
                return
            super().__setattr__(name, value)

    return LazyPackage


def names_from(module: str, *names: str) -> dict[str, str]:
    """``{name: module}`` for each name: one line of a package's export table."""
    return dict.fromkeys(names, module)
