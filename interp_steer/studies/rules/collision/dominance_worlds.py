"""The simulated worlds of ``collision.dominance``: latent valences read through VADER's compound,
a tanh compound or a probe's sigmoid (:func:`_valence_world`), sentiment-word counts times tone
(:func:`_count_world`), and the nulls no fixed scale can tell from dominance (saturating scorers), with
the rates measured beyond the design that the rule's notes quote."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy.special import expit

from interp_steer.studies.rules.base import (
    noise,
    vader_compound,
)
from interp_steer.studies.rules.collision.common import world


def _skewed_unit(rng: np.random.Generator, kind: str, size: Any) -> np.ndarray:
    """Right-skewed noise of mean 0 and variance 1: ``"exp"`` (centred exponential, skewness 2) or
    ``"lognormal"`` (σ = 1, skewness 6.2): an occasional effusive completion."""
    if kind == "exp":
        return rng.exponential(1.0, size) - 1.0
    return (rng.lognormal(0.0, 1.0, size) - math.exp(0.5)) / math.sqrt((math.e - 1) * math.e)


def _valence_world(lo: float | int, hi: float | int, *, curve: Callable[[np.ndarray], np.ndarray] = lambda a: a,
                   kind: str = "normal", sd: tuple[float | int, float | int] = (1.0, 1.0), scorer: str = "vader",
                   samples: int | None = None, saturation: float | None = None, collapse: float = 0.0,
                   collapse_everywhere: bool = False, effusive: float = 0.0, effusive_kind: str = "exp",
                   repetitive: float = 0.0, cap: bool = False):
    """Per prompt ``k`` a latent valence ``x_k(α) = a_k + b_k · curve(α) + σ(α) · ε`` with
    ``a_k ~ N(lo, 1)``, ``b_k ~ N(hi − lo, 0.5)`` (the pure ends' means are ``lo`` and ``hi``), noise
    ``ε`` of ``kind`` per completion with SD ``σ(α)`` from ``sd[0]`` (pure B) to ``sd[1]`` (pure A),
    ``samples`` completions per cell (default: the profile's). The scorer reads ``x`` as: ``"vader"``,
    VADER's raw valence sum (compound ``x / √(x² + 15)``, rounded to 4 decimals); ``"tanh"``, a
    compound ``tanh(x / 2)`` rounded to 4 decimals (the logistic world); ``"probability"``, a
    probe's ``sigmoid(x)``. ``saturation=S``: VADER reads ``S · tanh(x / S)`` instead of ``x`` (the
    raw sum saturates before VADER's normalisation; ``cap``: reads ``min(x, S)``, a plateau of ties).
    ``effusive``: the pure A end's completions get
    right-skewed noise of that SD too (``effusive_kind``: :func:`_skewed_unit`). ``collapse``: a completion of an inner mix
    collapses to neutral text (raw sum exactly 0) with probability ``collapse · 4α(1 − α)`` (every
    mix with probability ``collapse`` if ``collapse_everywhere``); ``repetitive``: an inner mix
    degenerates with probability ``repetitive · 4α(1 − α)`` into repetitive near-neutral text (raw
    sum ~ N(0, 0.3²), repetition rate ~ 0.8 instead of ~ 0.1), and the draw returns ``repetition``."""

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        alphas = np.asarray(profile["alphas"], dtype=float)
        n, m = int(profile["prompts"]), int(samples or profile["samples"])
        shape = (runs, alphas.size, n, m)
        a = rng.normal(lo, 1.0, (runs, 1, n, 1))
        b = rng.normal(hi - lo, 0.5, (runs, 1, n, 1))
        spread = (sd[0] + (sd[1] - sd[0]) * alphas)[None, :, None, None]
        x = a + b * curve(alphas)[None, :, None, None] + spread * noise(rng, kind, shape)
        if effusive:
            x[:, -1] += effusive * _skewed_unit(rng, effusive_kind, x[:, -1].shape)
        if saturation is not None:
            x = np.minimum(x, saturation) if cap else saturation * np.tanh(x / saturation)
        bell = 4 * alphas * (1 - alphas)
        if collapse:
            p = np.full(alphas.size, collapse) if collapse_everywhere else collapse * bell
            x = np.where(rng.random(shape) < p[None, :, None, None], 0.0, x)
        extra = {}
        if repetitive:
            degenerate = rng.random(shape) < (repetitive * bell)[None, :, None, None]
            x = np.where(degenerate, 0.3 * rng.standard_normal(shape), x)
            rep = np.clip(np.where(degenerate, 0.8, 0.1) + 0.05 * rng.standard_normal(shape), 0.0, 1.0)
            extra["repetition"] = rep[..., 0] if m == 1 else rep
        if scorer == "vader":
            scores, scale = vader_compound(x), "vader"
        elif scorer == "tanh":
            scores, scale = np.round(np.tanh(x / 2), 4), "vader"
        elif scorer == "probability":
            scores, scale = expit(x), "probability"
        else:
            raise ValueError(scorer)
        return {"alphas": np.broadcast_to(alphas, (runs, alphas.size)),
                "scores": scores[..., 0] if m == 1 else scores, "scale": scale, **extra}

    return draw


def _count_world(counts: tuple[float | int, float | int], tone: tuple[float | int, float | int], *,
                 curve: Callable[[np.ndarray], np.ndarray] = lambda a: a, words: bool = True):
    """VADER's raw valence sum as the sum over a completion's sentiment words: their number
    ``N ~ Poisson(L(α))``, ``L`` linear from ``counts[0]`` (pure B) to ``counts[1]`` (pure A), each
    word's valence ``t_k(α) + ε`` (SD 1) around a prompt's tone ``t_k(α) = tone[0] + (tone[1] −
    tone[0]) · curve(α) + N(0, 0.5²)``: ``s = N · t + √N · ε``. With ``curve`` linear both factors are
    linear in α and their product bends (no dominance in tone, yet the raw sum leans to the end with
    fewer words when it is the positive one). ``words``: the draw returns ``sentiment_words = N``."""

    def draw(rng: np.random.Generator, profile: Mapping[str, Any], runs: int) -> dict[str, Any]:
        alphas = np.asarray(profile["alphas"], dtype=float)
        n = int(profile["prompts"])
        rate = counts[0] + (counts[1] - counts[0]) * alphas
        t = tone[0] + (tone[1] - tone[0]) * curve(alphas)[None, :, None] + 0.5 * rng.standard_normal((runs, 1, n))
        count = rng.poisson(np.broadcast_to(rate[None, :, None], (runs, alphas.size, n)))
        raw = count * t + np.sqrt(count) * rng.standard_normal(count.shape)
        out = {"alphas": np.broadcast_to(alphas, (runs, alphas.size)), "scores": vader_compound(raw), "scale": "vader"}
        if words:
            out["sentiment_words"] = count
        return out

    return draw


DOMINANCE_DGPS = dict([
    *(world(f"null: linear raw VADER, ends {lo:+g}→{hi:+g}", "null",
           f"VADER's raw valence sum exactly linear in α (no dominance), pure ends at {lo:+g} and {hi:+g} "
           f"(compounds {lo / math.sqrt(lo * lo + 15):+.2f} and {hi / math.sqrt(hi * hi + 15):+.2f}); per-completion SD 1",
           _valence_world(lo, hi))
      for lo, hi in ((-2, 2), (-1, 4), (0, 6), (-6, 0))),
    world("null: linear raw VADER, 4 sampled completions per cell, SD 3, ends -8→+0", "null",
         "4 sampled completions per cell, per-completion SD 3: the inverse must be applied per completion, before "
         "averaging (the inverse of a cell's mean compound bends towards A here: on the raw scale alone a false "
         "'reproduced' of 21 % at the full size)", _valence_world(-8, 0, samples=4, sd=(3.0, 3.0))),
    world("null: linear raw VADER, t3 noise, ends -1→+4", "null",
         "heavy-tailed per-completion noise (Student t, 3 d.o.f., unit variance)", _valence_world(-1, 4, kind="t3")),
    world("null: linear raw VADER, noise SD 0.3 at B and 2 at A, ends -1→+4", "null",
         "unequal noise at the two ends", _valence_world(-1, 4, sd=(0.3, 2.0))),
    world("null: linear raw VADER, noise SD 2 at B and 0.3 at A, ends -1→+4", "null",
         "unequal noise at the two ends, the other way", _valence_world(-1, 4, sd=(2.0, 0.3))),
    world("null: linear raw VADER, effusive A end (skewed noise SD 4), ends +0→+6", "null",
         "the pure A end's completions carry extra right-skewed noise (a centred exponential, SD 4): an occasional "
         "effusive completion skews each prompt's bend, and Fieller's t-based interval alone errs on that side; the "
         "signed bend's Hall-corrected interval keeps it within the design",
         _valence_world(0, 6, effusive=4.0)),
    world("null: linear raw VADER, effusive A end (skewed noise SD 3), ends +0→+4", "null",
         "as above, milder", _valence_world(0, 4, effusive=3.0)),
    world("null: inner mixes collapse to neutral text (exact-0 compounds), ends -4→+1", "null",
         "the latent valence is linear in α, but a completion of an inner mix collapses to neutral text (VADER scores "
         "no word: compound exactly 0) with probability 0.5·4α(1−α), as the degenerate function-word text the "
         "paper's low mid-mix perplexities come from: near the A end's near-neutral compounds it reads as A "
         "dominating (before the neutral-share guard: false 'reproduced' 42 % quick, 77 % full)",
         _valence_world(-4, 1, collapse=0.5)),
    world("null: inner mixes collapse to neutral text less often (0.3), ends -3→+1", "null",
         "as above with collapse probability 0.3·4α(1−α) (before the guard: 10 % / 18 %)",
         _valence_world(-3, 1, collapse=0.3)),
    world("null: neutral text at every mix alike (0.4), ends -4→+1", "null",
         "a constant share of neutral completions at every α, ends included: the raw sum stays linear, the guard "
         "has nothing to find", _valence_world(-4, 1, collapse=0.4, collapse_everywhere=True)),
    world("null: inner mixes degenerate into repetitive text (repetition measured), ends -4→+1", "null",
         "an inner mix degenerates with probability 0.5·4α(1−α) into repetitive near-neutral text (raw sum "
         "N(0, 0.3²), not exactly 0, so only the repetition rate the study measures shows it)",
         _valence_world(-4, 1, repetitive=0.5)),
    world("null: sentiment-word count x tone, N ~ Poisson(6→2), tone -1.5→+1.5 (counts given)", "null",
         "VADER's raw sum = (number of sentiment words) × (their mean valence), each linear in α: the B persona "
         "writes three times as many sentiment words (the released dark persona's texts are about 3× longer), so the "
         "raw sum bends to A while the tone per word is linear (before the per-word scale: false 'reproduced' 76 % "
         "quick, 97 % full); the study passes VADER's lexicon hits",
         _count_world((6, 2), (-1.5, 1.5))),
    world("null: sentiment-word count x tone, N ~ Poisson(4→3), tone -1→+1 (counts given)", "null",
         "milder (before: 7 % / 12 %)", _count_world((4, 3), (-1.0, 1.0))),
    world("null: latent linear through tanh(z/2) (logistic compound), ends -5→+0", "null",
         "a compound made as tanh(z/2) of a latent linear in α (the world the old 2·artanh scale assumed): on "
         "VADER's raw scale alone it reads as A dominating; the second scale (2·artanh) keeps the verdict honest",
         _valence_world(-5, 0, scorer="tanh")),
    world("null: latent linear through a sigmoid, probe probability, ends -3→+2", "null",
         "a probe's P(A) = sigmoid(latent), the latent linear in α, read with scale='probability'",
         _valence_world(-3, 2, scorer="probability")),
    world("null: B dominates (α²), ends -1→+4", "null", "the mix leans to B: d(α) = α² on the raw scale",
         _valence_world(-1, 4, curve=np.square)),
    world("effect: paper's √α on raw VADER, ends 3 SD apart (-1→+2)", "effect",
         "the paper's effect d(α) = √α (area 1/6) on VADER's raw scale with the ends 3 per-completion SDs apart "
         "(the paper's signal-to-noise assumed by the old tests; the paper reports none)",
         _valence_world(-1, 2, curve=np.sqrt), paper=True),
    world("effect: √α at the default model's separation (ends +0.4→+1.7)", "effect",
         "√α with the ends of the default model's quick run (compounds +0.10 and +0.40, about 1 SD apart): low "
         "power, and 'not reproduced' must stay rare", _valence_world(0.4, 1.7, curve=np.sqrt)),
    world("effect: √α, t3 noise, ends -1→+2", "effect", "heavy-tailed noise",
         _valence_world(-1, 2, curve=np.sqrt, kind="t3")),
    world("effect: √α, noise SD 0.3 at B and 2 at A, ends -1→+2", "effect", "unequal noise at the two ends",
         _valence_world(-1, 2, curve=np.sqrt, sd=(0.3, 2.0))),
    world("effect: √α, effusive A end (skewed noise SD 2), ends -1→+2", "effect",
         "right-skewed noise at the A end (a centred exponential), in the paper's effect",
         _valence_world(-1, 2, curve=np.sqrt, effusive=2.0)),
    world("effect: √α on the negative side, ends -4→-1", "effect", "both ends negative (compounds -0.72 and -0.25)",
         _valence_world(-4, -1, curve=np.sqrt)),
    world("effect: √α, 4 sampled completions per cell, ends +0→+3", "effect", "sampled decoding",
         _valence_world(0, 3, curve=np.sqrt, samples=4)),
    world("effect: √α, inner mixes collapse to neutral text, ends +0→+4", "effect",
         "the paper's effect, but inner mixes collapse to neutral text with probability 0.5·4α(1−α): the zeros pull "
         "the mixes to B's near-neutral end (before the guard: false 'not reproduced' 79 % quick, 99.8 % full)",
         _valence_world(0, 4, curve=np.sqrt, collapse=0.5)),
    world("effect: √α, neutral text at every mix alike (0.5), ends -1→+2", "effect",
         "a constant share of neutral completions everywhere (the guard must not fire more than its 5 %)",
         _valence_world(-1, 2, curve=np.sqrt, collapse=0.5, collapse_everywhere=True)),
    world("effect: √α in tone, sentiment-word count Poisson(6→2) (counts given)", "effect",
         "the paper's effect in the tone per word, the B persona writing three times as many sentiment words: every "
         "scale (raw, 2·artanh, per word) leans to A", _count_world((6, 2), (-1.5, 1.5), curve=np.sqrt)),
    world("effect: √α in tone, sentiment-word count Poisson(4) at every mix (counts given)", "effect",
         "the paper's effect in the tone per word, as many sentiment words at every mix",
         _count_world((4, 4), (-1.5, 1.5), curve=np.sqrt)),
    world("effect: √α in the logistic world (tanh(z/2) compound), ends -2→+2", "effect",
         "the paper's effect on the latent of a tanh(z/2) compound", _valence_world(-2, 2, curve=np.sqrt, scorer="tanh")),
    world("effect: √α, probe probability, ends -2→+2", "effect", "the paper's effect on a probe's latent",
         _valence_world(-2, 2, curve=np.sqrt, scorer="probability")),
])

SATURATING_NULLS = {
    "raw sum 4·tanh(x/4), ends 0→+6": _valence_world(0, 6, saturation=4.0),
    "raw sum 6·tanh(x/6), ends 0→+6": _valence_world(0, 6, saturation=6.0),
    "raw sum 3·tanh(x/3), ends 0→+3": _valence_world(0, 3, saturation=3.0),
    "raw sum 2·tanh(x/2), ends -2→+2 (symmetric)": _valence_world(-2, 2, saturation=2.0),
}
"""Nulls no fixed scale can tell from dominance: a latent linear in α whose raw valence sum saturates
(``S · tanh(x / S)``) *before* VADER's normalisation. On every fixed scale the mix then really does
sit closer to the saturated end, the same bend as the paper's √α; the rank check, unchanged by any
monotone re-expression, keeps them within the design (they are registered nulls too)."""

DOMINANCE_DGPS.update([
    world("null: raw sum capped at +4 (a plateau of ties), ends 0→+6", "null",
         "a latent linear in α whose raw valence sum is capped at +4: ties pile up at A's end; the rank check leaves "
         "tied pairs out (counted half they read 'reproduced' 55 % / 88 %, quick / full)",
         _valence_world(0, 6, saturation=4.0, cap=True)),
    world("null: raw sum capped at +3 (a plateau of ties), ends 0→+6", "null", "as above, a lower cap (before: 90 % / "
         "99.9 %)", _valence_world(0, 6, saturation=3.0, cap=True)),
])
DOMINANCE_DGPS.update(world(f"null: saturating raw sum, {name}", "null",
                             "a latent linear in α whose raw valence sum saturates before VADER's normalisation: on "
                             "every fixed scale the mix sits nearer the saturated end; only the rank check sees no "
                             "dominance", draw) for name, draw in SATURATING_NULLS.items())

SATURATING_RATES = {"sat4": "98 % / 81 %", "sat6": "76 % / 42 %", "sat3": "18 % / 10 %", "satsym": "3.6 % / 2.7 %"}
"""False "reproduced" under :data:`SATURATING_NULLS` on the fixed scales alone (without the rank
check), full / quick (2000 runs, seed 7; ``tests/test_rules_collision.py`` re-measures them)."""

DOMINANCE_BEYOND = {"i08_r": "5.6 % / 15 %", "i08_nr": "37 % / 62 %", "hetero": "3.4 % / 4.8 %",
                    "counts": "41 % / 80 %", "ln4": "5.4 % / 7.9 %", "ln6": "6.2 % / 7.1 %",
                    "satnoise": "43 % / 96 %", "satnoise12": "8.6 % / 26 %"}
"""Measured rates quoted in the notes (``tests/test_rules_collision.py`` re-measures them)."""

DOMINANCE_NOTES = (
    "Estimand: the area between d(α) = mean(s(α) − s(0)) / mean(s(1) − s(0)) and the diagonal on the named "
    "scale, a ratio of means over prompts (the dominance of the average prompt's curve), not the mean of per-prompt "
    "areas: prompts whose ends are far apart weigh more (half the prompts with √α and ends 4 apart, half with "
    "α² and ends 1 apart have a mean per-prompt area of 0 but a ratio of means above 0; the rank check weighs "
    "every prompt alike, so such runs rarely read 'reproduced': {hetero}, quick / full). "
    "'Reproduced' and 'not reproduced' answer two claims, and when the true area lies between 0 and the paper's "
    "both can be true: 'reproduced' says A leans significantly across most of the range (the qualitative claim), "
    "'not reproduced' that the effect is significantly smaller than the paper's (TOST against the paper's area) or "
    "below the paper's curve at most mixes. Which one a run gives depends on its precision: with d = α^0.8 "
    "(area 0.056, a third of the paper's; ends 3 SD apart) 'reproduced' {i08_r} and 'not reproduced' {i08_nr} of the "
    "time (quick / full); the reason says which reading a verdict rests on. The package's other "
    "paired rules have the same structure (significant effect vs smaller than the smallest effect of interest). "
    "Dominance is relative to the scale the scores are read on: a monotone re-expression of the scores bends d(α). "
    "The rule reads VADER's compound on VADER's own raw valence sum (the exact inverse of compound = s / √(s² + 15), "
    "applied per completion before averaging; a compound of ±1 is read as ±0.9999) and, as a second scale, on "
    "2 artanh(c) (linear for a compound made as tanh(z/2)); a verdict counts only when both give it. Read on 2 artanh "
    "alone (the old rule) a raw valence sum exactly linear in α came out 'reproduced' 2 % (ends -2 → +2), 15 % "
    "(-1 → +4) and 53 % (0 → +6) of the time at the full profile. VADER's raw sum is extensive (a sum over sentiment "
    "words): when the two personas write different numbers of sentiment words, a tone linear in α times a count "
    "linear in α bends the raw sum; given the counts (sentiment_words, which the study passes) the valence per "
    "sentiment word must agree too. Without them that world is beyond the rule (N ~ Poisson(6 → 2), tone -1.5 → +1.5: "
    "'reproduced' {counts}, quick / full). The paper's own low mid-mix perplexities come from degenerate "
    "function-word text, which VADER scores as exactly neutral: a verdict is inconclusive when the inner mixes have "
    "significantly more exact-0 compounds than the pure ends, or (given repetition) are significantly more "
    "repetitive. Saturating scorers: when the raw valence sum itself saturates before VADER's normalisation "
    "(s = S tanh(x/S) of a latent x linear in α) the mix truly sits nearer the saturated end on every fixed "
    "scale, the same bend as the paper's √α: on the fixed scales alone the false 'reproduced' rate was "
    "(full / quick, 2000 runs) {sat4} at 4 tanh(x/4), ends 0 → +6; {sat6} at 6 tanh(x/6), 0 → +6; {sat3} at "
    "3 tanh(x/3), 0 → +3; {satsym} at symmetric ends -2 → +2. 'Reproduced' therefore also needs the scale-free rank "
    "check (ranks do not change under any monotone re-expression, so these worlds are registered nulls within the "
    "design); on its own a rank rule would err where the noise differs between the ends (there the fixed scales are "
    "right), so it only vetoes. It costs power (the paper's effect with the ends 3 SD apart: about 0.6 → 0.3 quick, "
    "0.96 → 0.73 full). Tied pairs (exact-0 compounds, identical greedy completions, a capped scorer) are left "
    "out. Beyond the design: a saturating scorer AND unequal noise at the two ends together (the A end noisier or "
    "more skewed): saturation bends every fixed scale towards A, and the noisier end lowers P(pure A above the "
    "mix), so the rank check leans to A too; no statistic of the scores can tell that world from dominance "
    "(4 tanh(x/4), ends 0 → +6, noise SD 0.3 at B and 2 at A: 'reproduced' {satnoise}; SD 1 and 2: {satnoise12}, "
    "quick / full). With equal noise, or unequal noise without saturation, it is within the design. Beyond the "

    "design too: far more skewed noise at one end (an effusive A end with centred lognormal noise, skewness 6): "
    "Fieller's interval alone said 'reproduced' 9 % / 7 % (SD 4, ends 0 → +4) and 11 % / 9 % (SD 6, 0 → +6), the "
    "signed bend's Hall-corrected interval brings it to {ln4} and {ln6} (quick / full; the correction is first-order "
    "and a run of 16 prompts often lacks the tail); a skewness of 2 (exponential) is within the design. Inputs the "
    "rule refuses rather than misread: non-finite alphas, ±inf scores, VADER compounds or probabilities rounded to 3 "
    "decimals or fewer (compounds rounded to 2 decimals made a linear raw sum from 0 to +30 read 'reproduced' 66 % / "
    "86 %), probabilities at 0, 1 or the 1e-6 clip (a clipped end reads as a bend: 31 % / 66 %). Sizes: quick "
    "16 prompts × 5 values of α, full 30 prompts × 9 values of α, greedy (one completion per cell).")
