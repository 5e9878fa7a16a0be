"""Cost against sequence length from real training steps (the GenoHoption Fig. 4c analogue).

Each (model, n_genes) point runs in its own process (a fresh interpreter, or in a workflow
run a child of the fork server, which has only imported modules) so that peak memory is
not polluted by earlier points: synthetic cells, a random gene graph of fixed mean
degree, the family's real model, ``steps`` AdamW steps; median step time and peak memory
above baseline.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from scgraphbench.graphs.controls import uniform_random_graph
from scgraphbench.io import atomic_path
from scgraphbench.models.catalog import get_spec
from scgraphbench.models.registry import ModelContext, build_family
from scgraphbench.train.cost import PeakMemory, count_parameters
from scgraphbench.train.trainer import resolve_device


def measure_point(family: str, params: dict[str, Any], n_genes: int, batch_size: int = 32,
                  steps: int = 6, n_classes: int = 8, mean_degree: int = 20,
                  device: str = "auto", seed: int = 0) -> dict[str, Any]:
    """Median training-step time and peak memory of one family at one sequence length."""
    torch.manual_seed(seed)
    dev = resolve_device(device)
    ctx = ModelContext(task="annotation", n_genes=n_genes,
                       gene_names=[f"G{i}" for i in range(n_genes)], n_classes=n_classes,
                       graph=uniform_random_graph(
                           n_genes, min(n_genes * mean_degree, n_genes * (n_genes - 1)) // 2,
                           seed=seed),
                       seed=seed)
    model = build_family(family, ctx, params)  # the same factory as every run
    if get_spec(family).interface == "arrays":
        rng = np.random.default_rng(seed)
        X = rng.random((batch_size * steps, n_genes), dtype=np.float32)
        y = np.arange(len(X)) % n_classes
        with PeakMemory(dev) as mem:
            t0 = time.perf_counter()
            model.fit(X, y)
            total = time.perf_counter() - t0
        return {"time_per_step_s": total / steps, "peak_memory_mb": mem.peak_mb,
                "n_parameters": count_parameters(model)}
    model = model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(batch_size, n_genes, device=dev) * 3
    y = torch.randint(0, n_classes, (batch_size,), device=dev)
    times = []
    with PeakMemory(dev) as mem:
        for _ in range(steps + 2):  # two warm-up steps
            t0 = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x=x)["logits"], y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            times.append(time.perf_counter() - t0)
    return {"time_per_step_s": statistics.median(times[2:]), "peak_memory_mb": mem.peak_mb,
            "n_parameters": count_parameters(model)}


def run_scaling(models: dict[str, dict[str, Any]], n_genes: list[int], out_csv: str, *,
                batch_size: int = 32, steps: int = 6, reps: int = 1, timeout_s: float = 600,
                max_memory_mb: float | None = None, device: str = "auto") -> pd.DataFrame:
    """All (model, n) points, each in its own process; a point over the caps is recorded as
    skipped and larger n of that model are not attempted."""
    rows = []
    for name, spec in models.items():
        too_big = None
        for n in sorted(n_genes):
            for rep in range(reps):
                row = {"model": name, "family": spec["family"], "n_genes": n, "rep": rep}
                if too_big:
                    rows.append({**row, "status": f"skipped: {too_big}"})
                    continue
                arg = json.dumps({"family": spec["family"], "params": spec.get("params", {}),
                                  "n_genes": n, "batch_size": batch_size, "steps": steps,
                                  "device": device, "seed": rep})
                try:
                    res = subprocess.run([sys.executable, "-m", "scgraphbench", "scaling-point",
                                          "--spec", arg], capture_output=True, text=True,
                                         timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    too_big = f"over {timeout_s:.0f} s"
                    rows.append({**row, "status": f"skipped: {too_big}"})
                    continue
                if res.returncode != 0:
                    reason = (res.stderr.strip().splitlines() or ["failed"])[-1][:200]
                    too_big = reason
                    rows.append({**row, "status": f"failed: {reason}"})
                    continue
                point = json.loads(res.stdout.strip().splitlines()[-1])
                rows.append({**row, **point, "status": "ok"})
                if max_memory_mb and point["peak_memory_mb"] > max_memory_mb:
                    too_big = f"peak memory over {max_memory_mb:.0f} MB"
    table = pd.DataFrame(rows)
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    return table
