"""Operating characteristics of the verdict rules, by simulating runs tables.

The noise model of one paired comparison over n units (unit = dataset x replicate split):

    b_u = base + s_u + e_Bu,    a_u = base + effect + s_u + e_Au,
    s_u ~ N(0, split_sd^2)  (the split's effect, shared by both arms: cancels in a - b),
    e_Au, e_Bu ~ N(0, diff_sd^2 / 2)  (each arm's own noise: SD(a - b) = diff_sd).

For costs (``log=True``) the same holds for log time / log memory and the arms are
``exp`` of it, so log(a/b) has SD ``diff_sd`` and ``effect`` is the log of the true ratio.
``PAPER_SCENARIOS`` lists, for each kind of claim the source papers make, the nulls under
which a verdict would be wrong and the planted effects of the papers' sizes. Used by
tests/test_inference.py (type-I error and power) and benchmarks/verdict_calibration.py
(the same at more tables, and how much noise n replicates can handle).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scgraphbench.report.inference import (
    CONTRADICTED,
    SUPPORTED,
    VERDICTS,
    Hypothesis,
    evaluate_family,
    family_verdict,
)


@dataclass(frozen=True)
class NoiseModel:
    """Noise of one metric: ``base`` is B's mean (log cost for ``log``), ``diff_sd`` the SD
    of the paired difference (of log(a/b) for ``log``), ``split_sd`` the SD of the per-unit
    effect both arms share."""

    base: float
    diff_sd: float
    split_sd: float
    log: bool = False


def simulate_arms(rng: np.random.Generator, noise: NoiseModel, effect: float, n_tables: int,
                  n_units: int) -> tuple[np.ndarray, np.ndarray]:
    """Arms A and B of ``n_tables`` simulated tables, each (n_tables, n_units)."""
    shape = (n_tables, n_units)
    split = rng.normal(0.0, noise.split_sd, shape)
    arm_sd = noise.diff_sd / math.sqrt(2.0)
    b = noise.base + split + rng.normal(0.0, arm_sd, shape)
    a = noise.base + effect + split + rng.normal(0.0, arm_sd, shape)
    return (np.exp(a), np.exp(b)) if noise.log else (a, b)


def verdict_rates(hyp: Hypothesis, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """The share of tables (rows of a, b) getting each verdict, one comparison per table."""
    verdicts = [evaluate_family([("claim", a[i], b[i], hyp)])[0]["verdict"]
                for i in range(a.shape[0])]
    return _shares(verdicts)


def family_rates(hyps: Sequence[Hypothesis], arms: Sequence[tuple[np.ndarray, np.ndarray]]
                 ) -> dict[str, float]:
    """The share of tables getting each headline verdict, for a family of comparisons:
    comparison j of table i is ``arms[j][0][i]`` vs ``arms[j][1][i]`` under ``hyps[j]``."""
    n_tables = arms[0][0].shape[0]
    verdicts = []
    for i in range(n_tables):
        items = [(f"c{j}", a[i], b[i], hyp) for j, (hyp, (a, b)) in enumerate(
            zip(hyps, arms, strict=True))]
        verdicts.append(family_verdict(evaluate_family(items)))
    return _shares(verdicts)


def _shares(verdicts: list[str]) -> dict[str, float]:
    v = np.asarray(verdicts)
    return {k: float(np.mean(v == k)) for k in VERDICTS}


def mc_bound(alpha: float, n_tables: int) -> float:
    """alpha plus three Monte-Carlo standard errors of a rate estimated from n_tables."""
    return alpha + 3.0 * math.sqrt(alpha * (1.0 - alpha) / n_tables)


def max_noise_for_power(hyp: Hypothesis, noise: NoiseModel, effect: float, n_units: int,
                        power: float = 0.8, n_tables: int = 2000, seed: int = 0,
                        iterations: int = 12) -> float:
    """The largest ``diff_sd`` at which ``supported`` comes out in at least ``power`` of
    the tables, for a true ``effect`` and ``n_units`` units (bisection; the same random
    draws at every noise level, so the rate falls smoothly as the noise grows)."""
    rng = np.random.default_rng(seed)
    z_split = rng.standard_normal((n_tables, n_units))
    z_a, z_b = rng.standard_normal((2, n_tables, n_units))

    def rate(diff_sd: float) -> float:
        arm = diff_sd / math.sqrt(2.0)
        shared = noise.base + noise.split_sd * z_split
        a, b = shared + effect + arm * z_a, shared + arm * z_b
        if noise.log:
            a, b = np.exp(a), np.exp(b)
        return verdict_rates(hyp, a, b)[SUPPORTED]

    low, high = 0.0, max(abs(effect), hyp.margin or 0.0)
    while rate(high) >= power:  # widen until the power is lost
        low, high = high, 2.0 * high
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if rate(mid) >= power else (low, mid)
    return low


# Noise of each metric (see the module docstring): paired-difference SD 0.0075 for accuracy
# / macro-F1 (between splits the metric moves by ~0.02, shared by both arms), 0.02 for
# Pearson on perturbation deltas, 0.1 for log time per step and log peak memory.
ACCURACY = NoiseModel(base=0.80, diff_sd=0.0075, split_sd=0.02)
PEARSON = NoiseModel(base=0.50, diff_sd=0.02, split_sd=0.05)
TIME = NoiseModel(base=math.log(0.05), diff_sd=0.1, split_sd=0.2, log=True)  # s / step
MEMORY = NoiseModel(base=math.log(2000.0), diff_sd=0.1, split_sd=0.2, log=True)  # MB

# The source papers' kinds of claim, as Hypotheses (A = the claimed model, B = its peer)
GENO_ACCURACY = Hypothesis("superiority", paper_value=0.0127)  # GenoHoption, +1.27% acc.
GENO_PEARSON = Hypothesis("superiority", paper_value=0.0386)  # +3.86% Pearson on deltas
COMPETITIVE = Hypothesis("equivalence", margin=0.02)  # GNNs competitive, within 2 points
NON_INFERIOR = Hypothesis("non_inferiority", margin=0.02)
COMPUTE = Hypothesis("ratio", direction="less", paper_value=(0.25, 0.5))  # 1/4-1/2 compute
MEMORY_RATIO = Hypothesis("ratio", direction="less", paper_value=0.125)  # 1/8 memory
PRIOR_BEATS_RANDOM = Hypothesis("superiority")  # a graph prior beats its random control


@dataclass(frozen=True)
class Scenario:
    """One simulated situation: the true ``effect`` (log ratio for costs) under ``noise``,
    and the ``verdict`` whose rate is checked: at most alpha (``null``: the verdict would
    be wrong) or at least 80% (``power``: the verdict is right, at the paper's size)."""

    name: str
    hypothesis: Hypothesis
    noise: NoiseModel
    effect: float
    verdict: str
    check: str  # "null" or "power"


PAPER_SCENARIOS = (
    Scenario("accuracy +1.27%, true Δ = 0", GENO_ACCURACY, ACCURACY, 0.0, SUPPORTED, "null"),
    Scenario("Pearson delta +3.86%, true Δ = 0", GENO_PEARSON, PEARSON, 0.0, SUPPORTED,
             "null"),
    Scenario("competitive ±0.02, true Δ = −0.02", COMPETITIVE, ACCURACY, -0.02, SUPPORTED,
             "null"),
    Scenario("competitive ±0.02, true Δ = +0.02", COMPETITIVE, ACCURACY, 0.02, SUPPORTED,
             "null"),
    Scenario("non-inferior by 0.02, true Δ = −0.02", NON_INFERIOR, ACCURACY, -0.02, SUPPORTED,
             "null"),
    Scenario("compute 1/4–1/2, true ratio 1", COMPUTE, TIME, 0.0, SUPPORTED, "null"),
    Scenario("memory 1/8, true ratio 1", MEMORY_RATIO, MEMORY, 0.0, SUPPORTED, "null"),
    Scenario("accuracy +1.27%, true Δ = +0.0127", GENO_ACCURACY, ACCURACY, 0.0127,
             CONTRADICTED, "null"),
    Scenario("Pearson delta +3.86%, true Δ = +0.0386", GENO_PEARSON, PEARSON, 0.0386,
             CONTRADICTED, "null"),
    Scenario("prior > random, true Δ = 0", PRIOR_BEATS_RANDOM, ACCURACY, 0.0, CONTRADICTED,
             "null"),
    Scenario("competitive ±0.02, true Δ = −0.02 (contra)", COMPETITIVE, ACCURACY, -0.02,
             CONTRADICTED, "null"),
    Scenario("non-inferior by 0.02, true Δ = −0.02 (contra)", NON_INFERIOR, ACCURACY, -0.02,
             CONTRADICTED, "null"),
    Scenario("compute 1/4–1/2, true ratio 0.5", COMPUTE, TIME, math.log(0.5), CONTRADICTED,
             "null"),
    Scenario("memory 1/8, true ratio 0.125", MEMORY_RATIO, MEMORY, math.log(0.125),
             CONTRADICTED, "null"),
    Scenario("accuracy +1.27%, true Δ = +0.0127 (power)", GENO_ACCURACY, ACCURACY, 0.0127,
             SUPPORTED, "power"),
    Scenario("Pearson delta +3.86%, true Δ = +0.0386 (power)", GENO_PEARSON, PEARSON, 0.0386,
             SUPPORTED, "power"),
    Scenario("competitive ±0.02, true Δ = 0 (power)", COMPETITIVE, ACCURACY, 0.0, SUPPORTED,
             "power"),
    Scenario("compute 1/4–1/2, true ratio 0.3 (power)", COMPUTE, TIME, math.log(0.3),
             SUPPORTED, "power"),
    Scenario("memory 1/8, true ratio 0.1 (power)", MEMORY_RATIO, MEMORY, math.log(0.1),
             SUPPORTED, "power"),
)


def scenario_rates(scenario: Scenario, n_tables: int, n_units: int, seed: int
                   ) -> dict[str, float]:
    """Verdict shares over ``n_tables`` simulated tables of ``scenario``."""
    a, b = simulate_arms(np.random.default_rng(seed), scenario.noise, scenario.effect,
                         n_tables, n_units)
    return verdict_rates(scenario.hypothesis, a, b)
