"""The steering robustness study: the five findings of arXiv 2505.03189 (in- vs out-of-distribution,
sample size, adversarial reversal, perplexity, model size) re-tested on any vector, model and data.
See :mod:`interp_steer.studies.robustness.study`."""

from typing import TYPE_CHECKING

from interp_steer._lazy import export_lazily, names_from

if TYPE_CHECKING:
    # The same names, for type checkers and IDEs (tests/test_types.py keeps the two lists equal).
    from interp_steer.studies.robustness.claims import CLAIMS, Finding
    from interp_steer.studies.robustness.config import RobustnessConfig
    from interp_steer.studies.robustness.readout import SteeredReadout
    from interp_steer.studies.robustness.result import RobustnessResult, schema
    from interp_steer.studies.robustness.saturation import SaturationFit, fit_saturation
    from interp_steer.studies.robustness.study import replay, robustness, run


_EXPORTS = {
    **names_from("interp_steer.studies.robustness.claims", "CLAIMS", "Finding"),
    **names_from("interp_steer.studies.robustness.config", "RobustnessConfig"),
    **names_from("interp_steer.studies.robustness.readout", "SteeredReadout"),
    **names_from("interp_steer.studies.robustness.result", "RobustnessResult", "schema"),
    **names_from("interp_steer.studies.robustness.saturation", "SaturationFit", "fit_saturation"),
    **names_from("interp_steer.studies.robustness.study", "replay", "robustness", "run"),
}
export_lazily(globals(), _EXPORTS)  # imported on first use: the command line's parser needs none of it

__all__ = ["CLAIMS", "Finding", "RobustnessConfig", "RobustnessResult", "SaturationFit", "SteeredReadout",
           "fit_saturation", "replay", "robustness", "run", "schema"]
