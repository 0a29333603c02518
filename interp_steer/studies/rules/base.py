"""What a verdict rule is: a claim in words, a pure decision on documented arrays, and the
data-generating processes (DGPs) its error rates are simulated under.

A :class:`Rule` has

- ``claim``: the paper's claim, in words; ``text``: the rule, in words;
- ``inputs``: the arrays :meth:`Rule.decide` takes, by keyword, with their shapes and meaning. Settings
  (margins, thresholds) are keywords with the shipped defaults;
- :meth:`Rule.decide`: the one function the study itself calls. It returns a :class:`Decision`
  (``verdict``, a one-sentence ``reason``, and a JSON-ready dict of every number the rule used);
- ``codes``: the same rule on a batch of runs (every input with a leading ``runs`` axis), returning
  one verdict code per run (1 reproduced, −1 not reproduced, 0 inconclusive). :meth:`Rule.decide`
  is ``codes`` on a batch of one plus the text, so a simulation of ``codes`` is a simulation of what
  the study decides (``tests/test_rules.py`` checks that they agree run by run);
- ``profiles``: the sizes the study ships (``"quick"`` and ``"full"``: items, grids, seeds), which a
  DGP reads to draw data of the right shape;
- ``dgps``: named :class:`DGP` s. Each says whether the claim is false (``truth="null"``: then
  "reproduced" is an error) or true at the paper's effect or at the smallest effect the rule
  counts (``truth="effect"``: then "not reproduced" is an error, and "reproduced" is power).

:meth:`Rule.simulate` returns the fraction of runs with each verdict. It takes a registered DGP's
name, a :class:`DGP`, or any callable ``dgp(rng, profile) -> {input: array}`` that draws the inputs
of *one* run (for users' own worlds; the rule's :meth:`~Rule.decide` then runs once per run).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

VERDICTS = {1: "reproduced", -1: "not reproduced", 0: "inconclusive"}
CODES = {verdict: code for code, verdict in VERDICTS.items()}
DESIGN_RATE = 0.05
"""The largest error rate a rule is designed for: false "reproduced" under every null, false "not
reproduced" under every DGP where the claim holds (both before Monte Carlo error)."""

Truth = Literal["null", "effect"]
Draw = Callable[[np.random.Generator, Mapping[str, Any], int], Mapping[str, Any]]


@dataclass(frozen=True)
class Decision:
    """One run's verdict, why, and every number the rule used (JSON-ready; ``numbers["rule"]`` is the
    rule's id, ``numbers["rule_text"]`` its text)."""

    verdict: str
    reason: str
    numbers: dict[str, Any]

    def __post_init__(self) -> None:
        if self.verdict not in CODES:
            raise ValueError(f"verdict must be one of {list(CODES)}, got {self.verdict!r}")


@dataclass(frozen=True)
class DGP:
    """A simulated world for one rule. ``draw(rng, profile, runs)`` returns the rule's inputs with a
    leading ``runs`` axis (settings, such as a margin, may be scalars). ``truth`` says which verdict
    is an error there: ``"null"`` (the claim is false) makes "reproduced" one, ``"effect"`` (the claim
    holds, at the paper's size or at the rule's smallest effect of interest) "not reproduced".
    ``paper`` marks the DGP whose "reproduced" rate is the power reported on the rule's card."""

    name: str
    truth: Truth
    description: str
    draw: Draw
    paper: bool = False

    def __post_init__(self) -> None:
        if self.truth not in ("null", "effect"):
            raise ValueError(f"DGP {self.name!r}: truth must be 'null' or 'effect', got {self.truth!r}")


