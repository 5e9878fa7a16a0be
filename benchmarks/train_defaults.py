"""Validation runs behind the default ``train:`` block and family sizes (docs/training.md).

Every neural family (and logreg as the reference) is trained through the pipeline's own
``run_annotation`` on two datasets of different size: scanpy's pbmc68k (the default config's
entry: 700 cells, 128 HVGs, 10 types) and a planted regulatory dataset
(:func:`scgraphbench.data.synthetic.planted_regulatory_adata`: cell types written into TF
modules, the GRN as a TRRUST file). Each *arm* is one setting (train overrides and family
parameter overrides); each run records validation and test macro-F1, whether it collapsed,
its epochs and its training time. Defaults are chosen on the validation columns only.

    python benchmarks/train_defaults.py --arm default --out-dir results/benchmarks/train_defaults
    python benchmarks/train_defaults.py --arm lr1e-3 --train '{"lr": 1e-3}' ...
    python benchmarks/train_defaults.py --summarise --out-dir results/benchmarks/train_defaults

Outputs in --out-dir: ``runs.csv`` (one row per run, every arm; rows of a re-run arm are
replaced) and, with ``--summarise``, ``summary.csv``/``summary.json`` (mean and std over
seeds per arm, dataset, family and graph, with each family's share of logreg's macro-F1).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
NEURAL = ["mlp", "transformer", "performer", "longformer", "bigbird", "diffuser",
          "masked_attention", "genohoption_ppr", "genohoption_heat", "gnn_gcn", "gnn_gat",
          "gnn_sage"]
GRAPH_FREE = {"logreg", "mlp", "transformer", "performer", "longformer"}
# the graph each dataset's graph families use: the config's co-expression graph on pbmc68k,
# the planted GRN (a TRRUST file, as a user would bring it) on the planted set
MAIN_GRAPH = {"pbmc68k": "coexpr", "planted": "grn", "planted_small": "grn"}
PLANTED = {"planted": {}, "planted_small": {"n_cells": 480, "n_genes": 400, "n_tfs": 10,
                                             "n_decoy_tfs": 4, "module_size": 16}}


def prepare(work: Path, dataset: str, config: dict[str, Any]) -> dict[str, str]:
    """Prepared h5ad and graph files of ``dataset`` under ``work`` (made once, then reused)."""
    from scgraphbench.data.datasets import prepare_dataset
    from scgraphbench.graphs.build import build_variant
    from scgraphbench.graphs.databases import fetch_database

    d = work / dataset
    d.mkdir(parents=True, exist_ok=True)
    h5ad = d / "prepared.h5ad"
    paths = {"prepared": str(h5ad)}
    if dataset == "pbmc68k":
        spec = config["datasets"]["pbmc68k"]
        graphs = {"coexpr": config["graphs"]["coexpr"],
                  "random_coexpr": config["graphs"]["random_coexpr"]}
    else:
        from scgraphbench.data.synthetic import planted_grn, shuffled_grn, write_trrust

        params = PLANTED[dataset]
        spec = {"source": "synthetic_planted", "task": "annotation", "params": params,
                "n_top_genes": None, "val_fraction": 0.15, "test_fraction": 0.2, "seed": 0}
        tables = {}
        for name, grn in (("planted_grn", planted_grn(**params)),
                          ("shuffled_grn", shuffled_grn(planted_grn(**params), seed=0))):
            tsv = write_trrust(grn, d / f"{name}.tsv")
            tables[name] = d / f"{name}.csv.gz"
            if not tables[name].exists():
                fetch_database(name, {"source": "file", "path": str(tsv), "format": "trrust"},
                               tables[name])
        graphs = {"grn": {"kind": "grn", "databases": ["planted_grn"]},
                  "shuffled_grn": {"kind": "grn", "databases": ["shuffled_grn"]},
                  "random_grn": {"kind": "random", "base": "grn", "seed": 0}}
    if not h5ad.exists():
        adata = prepare_dataset(dataset, spec)
        adata.write_h5ad(h5ad)
    import anndata as ad

    adata = ad.read_h5ad(h5ad)
    for name, gspec in graphs.items():
        out = d / f"{name}.npz"
        paths[name] = str(out)
        if out.exists():
            continue
        dbs = {db: tables[db] for db in gspec.get("databases", [])} or None
        base = d / f"{gspec['base']}.npz" if gspec.get("kind") == "random" else None
        g = build_variant(adata, name, gspec, databases=dbs, base=base)
        g.save(out)
    return paths


def collapse_fields(run_dir: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """What the benchmark reads about collapse, also for runs made before the pipeline
    reported it: classes predicted on test cells, epochs at the class prior."""
    pred = pd.read_csv(run_dir / "predictions.csv")["pred"]
    n_classes = int(metrics["n_classes"])
    history = metrics.get("history") or []
    prior = math.log(n_classes)
    at_prior = sum(abs(h["train_loss"] - prior) < 0.05 * prior for h in history)
    return {
        "n_pred_classes": int(pred.nunique()),
        "epochs_at_prior": int(at_prior),
        "collapsed": bool(metrics.get("collapsed", pred.nunique() <= 1)),
        "collapse_reason": metrics.get("collapse_reason", ""),
    }


def one_run(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    from scgraphbench.train.run import run_annotation

    run_dir = Path(job["run_dir"])
    t0 = time.perf_counter()
    m = run_annotation(job["prepared"], job["graph_path"], job["family"], job["params"],
                       job["train"], job["seed"], str(run_dir))
    wall = time.perf_counter() - t0
    row = {k: job[k] for k in ("arm", "dataset", "family", "graph", "seed")}
    row.update({
        "val_macro_f1": m.get("best_val_score", float("nan")),
        "macro_f1": m["macro_f1"],
        "accuracy": m["accuracy"],
        "epochs_run": m.get("epochs_run", 1),
        "best_epoch": m.get("best_epoch", 0),
        "train_time_s": m["train_time_s"],
        "time_per_step_s": m["time_per_step_s"],
        "wall_s": wall,
        "params": json.dumps(job["params"], sort_keys=True),
        "train": json.dumps(job["train"], sort_keys=True),
    })
    if job["family"] == "logreg":  # validation score of the sklearn baseline, for reference
        row["val_macro_f1"] = float("nan")
    row.update(collapse_fields(run_dir, m))
    (run_dir / "checkpoint.pt").unlink(missing_ok=True)
    return row


def jobs_for(args: argparse.Namespace, config: dict[str, Any], paths: dict[str, dict]) -> list:
    train = {**config["train"], **json.loads(args.train)}
    overrides = json.loads(args.params)
    jobs = []
    for dataset in args.datasets:
        for family in args.families:
            params = dict(config["models"][family].get("params") or {})
            params.update(overrides.get("*", {}) if family != "logreg" and family != "mlp"
                          else {})
            params.update(overrides.get(family, {}))
            graphs = ["none"] if family in GRAPH_FREE else [MAIN_GRAPH[dataset]]
            if family in args.control_families and dataset in PLANTED:
                graphs += ["random_grn", "shuffled_grn"]
            if family in args.control_families and dataset == "pbmc68k":
                graphs += ["random_coexpr"]
            for graph in graphs:
                for seed in args.seeds:
                    jobs.append({
                        "arm": args.arm, "dataset": dataset, "family": family, "graph": graph,
                        "seed": seed, "params": params, "train": train,
                        "prepared": paths[dataset]["prepared"],
                        "graph_path": None if graph == "none" else paths[dataset][graph],
                        "run_dir": str(Path(args.work) / "runs" / args.arm / dataset / family
                                       / graph / f"seed{seed}"),
                    })
    return jobs


def summarise(out_dir: Path) -> pd.DataFrame:
    runs = pd.read_csv(out_dir / "runs.csv")
    keys = ["arm", "dataset", "family", "graph"]
    agg = runs.groupby(keys).agg(
        val_macro_f1=("val_macro_f1", "mean"), val_macro_f1_std=("val_macro_f1", "std"),
        macro_f1=("macro_f1", "mean"), macro_f1_std=("macro_f1", "std"),
        collapsed=("collapsed", "sum"), seeds=("seed", "nunique"),
        epochs_run=("epochs_run", "mean"), best_epoch=("best_epoch", "mean"),
        train_time_s=("train_time_s", "mean"), time_per_step_s=("time_per_step_s", "median"),
    ).reset_index()
    ref = runs[runs.family == "logreg"].groupby(["arm", "dataset"])["macro_f1"].mean()
    agg["share_of_logreg"] = [
        r.macro_f1 / ref.get((r.arm, r.dataset), np.nan) for r in agg.itertuples()
    ]
    agg.round(4).to_csv(out_dir / "summary.csv", index=False)
    (out_dir / "summary.json").write_text(json.dumps(agg.round(4).to_dict("records"), indent=1))
    return agg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    ap.add_argument("--arm", default="default", help="name of this setting in the outputs")
    ap.add_argument("--train", default="{}", help="JSON overrides of the config's train block")
    ap.add_argument("--params", default="{}",
                    help='JSON {family|"*": {param: value}} overrides of family params '
                         '("*": every token family)')
    ap.add_argument("--datasets", nargs="+", default=["pbmc68k", "planted"],
                    choices=["pbmc68k", *PLANTED])
    ap.add_argument("--families", nargs="+", default=["logreg", *NEURAL])
    ap.add_argument("--control-families", nargs="*", default=["genohoption_ppr", "gnn_gcn"],
                    help="families also run on the degree-matched random / shuffled graphs")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel, one thread each")
    ap.add_argument("--work", default="/tmp/scgb_train_defaults",
                    help="prepared data, graphs and run folders")
    ap.add_argument("--out-dir", default=str(REPO / "results" / "benchmarks" / "train_defaults"))
    ap.add_argument("--summarise", action="store_true", help="only write summary.csv/json")
    args = ap.parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.summarise:
        print(summarise(out_dir).to_string(index=False))
        return 0
    config = yaml.safe_load(Path(args.config).read_text())
    work = Path(args.work)
    paths = {d: prepare(work, d, config) for d in args.datasets}
    jobs = jobs_for(args, config, paths)
    shutil.rmtree(work / "runs" / args.arm, ignore_errors=True)
    rows = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for row in pool.map(one_run, jobs):
            rows.append(row)
            print(f"{row['dataset']:>8} {row['family']:>17} {row['graph']:>13} s{row['seed']} "
                  f"val {row['val_macro_f1']:.3f} test {row['macro_f1']:.3f} "
                  f"ep {row['epochs_run']}/{row['best_epoch']} "
                  f"{'COLLAPSED ' if row['collapsed'] else ''}{row['train_time_s']:.1f}s",
                  flush=True)
    new = pd.DataFrame(rows)
    csv = out_dir / "runs.csv"
    if csv.exists():
        old = pd.read_csv(csv)
        new = pd.concat([old[old.arm != args.arm], new], ignore_index=True)
    new.to_csv(csv, index=False)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
