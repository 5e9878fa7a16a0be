"""Compute estimate for a configuration: jobs x steps x measured cost per step.

The cost model per family is a power law fit to measured training steps,
``seconds_per_step = a * (n_genes / 1000) ** p`` at batch 32, from the scaling study
(``results/benchmarks/scaling.csv``); the config records the fitted values and the device
they were measured on, so a dry run can print the estimate without running anything.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def fit_cost_model(scaling: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per family: least-squares fit of log(time per step) against log(n_genes / 1000)."""
    ok = scaling[scaling["status"] == "ok"]
    model = {}
    for family, d in ok.groupby("family"):
        d = d.groupby("n_genes", as_index=False)["time_per_step_s"].median()
        x = np.log(d["n_genes"].to_numpy() / 1000.0)
        y = np.log(d["time_per_step_s"].to_numpy())
        if len(d) >= 2:
            p, log_a = np.polyfit(x, y, 1)
        else:
            p, log_a = 1.0, float(y[0] - x[0])
        model[str(family)] = {"seconds_at_1000_genes": float(math.exp(log_a)),
                              "exponent": float(p)}
    return model


def estimate_jobs(jobs: list[dict[str, Any]], cost_model: dict[str, dict[str, float]],
                  default: dict[str, float] | None = None) -> pd.DataFrame:
    """Hours per job. Each job: family, n_genes, n_train_cells, epochs, batch_size."""
    rows = []
    for job in jobs:
        c = cost_model.get(job["family"]) or default
        if c is None:
            rows.append({**job, "hours": math.nan})
            continue
        per_step = c["seconds_at_1000_genes"] * (job["n_genes"] / 1000.0) ** c["exponent"]
        # the model's batch size scales step cost linearly from the measured batch of 32
        per_step *= job["batch_size"] / 32.0
        steps = job["epochs"] * math.ceil(job["n_train_cells"] / job["batch_size"])
        rows.append({**job, "hours": per_step * steps / 3600.0})
    return pd.DataFrame(rows)


def summary_text(table: pd.DataFrame, device: str) -> str:
    if table.empty:
        return "Compute estimate: no training jobs."
    known = table["hours"].notna()
    by_family = table[known].groupby("family")["hours"].sum().sort_values(ascending=False)
    lines = [f"Compute estimate: {len(table)} training jobs, "
             f"at most {table.loc[known, 'hours'].sum():.1f} hours on {device} "
             "(every job running all its epochs; early stopping ends most sooner)."]
    lines += [f"  {fam:<22} {h:8.1f} h" for fam, h in by_family.items()]
    if (~known).any():
        missing = sorted(table.loc[~known, "family"].unique())
        lines.append(f"  no measured cost for: {', '.join(missing)}")
    return "\n".join(lines)
