"""Command-line entry point: one subcommand per pipeline stage, so every stage also runs
outside Snakemake. JSON arguments carry config sections verbatim."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from scgraphbench.errors import ScgbError

log = logging.getLogger("scgraphbench")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}): {text[:80]}") from None


def cmd_prepare(a: argparse.Namespace) -> None:
    from scgraphbench.data.datasets import prepare_dataset
    from scgraphbench.io import atomic_path

    adata = prepare_dataset(a.dataset, {**a.spec, "replicate": a.replicate}, inputs=a.inputs,
                            root=a.root)
    adata.uns["scgraphbench"]["replicate"] = int(a.replicate)
    with atomic_path(a.out, suffix=".h5ad") as tmp:
        adata.write_h5ad(tmp, compression="gzip")
    log.info("prepared %s: %d cells x %d genes -> %s", a.dataset, adata.n_obs, adata.n_vars, a.out)


def cmd_download(a: argparse.Namespace) -> None:
    from scgraphbench.data.fetch import fetch_dataset
    from scgraphbench.data.registry import REGISTRY

    source = a.spec.get("source", a.dataset)
    if source not in REGISTRY:
        raise ScgbError(f"source '{source}' is not a downloadable dataset",
                        field=f"datasets.{a.dataset}.source", fix=f"use one of {sorted(REGISTRY)}")
    fetch_dataset(source, a.root, url=a.spec.get("url"), sha256=a.spec.get("sha256"),
                  manifest_name=a.dataset)


def cmd_build_graph(a: argparse.Namespace) -> None:
    import anndata as ad

    from scgraphbench.graphs.build import build_variant, database_paths
    from scgraphbench.io import write_json

    adata = ad.read_h5ad(a.prepared)
    g = build_variant(adata, a.variant, a.params,
                      databases=database_paths(a.databases) if a.databases else None,
                      base=a.base)
    g.save(a.out)
    write_json(a.stats, g.stats)
    log.info("graph %s: %d nodes, %d edges, mean degree %.2f", a.variant, g.stats["nodes"],
             g.stats["edges"], g.stats["mean_degree"])


def cmd_fetch_database(a: argparse.Namespace) -> None:
    from scgraphbench.graphs.databases import fetch_database

    fetch_database(a.name, a.spec, a.out, info=a.info, cache_dir=a.cache)


def cmd_make_planted(a: argparse.Namespace) -> None:
    from scgraphbench.data.synthetic import (
        PLANTED_GRN_KEYS,
        planted_grn,
        planted_regulatory_adata,
        shuffled_grn,
        write_trrust,
    )
    from scgraphbench.io import atomic_path

    adata = planted_regulatory_adata(**a.params)
    p = adata.uns["planted"]["params"]
    grn = planted_grn(**{k: p[k] for k in PLANTED_GRN_KEYS})
    with atomic_path(a.out, suffix=".h5ad") as tmp:
        adata.write_h5ad(tmp, compression="gzip")
    write_trrust(grn, a.grn)
    if a.shuffled_grn:
        write_trrust(shuffled_grn(grn, seed=a.shuffle_seed), a.shuffled_grn)
    log.info("planted dataset: %d cells x %d genes, %d types -> %s; GRN of %d edges -> %s",
             adata.n_obs, adata.n_vars, p["n_types"], a.out, len(grn), a.grn)


def cmd_fetch_checkpoint(a: argparse.Namespace) -> None:
    from scgraphbench.models.backbones.checkpoint import fetch_checkpoint

    manifest = fetch_checkpoint(a.spec, a.out)
    log.info("checkpoint %s: %d files -> %s", a.name or "", len(manifest), a.out)


def cmd_train(a: argparse.Namespace) -> None:
    from scgraphbench.train.run import run

    if a.family_module:
        from scgraphbench.models.catalog import register_module

        register_module(a.family_module)
    res = run(a.prepared, a.graph, a.family, a.params, a.train, a.seed, a.out_dir,
                       meta=a.meta, stop_after_epoch=a.stop_after_epoch,
                       reference_graph_path=a.reference_graph)
    if res is None:
        log.info("%s seed %d: stopped after epoch %d; run again to resume", a.family, a.seed,
                 a.stop_after_epoch)
    elif res["task"] == "perturbation":
        log.info("%s seed %d: pearson_delta %.4f pearson_delta_de %.4f mse %.4g", a.family,
                 a.seed, res["pearson_delta"], res["pearson_delta_de"], res["mse"])
    else:
        log.info("%s seed %d: accuracy %.4f macro-F1 %.4f", a.family, a.seed, res["accuracy"],
                 res["macro_f1"])


def cmd_graph_table(a: argparse.Namespace) -> None:
    from scgraphbench.graphs.table import graph_table

    graph_table(a.stats, a.out, graph_paths=a.graphs, overlap_out=a.overlap)


def cmd_aggregate(a: argparse.Namespace) -> None:
    from scgraphbench.io import read_json
    from scgraphbench.report.aggregate import aggregate

    aggregate(a.metrics, a.out, plan=read_json(a.plan) if a.plan else None)


def cmd_study(a: argparse.Namespace) -> None:
    from scgraphbench.io import read_json
    from scgraphbench.report.studies import run_study

    run_study(a.name, a.runs, read_json(a.plan) if a.plan else {}, a.table, a.figure,
              scaling_csv=a.scaling)


def cmd_claims(a: argparse.Namespace) -> None:
    from scgraphbench.report.claims import write_claims

    table = write_claims(a.runs, a.plan, a.out)
    print(table[["comparison", "n_pairs", "estimate", "p_adj", "verdict"]].to_string(index=False))


def cmd_summary(a: argparse.Namespace) -> None:
    from scgraphbench.report.summary import write_summary

    print(write_summary(a.plan, a.claims, a.runs, a.out, crossover_csv=a.crossover,
                        rst_out=a.rst, intro=a.intro))


def cmd_figures(a: argparse.Namespace) -> None:
    from scgraphbench.report.figures import write_figures

    write_figures(a.plan, a.runs, a.claims, a.out_dir, a.crossover, scaling_csv=a.scaling,
                  kernel_csv=a.kernel)


def load_config(path: str) -> dict[str, Any]:
    """A YAML config file, schema-checked (the schema Snakemake validates with)."""
    from scgraphbench.config import load_config as load

    return load(path)


def cmd_plan(a: argparse.Namespace) -> None:
    from scgraphbench.io import write_json
    from scgraphbench.plan import build_plan

    write_json(a.out, build_plan(a.config).to_json())


def cmd_validate_config(a: argparse.Namespace) -> None:
    from collections import Counter

    from scgraphbench.plan import build_plan

    try:
        plan = build_plan(load_config(a.configfile))
    except ScgbError as e:
        raise (e if e.path else e.at(a.configfile)) from None
    for message in plan.skipped:
        print(message)
    tasks = Counter(plan.task(d) for d in plan.main_datasets)
    print(f"{a.configfile}: valid. {len(plan.main_datasets)} datasets ({dict(tasks)}), "
          f"{len(plan.models)} models, {len(plan.runs)} training runs, "
          f"{len(plan.graph_builds())} graph builds, "
          f"{sum(c.table == 'claims' for c in plan.comparisons)} claim comparisons, "
          f"{sum(c.table == 'engine_check' for c in plan.comparisons)} engine-check "
          "comparisons.")


def cmd_scaling(a: argparse.Namespace) -> None:
    from scgraphbench.train.scaling import run_scaling

    cfg = a.settings
    run_scaling(a.models, cfg["n_genes"], a.out, batch_size=cfg.get("batch_size", 32),
                steps=cfg.get("steps", 6), reps=cfg.get("reps", 1),
                max_memory_mb=cfg.get("max_memory_mb"), device=cfg.get("device", "auto"))


def cmd_scaling_point(a: argparse.Namespace) -> None:
    from scgraphbench.train.scaling import measure_point

    print(json.dumps(measure_point(**a.spec)))


def cmd_fit_cost(a: argparse.Namespace) -> None:
    import pandas as pd
    import yaml

    from scgraphbench.report.estimate import fit_cost_model

    model = fit_cost_model(pd.read_csv(a.scaling))
    print(yaml.safe_dump({"estimate": {"device": a.device, "families": model}}, sort_keys=True))


def cmd_list_models(a: argparse.Namespace) -> None:
    from scgraphbench.models.registry import available

    print("\n".join(available()))


def cmd_forkserver(a: argparse.Namespace) -> None:
    from scgraphbench.forkserver import serve

    serve(a.socket, a.parent_pid)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scgraphbench", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("prepare", help="prepare a dataset into the canonical h5ad")
    s.add_argument("--dataset", required=True)
    s.add_argument("--spec", type=_json, required=True, help="the dataset's config entry, JSON")
    s.add_argument("--inputs", nargs="*", default=None, help="downloaded files, if any")
    s.add_argument("--root", default="resources/datasets",
                   help="where a registry dataset is fetched when no --inputs are given")
    s.add_argument("--replicate", type=int, default=0,
                   help="replicate r: the split drawn with seed + r (HVGs refit on its train)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("download", help="fetch a registry dataset (checksummed, resumable)")
    s.add_argument("--dataset", required=True, help="the config name of the dataset")
    s.add_argument("--spec", type=_json, default={},
                   help="the dataset's config entry, JSON (source, url, sha256)")
    s.add_argument("--root", default="resources/datasets")
    s.set_defaults(func=cmd_download)

    s = sub.add_parser("build-graph", help="build a gene graph variant from training cells")
    s.add_argument("--prepared", required=True)
    s.add_argument("--variant", required=True)
    s.add_argument("--params", type=_json, default={},
                   help="the variant's config entry (kind and parameters), JSON")
    s.add_argument("--databases", nargs="*", default=None,
                   help="database tables from fetch-database (kinds grn, both)")
    s.add_argument("--base", default=None, help="the base graph .npz (kind random)")
    s.add_argument("--out", required=True)
    s.add_argument("--stats", required=True)
    s.set_defaults(func=cmd_build_graph)

    s = sub.add_parser("fetch-database",
                       help="obtain a regulatory database and normalise it to a table")
    s.add_argument("--name", required=True)
    s.add_argument("--spec", type=_json, required=True, help="the databases.<name> entry, JSON")
    s.add_argument("--out", required=True, help="normalised table (.csv.gz)")
    s.add_argument("--info", default=None, help="provenance and counts (.json)")
    s.add_argument("--cache", default="resources/databases/raw", help="download folder")
    s.set_defaults(func=cmd_fetch_database)

    s = sub.add_parser("make-planted",
                       help="write a planted regulatory dataset (h5ad of raw counts, "
                            "obs['cell_type']) and its GRN as a TRRUST file (bring-your-own test)")
    s.add_argument("--params", type=_json, default={},
                   help="generator parameters, JSON (data.synthetic.PLANTED_DEFAULTS)")
    s.add_argument("--out", required=True, help="the dataset (.h5ad)")
    s.add_argument("--grn", required=True, help="the planted GRN (TRRUST TSV)")
    s.add_argument("--shuffled-grn", default=None,
                   help="also write a degree-matched shuffle of the GRN (TRRUST TSV)")
    s.add_argument("--shuffle-seed", type=int, default=0)
    s.set_defaults(func=cmd_make_planted)

    s = sub.add_parser("fetch-checkpoint",
                       help="download a pretrained backbone's checkpoint folder (checksummed)")
    s.add_argument("--name", default=None, help="the backbones.<name> key, for the log")
    s.add_argument("--spec", type=_json, required=True,
                   help="the backbones.<name> entry, JSON: {files: {name: {url, sha256, size}}}")
    s.add_argument("--out", required=True, help="checkpoint folder to create")
    s.set_defaults(func=cmd_fetch_checkpoint)

    s = sub.add_parser("train", help="train and evaluate one (family, seed)")
    s.add_argument("--prepared", required=True)
    s.add_argument("--graph", default=None)
    s.add_argument("--family", required=True)
    s.add_argument("--family-module", default=None,
                   help="the .py file or module defining a family outside the package")
    s.add_argument("--params", type=_json, default={})
    s.add_argument("--train", type=_json, default={})
    s.add_argument("--seed", type=int, default=0,
                   help="the run's effective seed (the workflow passes 1000 * replicate + seed)")
    s.add_argument("--meta", type=_json, default={},
                   help="labels stored in metrics.json (dataset, replicate, model, graph, "
                        "setting, seed)")
    s.add_argument("--out-dir", required=True)
    s.add_argument("--reference-graph", default=None,
                   help="graph .npz whose edges attention is checked against (default: the "
                        "dataset's ground-truth uns['grn'], if any)")
    s.add_argument("--stop-after-epoch", type=int, default=None,
                   help="stop after this (0-based) epoch as a kill would; rerun to resume")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("graph-table", help="graph stats.json files -> graphs.csv/.md")
    s.add_argument("--stats", nargs="*", default=[],
                   help="stats.json files (none: a config without graph models)")
    s.add_argument("--graphs", nargs="*", default=None,
                   help="graph .npz files <dataset>/<variant>.npz, for --overlap")
    s.add_argument("--overlap", default=None, help="pairwise edge Jaccard table (.csv)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_graph_table)

    s = sub.add_parser("plan", help="config (JSON) -> the plan: runs and comparisons (JSON)")
    s.add_argument("--config", type=_json, required=True, help="the whole config, JSON")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_plan)

    s = sub.add_parser("validate-config",
                       help="check a config completely (schema, families, parameters, graphs, "
                            "studies, baselines) without running anything")
    s.add_argument("configfile", nargs="?", default="config/config.yaml")
    s.set_defaults(func=cmd_validate_config)

    s = sub.add_parser("aggregate", help="metrics.json files -> runs.csv (one row per run)")
    s.add_argument("--plan", default=None, help="results/plan.json (labels the runs)")
    s.add_argument("--metrics", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_aggregate)

    s = sub.add_parser("study", help="runs.csv -> one study's table (CSV, Markdown) and figure")
    s.add_argument("--name", required=True)
    s.add_argument("--runs", required=True, help="runs.csv written by aggregate")
    s.add_argument("--plan", default=None,
                   help="results/plan.json: the comparisons to make (none: summaries only)")
    s.add_argument("--scaling", default=None, help="scaling.csv (the scaling study)")
    s.add_argument("--table", required=True)
    s.add_argument("--figure", required=True)
    s.set_defaults(func=cmd_study)

    s = sub.add_parser("claims", help="runs.csv -> the claims table with computed verdicts")
    s.add_argument("--runs", required=True)
    s.add_argument("--plan", required=True, help="results/plan.json")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_claims)

    s = sub.add_parser("summary", help="plan + claims + runs -> results/summary.md")
    s.add_argument("--plan", required=True)
    s.add_argument("--claims", required=True)
    s.add_argument("--runs", required=True)
    s.add_argument("--crossover", default=None, help="crossover.csv from `figures`")
    s.add_argument("--out", required=True)
    s.add_argument("--rst", default=None, help="also write it as the report's front page")
    s.add_argument("--intro", default=None, help="the workflow description (.rst) to keep")
    s.set_defaults(func=cmd_summary)

    s = sub.add_parser("figures", help="the frontier, crossover and verdict figures")
    s.add_argument("--plan", required=True)
    s.add_argument("--runs", required=True)
    s.add_argument("--claims", required=True)
    s.add_argument("--scaling", default=None, help="scaling.csv (the scaling study)")
    s.add_argument("--kernel", default=None, help="attention_cost.csv (kernel benchmark)")
    s.add_argument("--out-dir", required=True)
    s.add_argument("--crossover", required=True, help="table of the crossover points (.csv)")
    s.set_defaults(func=cmd_figures)

    s = sub.add_parser("scaling", help="time and memory of real training steps against n_genes")
    s.add_argument("--models", type=_json, required=True, help="{name: {family, params}}, JSON")
    s.add_argument("--settings", type=_json, required=True, help="the studies.scaling section")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_scaling)

    s = sub.add_parser("scaling-point", help="one (family, n_genes) point; prints JSON")
    s.add_argument("--spec", type=_json, required=True)
    s.set_defaults(func=cmd_scaling_point)

    s = sub.add_parser("fit-cost", help="scaling.csv -> the `estimate:` config block (YAML)")
    s.add_argument("--scaling", required=True)
    s.add_argument("--device", required=True, help="where scaling.csv was measured")
    s.set_defaults(func=cmd_fit_cost)

    s = sub.add_parser("list-models", help="print the registered model families")
    s.set_defaults(func=cmd_list_models)

    s = sub.add_parser("forkserver", help="preload the heavy imports once and fork a child "
                       "per workflow job (started by the Snakefile; docs/ARCHITECTURE.md)")
    s.add_argument("--socket", required=True, help="path of the Unix socket to listen on")
    s.add_argument("--parent-pid", type=int, required=True,
                   help="exit when this process (Snakemake) is gone")
    s.set_defaults(func=cmd_forkserver)
    return p


# What each subcommand writes: files (their folder is checked) and folders. A subcommand
# not listed here writes its --out, if it has one.
OUTPUT_FILES = {"build-graph": ("out", "stats"), "fetch-database": ("out", "info"),
                "graph-table": ("out", "overlap"), "study": ("table", "figure"),
                "summary": ("out", "rst"), "figures": ("crossover",),
                "validate-config": (), "list-models": (), "forkserver": ()}
OUTPUT_DIRS = {"train": ("out_dir",), "download": ("root",), "fetch-database": ("cache",),
               "figures": ("out_dir",)}


def check_outputs_writable(args: argparse.Namespace) -> None:
    """Fail in the first second, not after the work, when an output folder is read-only."""
    from pathlib import Path

    from scgraphbench.io import check_writable

    for name in OUTPUT_FILES.get(args.command, ("out",)):
        if isinstance(getattr(args, name, None), str):
            check_writable(Path(getattr(args, name)).parent)
    for name in OUTPUT_DIRS.get(args.command, ()):
        if isinstance(getattr(args, name, None), str):
            check_writable(getattr(args, name))


def main(argv: list[str] | None = None) -> int:
    from scgraphbench.io import storage_cause, storage_error

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        try:
            check_outputs_writable(args)
            args.func(args)
        except ScgbError:
            raise
        except Exception as e:  # a full or read-only disk outside io's writers: same message
            cause = storage_cause(e)
            if cause is None:
                raise
            raise storage_error(cause, cause.filename) from e
    except ScgbError as e:
        print(f"scgraphbench {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0
