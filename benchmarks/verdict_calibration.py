"""Type-I error and power of the claims table's verdict rules, on simulated runs tables.

For every scenario of scgraphbench.report.calibration.PAPER_SCENARIOS (each kind of claim
the source papers make, under its nulls and at the papers' effect sizes) the share of
simulated tables that get each verdict, with its Monte-Carlo SE; the Holm family of six
null comparisons against the rule it replaced (the smallest raw p of the family); and how
much noise a number of replicates can handle: the largest paired-difference SD at which
an effect of the paper's size is 'supported' in >= 80% of tables, and the power at 1x,
1.5x and 2x the assumed noise for 3 to 20 replicates.

Outputs in --out-dir: verdict_calibration.json (settings, every number) and
verdict_calibration.csv (one row per scenario).

    python benchmarks/verdict_calibration.py --out-dir results/benchmarks/verdicts
    python benchmarks/verdict_calibration.py --quick --out-dir /tmp/verdicts
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import time

import numpy as np
from scipy import stats

from scgraphbench.report.calibration import (
    ACCURACY,
    PAPER_SCENARIOS,
    PRIOR_BEATS_RANDOM,
    NoiseModel,
    family_rates,
    max_noise_for_power,
    mc_bound,
    scenario_rates,
    simulate_arms,
)
from scgraphbench.report.inference import CONTRADICTED, SUPPORTED

ALPHA = 0.05


def scenario_table(n_tables: int, n_units: int, seed: int) -> list[dict]:
    rows = []
    for k, sc in enumerate(PAPER_SCENARIOS):
        shares = scenario_rates(sc, n_tables, n_units, seed + k)
        rate = shares[sc.verdict]
        if sc.check == "null":
            mc_se = math.sqrt(ALPHA * (1 - ALPHA) / n_tables)
            passed = rate <= mc_bound(ALPHA, n_tables)
        else:
            mc_se = math.sqrt(max(rate * (1 - rate), 1e-12) / n_tables)
            passed = rate >= 0.8
        rows.append({"scenario": sc.name, "kind": sc.hypothesis.kind, "check": sc.check,
                     "verdict": sc.verdict, "rate": rate, "mc_se": mc_se, "passed": passed,
                     "noise_diff_sd": sc.noise.diff_sd, "true_effect": sc.effect,
                     "n_units": n_units, "n_tables": n_tables,
                     **{f"share_{v.replace(' ', '_')}": s for v, s in shares.items()}})
        print(f"{sc.name:52s} {sc.verdict:12s} {rate:.4f} ± {mc_se:.4f}", flush=True)
    return rows


def holm_family(n_tables: int, n_units: int, seed: int) -> dict:
    """Six null comparisons (3 models x 2 graphs vs their random controls)."""
    rng = np.random.default_rng(seed)
    arms = [simulate_arms(rng, ACCURACY, 0.0, n_tables, n_units) for _ in range(6)]
    shares = family_rates([PRIOR_BEATS_RANDOM] * 6, arms)
    d = np.stack([a - b for a, b in arms])
    p = stats.ttest_1samp(d, 0.0, axis=2).pvalue
    old = float(np.mean((d.mean(axis=(0, 2)) > 0) & (p.min(axis=0) < ALPHA)))
    out = {"holm_headline_supported": shares[SUPPORTED],
           "holm_headline_contradicted": shares[CONTRADICTED],
           "old_min_raw_p_reproduced": old, "n_tables": n_tables, "bound": mc_bound(
               ALPHA, n_tables)}
    print(f"Holm family of 6 nulls: supported {shares[SUPPORTED]:.4f}, contradicted "
          f"{shares[CONTRADICTED]:.4f}; old min-raw-p rule {old:.4f}", flush=True)
    return out


def noise_limits(n_tables: int, units: list[int], seed: int) -> list[dict]:
    rows = []
    for sc in (s for s in PAPER_SCENARIOS if s.check == "power"):
        for n in units:
            limit = max_noise_for_power(sc.hypothesis, sc.noise, sc.effect, n,
                                        n_tables=n_tables, seed=seed)
            rows.append({"scenario": sc.name, "n_units": n, "max_diff_sd_for_80pct": limit,
                         "assumed_diff_sd": sc.noise.diff_sd})
            print(f"{sc.name:52s} n={n:2d}: 80% power up to diff SD {limit:.4g} "
                  f"(assumed {sc.noise.diff_sd:g})", flush=True)
    return rows


def power_grid(n_tables: int, units: list[int], factors: list[float], seed: int
               ) -> list[dict]:
    rows = []
    for sc in (s for s in PAPER_SCENARIOS if s.check == "power"):
        for f in factors:
            noise = NoiseModel(sc.noise.base, sc.noise.diff_sd * f, sc.noise.split_sd,
                               sc.noise.log)
            for n in units:
                shares = scenario_rates(dataclasses.replace(sc, noise=noise), n_tables, n,
                                        seed)
                rows.append({"scenario": sc.name, "noise_factor": f,
                             "diff_sd": noise.diff_sd, "n_units": n,
                             "supported": shares[SUPPORTED]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default="results/benchmarks/verdicts")
    parser.add_argument("--tables", type=int, default=4000)
    parser.add_argument("--units", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="500 tables, fewer grid points")
    args = parser.parse_args()
    n_tables = 500 if args.quick else args.tables
    units = [3, 5, 10] if args.quick else [3, 4, 5, 6, 8, 10, 15, 20]
    factors = [1.0, 2.0] if args.quick else [1.0, 1.5, 2.0]
    os.makedirs(args.out_dir, exist_ok=True)
    t0 = time.time()
    scenarios = scenario_table(n_tables, args.units, args.seed)
    family = holm_family(n_tables, args.units, args.seed + 1000)
    limits = noise_limits(min(n_tables, 2000), [u for u in units if u in (3, 5, 10, 20)],
                          args.seed + 2000)
    grid = power_grid(min(n_tables, 2000), units, factors, args.seed + 3000)
    result = {"settings": {"alpha": ALPHA, "n_tables": n_tables, "n_units": args.units,
                           "seed": args.seed, "power_target": 0.8,
                           "noise_models": {sc.name: dataclasses.asdict(sc.noise)
                                            for sc in PAPER_SCENARIOS}},
              "scenarios": scenarios, "holm_family": family, "noise_limits": limits,
              "power_grid": grid, "seconds": round(time.time() - t0, 1)}
    with open(os.path.join(args.out_dir, "verdict_calibration.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    with open(os.path.join(args.out_dir, "verdict_calibration.csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(scenarios[0]))
        writer.writeheader()
        writer.writerows(scenarios)
    print(f"wrote {args.out_dir} in {result['seconds']} s")


if __name__ == "__main__":
    main()
