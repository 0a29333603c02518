"""The steering robustness study: the five findings of arXiv 2505.03189 (in- vs out-of-distribution,
sample size, adversarial reversal, perplexity, model size) re-tested on any vector, model and data.
See :mod:`interp_steer.studies.robustness.study`."""

from interp_steer.studies.robustness.claims import CLAIMS, Finding
from interp_steer.studies.robustness.config import RobustnessConfig
from interp_steer.studies.robustness.readout import SteeredReadout
from interp_steer.studies.robustness.result import RobustnessResult, schema
from interp_steer.studies.robustness.saturation import SaturationFit, fit_saturation
from interp_steer.studies.robustness.study import replay, robustness, run

__all__ = ["CLAIMS", "Finding", "RobustnessConfig", "RobustnessResult", "SaturationFit", "SteeredReadout",
           "fit_saturation", "replay", "robustness", "run", "schema"]
