"""Names shared by the core and the study configs, in a module that imports nothing: the configs are
read when the command line builds its parser, which must not wait for torch."""

FIELD_FORMS = ("per_layer", "shared", "linear")
"""How a steering field's per-layer scorers share parameters (:func:`interp_steer.fields.fit_scorer`)."""

PATCH_COMPONENTS = ("resid", "attn", "mlp", "heads")
"""What activation patching can patch (:mod:`interp_steer.patching`)."""
