"""interp_steer: activation steering and interpretability on TransformerLens.

Start with :func:`load_model` and :func:`collect_activations`; built-in data via :func:`load_builtin`.

Batch invariance on CPU: with two or more threads, Intel MKL splits small matrix products in ways
that depend on the batch shape, so a text's activations could change in the 6th digit with the batch
it was run in. Importing this package sets MKL's strict conditional-numerical-reproducibility mode
(``MKL_CBWR=AUTO,STRICT``, a few per cent slower) unless ``MKL_CBWR`` is already set; it takes
effect if MKL has not yet run a matrix product in this process.
"""

import os

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

from typing import TYPE_CHECKING

from interp_steer._lazy import export_lazily, names_from

if TYPE_CHECKING:
    # The same names, for type checkers and IDEs (tests/test_types.py keeps the two lists equal).
    from interp_steer._plain import fast_path
    from interp_steer.activations import (
        Activations,
        ActivationsFileError,
        collect_activations,
        collect_positions,
    )
    from interp_steer.data import (
        ABQuestion,
        ContrastPair,
        DatasetError,
        builtin_names,
        builtin_path,
        dataset_hash,
        load_ab_questions,
        load_builtin,
        load_corpus,
        load_pairs,
        load_prompts,
    )
    from interp_steer.directions import (
        SteeringVector,
        VectorFileError,
        VectorMetadata,
        build_vector,
        from_activations,
        mix,
    )
    from interp_steer.dla import DlaResult, direct_logit_attribution
    from interp_steer.execution import Execution
    from interp_steer.fields import (
        FieldFileError,
        FieldMetadata,
        SteeringField,
        context_dependence,
        fit_field,
        fit_scorer,
    )
    from interp_steer.generation import Generation, generate
    from interp_steer.lens import LensResult, steered_lens
    from interp_steer.models import (
        DEFAULT_MODEL,
        ChatText,
        Model,
        ModelLoadError,
        ModelSpecError,
        load_model,
    )
    from interp_steer.steering import RowDeltas, RowMix, Steering, steer


# Each public name and the module it lives in, imported on first use (interp_steer._lazy): importing
# the package, or running ``interp-steer --help``, does not import torch or TransformerLens.
_EXPORTS = {
    **names_from("interp_steer.activations", "Activations", "ActivationsFileError", "collect_activations",
                 "collect_positions"),
    **names_from("interp_steer.data", "ABQuestion", "ContrastPair", "DatasetError", "builtin_names", "builtin_path",
                 "dataset_hash", "load_ab_questions", "load_builtin", "load_corpus", "load_pairs", "load_prompts"),
    **names_from("interp_steer.directions", "SteeringVector", "VectorFileError", "VectorMetadata", "build_vector",
                 "from_activations", "mix"),
    **names_from("interp_steer.dla", "DlaResult", "direct_logit_attribution"),
    **names_from("interp_steer._plain", "fast_path"),
    **names_from("interp_steer.execution", "Execution"),
    **names_from("interp_steer.fields", "FieldFileError", "FieldMetadata", "SteeringField", "context_dependence",
                 "fit_field", "fit_scorer"),
    **names_from("interp_steer.generation", "Generation", "generate"),
    **names_from("interp_steer.lens", "LensResult", "steered_lens"),
    **names_from("interp_steer.models", "DEFAULT_MODEL", "ChatText", "Model", "ModelLoadError", "ModelSpecError",
                 "load_model"),
    **names_from("interp_steer.steering", "RowDeltas", "RowMix", "Steering", "steer"),
}
export_lazily(globals(), _EXPORTS)

# The one place the version is written: setuptools reads it statically for the wheel's metadata
# (pyproject.toml, [tool.setuptools.dynamic]), so it stays a plain string literal.
__version__ = "0.1.0"

__all__ = [
    "ABQuestion",
    "Activations",
    "ActivationsFileError",
    "ChatText",
    "ContrastPair",
    "DEFAULT_MODEL",
    "DatasetError",
    "DlaResult",
    "Execution",
    "FieldFileError",
    "FieldMetadata",
    "Generation",
    "LensResult",
    "Model",
    "SteeringField",
    "SteeringVector",
    "VectorFileError",
    "VectorMetadata",
    "ModelLoadError",
    "ModelSpecError",
    "RowDeltas",
    "RowMix",
    "Steering",
    "__version__",
    "build_vector",
    "builtin_names",
    "builtin_path",
    "collect_activations",
    "collect_positions",
    "context_dependence",
    "dataset_hash",
    "direct_logit_attribution",
    "fast_path",
    "fit_field",
    "fit_scorer",
    "from_activations",
    "generate",
    "load_ab_questions",
    "load_builtin",
    "load_corpus",
    "load_model",
    "load_pairs",
    "load_prompts",
    "mix",
    "steer",
    "steered_lens",
]
