"""Tiny random models of several architecture families, built in memory for tests and examples.

``load_model("tiny-random:FAMILY[:SEED]")`` builds one (``"tiny-random[:SEED]"`` is the ``smollm2``
family). Each is a few-layer, 64-wide random network of the family's Hugging Face class, with a
byte-level BPE tokenizer trained on the built-in corpora that follows the family's conventions:

- its special tokens, and whether they sit before or after the ordinary vocabulary;
- its BOS rule: whether the tokenizer prepends a BOS token, whether the chat template writes one
  itself, or whether the family has no BOS at all;
- its EOS, padding and end-of-turn tokens (the model's generation config lists every stop token);
- a chat template in the family's style (written here, short, but with the real layout).

The weights are random and the vocabulary is not the family's, so these models say nothing about
the real ones' behaviour; what they check is that every code path runs on the family's module
layout, normalisation, position scheme, attention variant and tokenizer conventions.

``FAMILIES`` lists them; :func:`markdown_table` renders the README's architecture table from them.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from interp_steer._io import atomic_directory
from interp_steer.paths import cache_dir

# ----------------------------------------------------------------------------- chat templates
# Written for these tiny models in each family's layout. Jinja's filters bind tighter than ``+``,
# so ``a + b | trim`` trims ``b`` only, as the families' own templates do.

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Qwen2: ChatML with a default system turn when the conversation brings none.
QWEN2 = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}"
    "{%- endif %}" + CHATML
)

# Qwen3: ChatML; with enable_thinking=False the answer opens with an empty think block.
QWEN3 = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\n\n</think>\n\n' }}{%- endif %}{%- endif %}"
)

# Llama 3: the template itself writes <|begin_of_text|>, and so does the tokenizer.
LLAMA3 = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}"
)

# Gemma 2 and 3: no system role; a system message is folded into the first user turn.
GEMMA = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set first = messages[0]['content'] + '\n\n' %}{%- set turns = messages[1:] %}"
    "{%- else %}{%- set first = '' %}{%- set turns = messages %}{%- endif %}"
    "{%- for message in turns %}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{- '<start_of_turn>' + role + '\n' + (first if loop.first else '') + message['content'] | trim"
    " + '<end_of_turn>\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<start_of_turn>model\n' }}{%- endif %}"
)

# Mistral: [INST] ... [/INST], no generation prompt (the answer follows [/INST]); a system message
# is prepended to the first instruction.
MISTRAL = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system = messages[0]['content'] + '\n\n' %}{%- set turns = messages[1:] %}"
    "{%- else %}{%- set system = '' %}{%- set turns = messages %}{%- endif %}"
    "{%- for message in turns %}"
    "{%- if message['role'] == 'user' %}"
    "{{- '[INST] ' + (system if loop.first else '') + message['content'] + ' [/INST]' }}"
    "{%- else %}{{- ' ' + message['content'] + eos_token }}{%- endif %}"
    "{%- endfor %}"
)

# Phi-3: <|role|> turns closed by <|end|>; the tokenizer adds BOS, the template does not.
PHI3 = (
    "{%- for message in messages %}"
    "{{- '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|assistant|>\n' }}{%- else %}{{- eos_token }}{%- endif %}"
)

# OLMo 2 (Tulu layout): the template writes BOS (<|endoftext|>), the tokenizer adds none.
OLMO2 = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|assistant|>\n' + message['content'] + eos_token + '\n' }}"
    "{%- else %}{{- '<|' + message['role'] + '|>\n' + message['content'] + '\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|assistant|>\n' }}{%- endif %}"
)

# ----------------------------------------------------------------------------- families

_SIZE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4,
         "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512}


@dataclass(frozen=True)
class TinyFamily:
    """How to build one family's tiny model and tokenizer."""

    name: str
    model_class: str
    """The Hugging Face class (also the architecture the bridge's adapter is chosen by)."""
    config_class: str
    mimics: str
    special_tokens: tuple[str, ...]
    """Every special token, in id order."""
    specials_first: bool
    """Special tokens take the first ids (Gemma, Mistral), or follow the ordinary vocabulary."""
    bos: str | None
    eos: str
    pad: str | None
    adds_bos: bool
    """Whether the tokenizer prepends BOS to every text."""
    template_writes_bos: bool
    chat_template: str | None
    stop: tuple[str, ...] = ()
    """End-of-turn tokens that also end generation (besides ``eos``)."""
    config: Mapping[str, Any] = field(default_factory=dict)
    """Config fields beyond the common tiny size, in the family's own names."""
    features: str = ""

    @property
    def uses_bos(self) -> bool:
        """Whether the model expects a BOS token at position 0 of every sequence."""
        return self.adds_bos or self.template_writes_bos

    def describe(self) -> dict[str, Any]:
        return {"family": self.name, "hf_class": self.model_class, "mimics": self.mimics,
                "bos": self.bos, "eos": self.eos, "pad": self.pad, "stop": list(self.stop),
                "tokenizer_adds_bos": self.adds_bos, "template_writes_bos": self.template_writes_bos,
                "chat_template": self.chat_template is not None, "features": self.features}


