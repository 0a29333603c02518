"""The fast path: forward passes without the bridge's wrappers, for generation, activation
collection and perplexity. Everything about it lives in this package; the rest of the package calls
:func:`plain_view`, :func:`forward_module`, :func:`block_output` and :func:`resumed`, and users switch
it with :func:`fast_path` (``interp_steer.fast_path``). Studies never call it directly.

TransformerBridge wraps every Hugging Face submodule (each block, attention, MLP, norm and linear
layer: about 360 on the default model) in a component that runs its hook points and bookkeeping on
every call. Per decoding step that costs about a fifth of a step on a CPU, whether or not any hook is
active. A *plain view* is the same model as a tree of the original Hugging Face modules, sharing every
parameter and buffer with the bridged one (each plain module is a shallow copy of the original, so
both hold the very same ``_parameters`` and ``_buffers`` dictionaries), so its outputs are the bridged
model's bit for bit (``tests/test_plain.py`` checks this on every architecture family).

**It never computes another model than the one the user holds.** The view is a copy, so it is checked
against what it was copied from on every use (:class:`~interp_steer._plain.snapshot.Snapshot`): the module tree (every module's
type and children), every attribute of every module (a patched ``forward``, ``training``, a swapped
weight tensor, a changed ``scaling``), the configs the modules read, the bridge's classes, and the
``eager_attention_forward`` that grouped decoding attention stands in for. Anything changed since the
view was built (a LoRA adapter, an SAE spliced in, an ablation wrapper, ``train()``, ``.to(dtype)``,
``torch.nn.utils.parametrize``) makes it build the view again (and check it against the bridge again)
before the next forward; a model it cannot mirror (a patched ``forward`` anywhere, Accelerate's
dispatch hooks, a bridge component that computes its own way, several devices) runs on the bridge.
In-place edits of a weight (``weight.data.mul_(2)``) need no check: the view holds the same tensor.
The check costs about a hundredth of a decoding step (``benchmarks/bench_fast_path_check.py``).

**Hooks fire exactly where the bridge fires them.** When the view is built, one forward of the bridged
model with a recording hook on every hook point shows which points the bridge's own forward fires
and with which tensors; a hook point is *routable* only where a boundary of a plain module (a
component's output, a block's input) sees exactly those tensors in the plain forward. At the moment
a generation (or a collection, or a scoring pass) runs, :func:`forward_module` runs each hooked,
routable point from a PyTorch hook on its plain module, which calls the very same hook point, so its
hooks see and change the same tensor as in the bridge. A hook on any other point (inside attention,
``resid_mid``, a rotary embedding's output, Phi-3's fused ``qkv``: points the bridge fires elsewhere or
never), a PyTorch hook on a bridged module, or a global module hook makes it return the bridged
model. The first time a model runs on the bridge for any of these reasons, one line on the logger
``interp_steer.fast_path`` (level INFO) says why.

One thing differs by design: in a decoding step (one new token per row) the plain view's attention
reads each key/value head once for the query heads that share it (grouped-query attention as a
grouped matrix product) instead of copying the key/value cache to every query head, as the eager
attention the bridge uses does at every step and layer. That copy was a third of a steered grid's
time on the default model. The arithmetic is the same, but a product with three query rows is
rounded by another kernel than three products with one row each, so a step's attention output can
differ from the bridge's in the last bit (about 3e-7); greedy tokens change only where two logits
tie to that precision. A forward of several positions (a prefill, a collection, a perplexity pass)
still runs the model's own eager attention, so it is the bridge's bit for bit; a forward of one
position per row is a decoding step here, and so is the prompt's last token after a shared prefill
when the prompt has no chat template after it. ``fast_path(grouped=False)`` turns it off.

Upstream private names this package relies on are listed in the README ("What the fast path relies on").

The package, one concept a module: :mod:`~interp_steer._plain.switch` (:func:`fast_path`),
:mod:`~interp_steer._plain.hooks` (what counts as a hook), :mod:`~interp_steer._plain.view` (the
plain tree), :mod:`~interp_steer._plain.grouped` (grouped decoding attention),
:mod:`~interp_steer._plain.snapshot` (what a view mirrors, checked on every use),
:mod:`~interp_steer._plain.check` (building a view and checking it against the bridge),
:mod:`~interp_steer._plain.routes` (which module runs each forward, hooks routed to it) and
:mod:`~interp_steer._plain.resume` (resuming a forward after a block).
"""

from interp_steer._plain.resume import block_output, resumed
from interp_steer._plain.routes import forward_module, plain_view
from interp_steer._plain.switch import fast_path
from interp_steer._plain.view import PlainView

__all__ = ["PlainView", "block_output", "fast_path", "forward_module", "plain_view", "resumed"]