@dataclass(frozen=True)
class Rule:
    """A registered verdict rule (see the module docstring)."""

    id: str
    claim: str
    text: str
    inputs: Mapping[str, str]
    decide_one: Callable[..., Decision]
    codes: Callable[..., np.ndarray]
    profiles: Mapping[str, Mapping[str, Any]]
    dgps: Mapping[str, DGP]
    notes: str = ""
    cost: float = 1.0
    """Relative cost of one simulated run (1 for closed-form rules); cards and the CI test divide
    their number of runs by it, so an expensive rule still simulates within the same time."""
    detectable: Callable[[Mapping[str, Any]], Any] | None = None
    """``detectable(numbers)``: the smallest effect a run could have detected, read from one
    decision's numbers (the card reports its median over the assumption DGP's runs)."""
    tags: tuple[str, ...] = field(default=())

    def decide(self, **inputs: Any) -> Decision:
        """The verdict on one run's inputs (the study calls this)."""
        unknown = sorted(set(inputs) - set(self.inputs) - set(_settings(self.decide_one)))
        if unknown:
            raise TypeError(f"rule {self.id}: unknown inputs {unknown}; it takes {sorted(self.inputs)}")
        decision = self.decide_one(**inputs)
        decision.numbers.setdefault("rule", self.id)
        decision.numbers.setdefault("rule_text", self.text)
        return decision

    def simulate(self, dgp: str | DGP | Callable[..., Mapping[str, Any]], profile: str | Mapping[str, Any] = "quick",
                 runs: int = 2000, seed: int = 0) -> dict[str, float]:
        """The fraction of ``runs`` simulated runs with each verdict (and ``"runs"``), under ``dgp`` at
        ``profile`` (a name from :attr:`profiles` or a dict of the same keys). ``dgp`` is a name from
        :attr:`dgps`, a :class:`DGP`, or a callable ``dgp(rng, profile)`` drawing one run's inputs."""
        if runs < 1:
            raise ValueError(f"runs must be >= 1, got {runs}")
        size = self.profile(profile)
        rng = np.random.default_rng(seed)
        if isinstance(dgp, str):
            if dgp not in self.dgps:
                raise KeyError(f"rule {self.id} has no DGP {dgp!r}; it has {sorted(self.dgps)}")
            dgp = self.dgps[dgp]
        if isinstance(dgp, DGP):
            codes = np.concatenate(list(_batched(self.codes, dgp.draw, rng, size, runs)))
        else:
            codes = np.array([CODES[self.decide(**dgp(rng, size)).verdict] for _ in range(runs)])
        return {**{verdict: float(np.mean(codes == code)) for code, verdict in VERDICTS.items()}, "runs": int(runs)}

    def profile(self, profile: str | Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(profile, str):
            if profile not in self.profiles:
                raise KeyError(f"rule {self.id} has no profile {profile!r}; it has {sorted(self.profiles)}")
            return dict(self.profiles[profile])
        return {**self.profiles["quick"], **dict(profile)}

    def card(self, runs: int = 1000, seed: int = 0) -> dict[str, Any]:
        """The rule's card: claim, rule, inputs, and per DGP and profile the fraction of each verdict,
        the error rate (false "reproduced" under a null, false "not reproduced" where the claim
        holds) against the design's 5 % plus Monte Carlo error, the power at the paper's effect, and
        the median detectable effect."""
        runs = max(50, int(runs / self.cost))
        rows = []
        for p, (profile_name, _) in enumerate(self.profiles.items()):
            for d, (name, dgp) in enumerate(self.dgps.items()):
                rates = self.simulate(dgp, profile_name, runs=runs, seed=seed + 1000 * p + d)
                error = rates["reproduced"] if dgp.truth == "null" else rates["not reproduced"]
                rows.append({"profile": profile_name, "dgp": name, "truth": dgp.truth, "paper": dgp.paper,
                             "description": dgp.description, **{k: rates[k] for k in VERDICTS.values()},
                             "error": error, "error_kind": "false reproduced" if dgp.truth == "null"
                             else "false not reproduced",
                             "within_design": error <= tolerance(DESIGN_RATE, runs)})
        power = {r["profile"]: r["reproduced"] for r in rows if r["paper"]}
        return {"id": self.id, "claim": self.claim, "rule": self.text, "inputs": dict(self.inputs),
                "settings": _settings(self.decide_one), "profiles": {k: _plain(v) for k, v in self.profiles.items()},
                "runs": runs, "seed": seed, "design_rate": DESIGN_RATE, "tolerance": tolerance(DESIGN_RATE, runs),
                "simulations": rows, "power_at_paper_effect": power,
                "detectable_effect": self._detectable(seed), "notes": self.notes}

    def _detectable(self, seed: int) -> dict[str, Any]:
        """Median detectable effect per profile, over decisions on the paper DGP's runs."""
        paper = next((d for d in self.dgps.values() if d.paper), None)
        if self.detectable is None or paper is None:
            return {}
        out = {}
        for name in self.profiles:
            size = self.profile(name)
            batch = paper.draw(np.random.default_rng(seed), size, 25)
            values = [self.detectable(self.decide(**one_run(batch, i)).numbers) for i in range(25)]
            finite = [float(v) for v in values if v is not None and np.isfinite(v)]
            out[name] = float(np.median(finite)) if finite else None
        return out


def _batched(codes: Callable[..., np.ndarray], draw: Draw, rng: np.random.Generator, size: Mapping[str, Any],
             runs: int, chunk: int = 500) -> Iterator[np.ndarray]:
    """Simulate in chunks of ``chunk`` runs, so memory stays bounded at any number of runs."""
    done = 0
    while done < runs:
        n = min(chunk, runs - done)
        yield np.asarray(codes(**draw(rng, size, n))).reshape(n)
        done += n


def one_run(batch: Mapping[str, Any], i: int) -> dict[str, Any]:
    """Run ``i`` of a batch drawn by a :class:`DGP` (arrays lose their leading axis, settings pass)."""
    return {k: (v[i] if isinstance(v, np.ndarray) and v.ndim >= 1 else v) for k, v in batch.items()}


def _settings(function: Callable[..., Any]) -> dict[str, Any]:
    """The keyword settings of a decision function and their shipped defaults."""
    import inspect

    return {name: _plain(p.default) for name, p in inspect.signature(function).parameters.items()
            if p.kind is p.KEYWORD_ONLY and p.default is not p.empty}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def tolerance(p: float, runs: int) -> float:
    """A rate designed to be at most ``p``, accepted up to ``p + 2·√(p(1 − p)/runs)`` (Monte Carlo)."""
    return p + 2 * math.sqrt(p * (1 - p) / runs)


def noise(rng: np.random.Generator, kind: str, size: Any) -> np.ndarray:
    """Unit-variance noise of a kind the DGPs share: ``"normal"``, or ``"t3"`` (Student t with 3
    degrees of freedom, heavy-tailed, scaled to variance 1)."""
    if kind == "normal":
        return rng.standard_normal(size)
    if kind == "t3":
        return rng.standard_t(3, size) / math.sqrt(3.0)
    raise ValueError(f"unknown noise {kind!r}: 'normal' or 't3'")


def json_number(value: Any) -> float | None:
    """``value`` as a JSON number for a decision's numbers: ``None`` for NaN and ±inf, which JSON
    lacks (``json.dumps(..., allow_nan=False)`` would refuse them)."""
    value = float(value)
    return value if math.isfinite(value) else None


def verdict_of(code: Any) -> str:
    """The verdict a code stands for (1, −1 or 0, any integer type: :data:`VERDICTS`)."""
    return VERDICTS[int(code)]


def vader_compound(raw: np.ndarray) -> np.ndarray:
    """VADER's compound from its raw valence sum ``s``: ``s / √(s² + 15)``, rounded to 4 decimals as
    vaderSentiment does (``SentimentIntensityAnalyzer.polarity_scores``)."""
    raw = np.asarray(raw, dtype=float)
    return np.round(raw / np.sqrt(raw**2 + 15.0), 4)


REGISTRY: dict[str, Rule] = {}
"""Every verdict rule of every study, by id (``"collision.dominance"``, ...)."""


def register(rule: Rule) -> Rule:
    if rule.id in REGISTRY:
        raise ValueError(f"rule {rule.id!r} is registered twice")
    if not any(d.truth == "null" for d in rule.dgps.values()) or not any(d.truth == "effect" for d in rule.dgps.values()):
        raise ValueError(f"rule {rule.id!r} needs at least one null DGP and one effect DGP")
    if sum(d.paper for d in rule.dgps.values()) != 1:
        raise ValueError(f"rule {rule.id!r}: exactly one DGP must be marked paper=True (its power is reported)")
    if set(rule.profiles) < {"quick", "full"}:
        raise ValueError(f"rule {rule.id!r} must have the shipped 'quick' and 'full' profiles")
    REGISTRY[rule.id] = rule
    return rule


__all__ = ["CODES", "DESIGN_RATE", "DGP", "REGISTRY", "VERDICTS", "Decision", "Rule", "json_number", "noise", "one_run",
           "register", "tolerance", "vader_compound", "verdict_of"]
