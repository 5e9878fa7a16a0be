"""The graph-attention kernel inside the pipeline's own training runs: speed and equality.

Every graph-attention family of the default config (GenoHoption PPR and heat, masked
attention, Longformer, BigBird, Diffuser) is trained through the pipeline's own
``run_annotation`` on the default annotation dataset (scanpy's pbmc68k, the default's split
and co-expression graph), once per kernel implementation (``SCGB_KERNEL_IMPL``: the
``torch_sparse`` reference, ``auto`` as the pipeline runs, ``fused`` forced), with the same
split and seed, one thread per run; and once more on the reference kernel with every nonzero
initial weight moved one float32 ulp (``torch_sparse_ulp``), the drift that round-off alone
causes. ``--genes`` repeats it at other HVG counts (each its own prepared dataset and
graph, fitted on its training cells as the pipeline does).

    python benchmarks/kernel_in_pipeline.py --out-dir results/benchmarks/kernel_in_pipeline
    python benchmarks/kernel_in_pipeline.py --genes 700 --impls torch_sparse auto \\
        --seeds 0 --train '{"epochs": 4}' --out-dir ...   # a larger graph, fewer epochs

Outputs in --out-dir:
- ``step_check.csv``: per reference run, one forward and backward of its trained model on a
  training batch with each kernel (and the reference in float64): the relative differences
  of the logits and gradients, and each kernel's float32 error against float64;
- ``runs.csv``: one row per run: the implementations that ran (recorded at every kernel
  call), time per step, validation and test scores, the training-loss history;
- ``comparison.csv``/``comparison.json``: per (genes, family, seed, implementation), the
  reference run's time per step over this one's (``speedup_vs_reference``), the differences
  in validation macro-F1, test macro-F1 and accuracy, the largest relative difference of the
  per-epoch training losses (first epoch and all epochs), and the share of test cells given
  the same label; ``summary.csv`` aggregates them over seeds, next to the reference's
  standard deviation of test macro-F1 over seeds (the scale the differences compare with).

Training in float32 is chaotic over many steps: two kernels that agree to float32 rounding on
one step (tests/test_fused_kernel.py) drift apart as round-off is amplified, so the first
epoch's loss is the closest check, and the final metrics are read against the
``torch_sparse_ulp`` arm's: a kernel that matches the reference to float32 round-off moves the
metrics as far as a one-ulp change of the initial weights does, and no further.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_defaults import GRAPH_FREE, MAIN_GRAPH, REPO, prepare  # noqa: E402

FAMILIES = ["genohoption_ppr", "genohoption_heat", "masked_attention", "longformer", "bigbird",
            "diffuser"]
REFERENCE_IMPL = "torch_sparse"
# the reference kernel from initial weights one float32 ulp away: how far round-off alone
# carries a training run (the scale "equal within float32 tolerance" is read against)
ULP_NULL = "torch_sparse_ulp"
IMPLS = [REFERENCE_IMPL, ULP_NULL, "auto", "fused"]
DATASET = "pbmc68k"


def one_run(job: dict[str, Any]) -> dict[str, Any]:
    """Train one (family, impl, seed) run in this worker process and record what ran."""
    import importlib

    import torch

    torch.set_num_threads(1)
    # the modules (the package's name ``graph_attention`` is the function)
    ga = importlib.import_module("scgraphbench.kernels.graph_attention")
    run_module = importlib.import_module("scgraphbench.train.run")
    os.environ["SCGB_KERNEL_IMPL"] = REFERENCE_IMPL if job["impl"] == ULP_NULL else job["impl"]

    chosen: Counter = Counter()
    choose, build = ga.choose_impl, run_module.build_family

    def recording(*args, **kwargs):  # count the implementation of every kernel call
        name = choose(*args, **kwargs)
        chosen[name] += 1
        return name

    def nudged(*args, **kwargs):  # the null arm: every nonzero initial weight one ulp up
        model = build(*args, **kwargs)
        with torch.no_grad():  # zeros stay: Adam would turn a 1e-45 gradient into a full step
            for p in model.parameters():
                p.copy_(torch.where(p != 0, torch.nextafter(p, torch.full_like(p, math.inf)), p))
        return model

    ga.choose_impl = recording
    if job["impl"] == ULP_NULL:
        run_module.build_family = nudged
    try:
        t0 = time.perf_counter()
        m = run_module.run(job["prepared"], job["graph_path"], job["family"], job["params"],
                           job["train"], job["seed"], job["run_dir"])
        wall = time.perf_counter() - t0
    finally:
        ga.choose_impl, run_module.build_family = choose, build
    if job["impl"] != REFERENCE_IMPL:  # the reference's is read by step_check, then removed
        Path(job["run_dir"], "checkpoint.pt").unlink(missing_ok=True)
    pred = pd.read_csv(Path(job["run_dir"]) / "predictions.csv")["pred"].astype(str).tolist()
    return {
        **{k: job[k] for k in ("genes", "family", "graph", "impl", "seed")},
        "impl_ran": ";".join(f"{k}:{v}" for k, v in sorted(chosen.items())),
        "time_per_step_s": m["time_per_step_s"],
        "train_time_s": m["train_time_s"],
        "wall_s": wall,
        "epochs_run": m.get("epochs_run"),
        "val_macro_f1": m["best_val_score"],
        "macro_f1": m["macro_f1"],
        "accuracy": m["accuracy"],
        "train_losses": json.dumps([h["train_loss"] for h in m.get("history", [])]),
        "predictions": json.dumps(pred),
    }


def step_check(job: dict[str, Any]) -> dict[str, Any]:
    """One forward and backward of the reference run's trained model (its last checkpoint)
    on the first training batch with each kernel in float32, and with the reference in
    float64: the largest relative difference of the logits and, for all gradients as one
    vector, their relative difference, fused vs reference, and each against float64 (how
    well float32 can do on this model at all). The kernel's own agreement inside a real
    model, before training amplifies it. The gradient of a ReLU network is discontinuous: a
    unit within round-off of 0 can fall on either side in either kernel, and the whole
    gradient then moves by ~1e-3 (seen once in 18 runs: one head unit at 2e-7 with the fused
    kernel, -1.3e-6 with the reference); the logits' error is the kernel's own."""
    import torch

    from scgraphbench.models.registry import build_family
    from scgraphbench.train.common import load_aligned_graph
    from scgraphbench.train.data import load_prepared
    from scgraphbench.train.task import make_task
    from scgraphbench.train.trainer import TrainConfig, seed_everything

    torch.set_num_threads(1)
    checkpoint = Path(job["run_dir"], "checkpoint.pt")
    weights = torch.load(checkpoint, map_location="cpu", weights_only=False)["model"]
    cfg = TrainConfig.from_dict(job["train"])
    seed_everything(job["seed"])
    task = make_task(load_prepared(job["prepared"]), job["prepared"], cfg, job["seed"])
    context = task.context(load_aligned_graph(job["graph_path"], task.genes))
    batch, target = next(iter(task.train_batches(0)))  # fixed by (seed, epoch)
    outputs = {}
    for impl, dtype in ((REFERENCE_IMPL, torch.float32), ("fused", torch.float32),
                        (REFERENCE_IMPL, torch.float64)):
        os.environ["SCGB_KERNEL_IMPL"] = impl
        seed_everything(job["seed"])
        model = build_family(job["family"], context, job["params"])
        model.load_state_dict(weights)
        model.to(dtype).train()
        inputs = {k: v.to(dtype) if v.is_floating_point() else v for k, v in batch.items()}
        torch.manual_seed(job["seed"])  # the same dropout masks for all three
        out = model(**inputs)
        task.loss(out, target).backward()
        grads = [p.grad.flatten().double() for p in model.parameters() if p.grad is not None]
        outputs[impl, dtype] = (out["logits"].detach().double(), torch.cat(grads))
    checkpoint.unlink()
    ref, fused = outputs[REFERENCE_IMPL, torch.float32], outputs["fused", torch.float32]
    exact = outputs[REFERENCE_IMPL, torch.float64]

    def rel(a, b) -> tuple[float, float]:
        return (float((a[0] - b[0]).abs().max() / b[0].abs().max()),
                float((a[1] - b[1]).norm() / b[1].norm()))

    (lf, gf), (lr, gr), (lx, gx) = rel(fused, ref), rel(ref, exact), rel(fused, exact)
    return {
        "genes": job["genes"], "family": job["family"], "seed": job["seed"],
        "logits_rel_diff": lf, "grad_rel_diff": gf,
        "reference_grad_rel_err_vs_float64": gr, "fused_grad_rel_err_vs_float64": gx,
        "reference_logits_rel_err_vs_float64": lr, "fused_logits_rel_err_vs_float64": lx,
        "grad_norm": float(exact[1].norm()),
    }


def compare(runs: pd.DataFrame) -> pd.DataFrame:
    """Each run against the reference implementation's run of the same genes, family, seed."""
    key = ["genes", "family", "seed"]
    ref = runs[runs.impl == REFERENCE_IMPL].set_index(key)
    rows = []
    for r in runs[runs.impl != REFERENCE_IMPL].itertuples():
        k = (r.genes, r.family, r.seed)
        if k not in ref.index:
            continue
        b = ref.loc[k]
        la, lb = np.array(json.loads(r.train_losses)), np.array(json.loads(b.train_losses))
        m = min(len(la), len(lb))
        rel = np.abs(la[:m] - lb[:m]) / np.maximum(np.abs(lb[:m]), 1e-12)
        pa, pb = json.loads(r.predictions), json.loads(b.predictions)
        rows.append({
            "genes": r.genes, "family": r.family, "seed": r.seed, "impl": r.impl,
            "impl_ran": r.impl_ran, "reference_ran": b.impl_ran,
            "time_per_step_s": r.time_per_step_s, "reference_time_per_step_s": b.time_per_step_s,
            "speedup_vs_reference": b.time_per_step_s / r.time_per_step_s,
            "d_val_macro_f1": r.val_macro_f1 - b.val_macro_f1,
            "d_macro_f1": r.macro_f1 - b.macro_f1,
            "d_accuracy": r.accuracy - b.accuracy,
            "loss_rel_diff_epoch1": float(rel[0]) if m else float("nan"),
            "loss_rel_diff_max": float(rel.max()) if m else float("nan"),
            "epochs_run": r.epochs_run, "reference_epochs_run": b.epochs_run,
            "same_test_labels": float(np.mean([x == y for x, y in zip(pa, pb, strict=True)])),
        })
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    ap.add_argument("--genes", nargs="+", type=int, default=[128],
                    help="HVG counts (pbmc68k has 765 genes)")
    ap.add_argument("--families", nargs="+", default=FAMILIES, choices=FAMILIES)
    ap.add_argument("--impls", nargs="+", default=IMPLS[:3], choices=IMPLS,
                    help="fused: forced (auto runs it too, on CPU)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--train", default="{}", help="JSON overrides of the config's train block")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel, one thread each")
    ap.add_argument("--work", default="/tmp/scgb_kernel_in_pipeline",
                    help="prepared data, graphs and run folders")
    ap.add_argument("--out-dir",
                    default=str(REPO / "results" / "benchmarks" / "kernel_in_pipeline"))
    args = ap.parse_args(argv)
    if REFERENCE_IMPL not in args.impls:
        ap.error(f"--impls must include the reference, {REFERENCE_IMPL}")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(Path(args.config).read_text())
    train = {**config["train"], "device": "cpu", "precision": "fp32", **json.loads(args.train)}
    jobs = []
    for genes in args.genes:
        cfg = copy.deepcopy(config)
        cfg["datasets"][DATASET]["n_top_genes"] = genes
        paths = prepare(Path(args.work) / f"genes{genes}", DATASET, cfg)
        for family in args.families:
            graph = "none" if family in GRAPH_FREE else MAIN_GRAPH[DATASET]
            for seed in args.seeds:
                for impl in args.impls:
                    jobs.append({
                        "genes": genes, "family": family, "graph": graph, "impl": impl,
                        "seed": seed, "params": dict(config["models"][family].get("params") or {}),
                        "train": train, "prepared": paths["prepared"],
                        "graph_path": None if graph == "none" else paths[graph],
                        "run_dir": str(Path(args.work) / "runs" / f"genes{genes}" / family
                                       / impl / f"seed{seed}"),
                    })
    rows = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for row in pool.map(one_run, jobs):
            rows.append(row)
            print(f"{row['genes']:>5} {row['family']:>17} {row['impl']:>12} s{row['seed']} "
                  f"ran {row['impl_ran']:<24} {row['time_per_step_s'] * 1e3:7.1f} ms/step "
                  f"val {row['val_macro_f1']:.4f} test {row['macro_f1']:.4f}", flush=True)
        refs = [job for job in jobs if job["impl"] == REFERENCE_IMPL]
        steps = pd.DataFrame(list(pool.map(step_check, refs)))
    steps.to_csv(out_dir / "step_check.csv", index=False)
    print(steps.to_string(index=False))
    runs = pd.DataFrame(rows)
    runs.to_csv(out_dir / "runs.csv", index=False)
    comparison = compare(runs)
    comparison.to_csv(out_dir / "comparison.csv", index=False)
    summary = comparison.groupby(["genes", "family", "impl"]).agg(
        impl_ran=("impl_ran", "first"),
        speedup_median=("speedup_vs_reference", "median"),
        speedup_min=("speedup_vs_reference", "min"),
        speedup_max=("speedup_vs_reference", "max"),
        max_abs_d_macro_f1=("d_macro_f1", lambda x: float(np.abs(x).max())),
        max_abs_d_val_macro_f1=("d_val_macro_f1", lambda x: float(np.abs(x).max())),
        max_loss_rel_diff_epoch1=("loss_rel_diff_epoch1", "max"),
        max_loss_rel_diff=("loss_rel_diff_max", "max"),
        min_same_test_labels=("same_test_labels", "min"),
        seeds=("seed", "nunique"),
    ).reset_index()
    # the scale the differences are read against: the reference's spread over seeds
    spread = runs[runs.impl == REFERENCE_IMPL].groupby(["genes", "family"])["macro_f1"].std()
    summary["reference_macro_f1_sd_over_seeds"] = [
        spread.get((r.genes, r.family), np.nan) for r in summary.itertuples()
    ]
    summary.to_csv(out_dir / "summary.csv", index=False)
    (out_dir / "comparison.json").write_text(json.dumps({
        "settings": {**vars(args), "train": train, "reference": REFERENCE_IMPL,
                     "dataset": DATASET, "load_avg_end": os.getloadavg()},
        "summary": summary.to_dict("records"),
        "runs": comparison.to_dict("records"),
    }, indent=1, default=str))
    print(summary.to_string(index=False))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