_FAMILIES = [
    TinyFamily(
        name="smollm2", model_class="LlamaForCausalLM", config_class="LlamaConfig",
        mimics="SmolLM2-Instruct (the default model)",
        special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"), specials_first=True,
        bos="<|im_start|>", eos="<|im_end|>", pad="<|im_end|>", adds_bos=False, template_writes_bos=False,
        chat_template=CHATML, config={"tie_word_embeddings": True},
        features="RMSNorm, RoPE, grouped-query attention, gated MLP",
    ),
    TinyFamily(
        name="llama3", model_class="LlamaForCausalLM", config_class="LlamaConfig",
        mimics="Llama 3 Instruct",
        special_tokens=("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                        "<|eot_id|>"), specials_first=False,
        bos="<|begin_of_text|>", eos="<|eot_id|>", pad=None, adds_bos=True, template_writes_bos=True,
        chat_template=LLAMA3, stop=("<|end_of_text|>",), config={"rope_theta": 500000.0},
        features="RMSNorm, RoPE, grouped-query attention, gated MLP, untied unembedding",
    ),
    TinyFamily(
        name="qwen2", model_class="Qwen2ForCausalLM", config_class="Qwen2Config",
        mimics="Qwen2 / Qwen2.5 Instruct",
        special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"), specials_first=False,
        bos=None, eos="<|im_end|>", pad="<|endoftext|>", adds_bos=False, template_writes_bos=False,
        chat_template=QWEN2, stop=("<|endoftext|>",), config={"tie_word_embeddings": True},
        features="biased q/k/v projections, RMSNorm, RoPE, grouped-query attention",
    ),
    TinyFamily(
        name="qwen3", model_class="Qwen3ForCausalLM", config_class="Qwen3Config",
        mimics="Qwen3",
        special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"),
        specials_first=False,
        bos=None, eos="<|im_end|>", pad="<|endoftext|>", adds_bos=False, template_writes_bos=False,
        chat_template=QWEN3, stop=("<|endoftext|>",), config={"head_dim": 16, "tie_word_embeddings": True},
        features="q/k RMSNorm, RoPE, grouped-query attention",
    ),
    TinyFamily(
        name="gemma2", model_class="Gemma2ForCausalLM", config_class="Gemma2Config",
        mimics="Gemma 2 instruction-tuned",
        special_tokens=("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
        specials_first=True,
        bos="<bos>", eos="<eos>", pad="<pad>", adds_bos=True, template_writes_bos=True,
        chat_template=GEMMA, stop=("<end_of_turn>",),
        config={"head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 8},
        features="embeddings scaled by sqrt(d_model), pre- and post-norms, logit soft-capping, "
                 "alternating sliding-window attention",
    ),
    TinyFamily(
        name="gemma3", model_class="Gemma3ForCausalLM", config_class="Gemma3TextConfig",
        mimics="Gemma 3 instruction-tuned (text)",
        special_tokens=("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
        specials_first=True,
        bos="<bos>", eos="<eos>", pad="<pad>", adds_bos=True, template_writes_bos=True,
        chat_template=GEMMA, stop=("<end_of_turn>",),
        config={"head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 8,
                "layer_types": ["sliding_attention", "full_attention"] * 2},
        features="as Gemma 2 plus q/k RMSNorm and separate local/global RoPE",
    ),
    TinyFamily(
        name="mistral", model_class="MistralForCausalLM", config_class="MistralConfig",
        mimics="Mistral 7B Instruct",
        special_tokens=("<unk>", "<s>", "</s>", "[INST]", "[/INST]"), specials_first=True,
        bos="<s>", eos="</s>", pad=None, adds_bos=True, template_writes_bos=True,
        chat_template=MISTRAL, config={"sliding_window": 16},
        features="sliding-window attention, RMSNorm, RoPE, grouped-query attention",
    ),
    TinyFamily(
        name="phi3", model_class="Phi3ForCausalLM", config_class="Phi3Config",
        mimics="Phi-3 mini instruct",
        special_tokens=("<unk>", "<s>", "</s>", "<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>",
                        "<|user|>"), specials_first=True,
        bos="<s>", eos="<|endoftext|>", pad="<|endoftext|>", adds_bos=True, template_writes_bos=False,
        chat_template=PHI3, stop=("<|end|>", "<|assistant|>"),
        features="fused qkv and gate/up projections, RMSNorm, RoPE",
    ),
    TinyFamily(
        name="olmo2", model_class="Olmo2ForCausalLM", config_class="Olmo2Config",
        mimics="OLMo 2 Instruct",
        special_tokens=("<|endoftext|>", "<|pad|>"), specials_first=False,
        bos="<|endoftext|>", eos="<|endoftext|>", pad="<|pad|>", adds_bos=False, template_writes_bos=True,
        chat_template=OLMO2,
        features="norms after attention and MLP (not before), q/k RMSNorm, RoPE",
    ),
    TinyFamily(
        name="gpt2", model_class="GPT2LMHeadModel", config_class="GPT2Config",
        mimics="GPT-2 (base model, no chat template)",
        special_tokens=("<|endoftext|>",), specials_first=False,
        bos="<|endoftext|>", eos="<|endoftext|>", pad=None, adds_bos=False, template_writes_bos=False,
        chat_template=None,
        features="learned absolute position embeddings, LayerNorm, biases, fused qkv (Conv1D)",
    ),
]

FAMILIES: Mapping[str, TinyFamily] = MappingProxyType({f.name: f for f in _FAMILIES})
DEFAULT_FAMILY = "smollm2"


def family(name: str) -> TinyFamily:
    """The family called ``name``; raises with the list of families otherwise."""
    if name not in FAMILIES:
        raise KeyError(f"no tiny-random family {name!r}; families: {', '.join(FAMILIES)}")
    return FAMILIES[name]


# ----------------------------------------------------------------------------- tokenizers


@functools.cache
def _trained_bpe(special_tokens: tuple[str, ...]) -> str:
    """A small byte-level BPE trained (once per process and token list) on the built-in corpora.

    ``special_tokens`` take the first ids; pass ``()`` and add them afterwards to put them last.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from interp_steer.data import builtin_texts_for_tokenizer

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(builtin_texts_for_tokenizer(), trainer=trainer)
    return tokenizer.to_str()


def tokenizer_for(fam: TinyFamily) -> Any:
    """The family's tokenizer, saved once under the cache so it has a directory to reload from.

    TransformerLens re-loads the tokenizer from its ``name_or_path`` when it builds a bridge, so an
    in-memory tokenizer is not enough.
    """
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    spec = _trained_bpe(fam.special_tokens if fam.specials_first else ())
    settings = repr((spec, fam.special_tokens, fam.bos, fam.eos, fam.pad, fam.adds_bos, fam.chat_template))
    home = cache_dir() / "tiny-tokenizer" / hashlib.sha256(settings.encode()).hexdigest()[:16]
    if not (home / "tokenizer.json").is_file():
        backend = Tokenizer.from_str(spec)
        if not fam.specials_first:
            backend.add_special_tokens(list(fam.special_tokens))
        named = {"bos_token": fam.bos, "eos_token": fam.eos, "pad_token": fam.pad}
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=backend,
            **{k: v for k, v in named.items() if v is not None},
            # Said explicitly (even when False) so the post-processor is built from it.
            add_bos_token=fam.adds_bos,
            add_eos_token=False,
        )
        tokenizer.chat_template = fam.chat_template
        _save_atomically(tokenizer, home)
    return AutoTokenizer.from_pretrained(str(home))


def _save_atomically(tokenizer: Any, home: Path) -> None:
    with atomic_directory(home, complete="tokenizer.json") as staging:
        tokenizer.save_pretrained(str(staging))


# ----------------------------------------------------------------------------- models


def _config(fam: TinyFamily, tokenizer: Any) -> Any:
    import transformers

    ids = {"bos_token_id": tokenizer.bos_token_id, "pad_token_id": tokenizer.pad_token_id}
    stops = [tokenizer.eos_token_id, *tokenizer.convert_tokens_to_ids(list(fam.stop))]
    ids["eos_token_id"] = stops[0] if len(stops) == 1 else stops
    config_class = getattr(transformers, fam.config_class)
    if fam.model_class == "GPT2LMHeadModel":
        sizes = {"n_embd": _SIZE["hidden_size"], "n_layer": _SIZE["num_hidden_layers"],
                 "n_head": _SIZE["num_attention_heads"], "n_positions": _SIZE["max_position_embeddings"]}
    else:
        sizes = dict(_SIZE)
    config = config_class(
        vocab_size=len(tokenizer),
        initializer_range=0.1,  # sharper attention than the default, so position bugs show
        attn_implementation="eager",
        **sizes,
        **ids,
        **fam.config,
    )
    # Real checkpoints name their class; the bridge picks its adapter from it (OLMo 2 and the
    # Gemma 3 text model have no model-type fallback there).
    config.architectures = [fam.model_class]
    return config


def build(name: str = DEFAULT_FAMILY, seed: int = 0, *, tokenizer: Any = None) -> tuple[Any, Any]:
    """``(hf_model, tokenizer)`` of family ``name`` with weights drawn from ``seed``; the global
    random state is left as it was. ``tokenizer`` replaces the family's own (the model is sized to
    it), e.g. to test another BOS rule or chat template on the same architecture."""
    import transformers

    fam = family(name)
    tokenizer = tokenizer_for(fam) if tokenizer is None else tokenizer
    config = _config(fam, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        hf_model = getattr(transformers, fam.model_class)(config)
    return hf_model.eval(), tokenizer


def markdown_table() -> str:
    """The families as a Markdown table (for the README)."""
    def code(token: str) -> str:
        return "`" + token.replace("|", "\\|") + "`"  # a bare | would end the table cell

    def bos_rule(fam: TinyFamily) -> str:
        if fam.bos is None:
            return "none (no BOS token)"
        if not fam.uses_bos:
            return f"not used ({code(fam.bos)} exists, nothing adds it)"
        writers = [w for w, on in (("tokenizer", fam.adds_bos), ("template", fam.template_writes_bos)) if on]
        return f"{code(fam.bos)}, written by the " + " and the ".join(writers)

    rows = ["| spec | Hugging Face class | mimics | BOS | EOS / stop | chat template | what differs |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for fam in FAMILIES.values():
        spec = "tiny-random" if fam.name == DEFAULT_FAMILY else f"tiny-random:{fam.name}"
        stops = " ".join(code(t) for t in (fam.eos, *fam.stop))
        template = "yes" if fam.chat_template else "none"
        rows.append(f"| `{spec}` | `{fam.model_class}` | {fam.mimics} | {bos_rule(fam)} | {stops} | {template} "
                    f"| {fam.features} |")
    return "\n".join(rows)


__all__ = ["DEFAULT_FAMILY", "FAMILIES", "TinyFamily", "build", "family", "markdown_table", "tokenizer_for"]
