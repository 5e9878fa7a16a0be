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

    adata = prepare_dataset(a.dataset, a.spec, inputs=a.inputs)
    with atomic_path(a.out, suffix=".h5ad") as tmp:
        adata.write_h5ad(tmp, compression="gzip")
    log.info("prepared %s: %d cells x %d genes -> %s", a.dataset, adata.n_obs, adata.n_vars, a.out)


def cmd_build_graph(a: argparse.Namespace) -> None:
    import anndata as ad

    from scgraphbench.graphs.build import build_variant, graph_stats
    from scgraphbench.graphs.io import save_graph
    from scgraphbench.io import write_json

    adata = ad.read_h5ad(a.prepared)
    A = build_variant(adata, a.variant, a.params)
    genes = list(adata.var_names)
    stats = {"variant": a.variant, **graph_stats(A, genes)}
    save_graph(a.out, A, genes)
    write_json(a.stats, stats)
    log.info("graph %s: %s", a.variant, stats)


def cmd_train(a: argparse.Namespace) -> None:
    from scgraphbench.train.run import run_annotation

    res = run_annotation(a.prepared, a.graph, a.family, a.params, a.train, a.seed, a.out_dir,
                         meta=a.meta)
    if res:
        log.info("%s seed %d: accuracy %.4f macro-F1 %.4f", a.family, a.seed, res["accuracy"],
                 res["macro_f1"])


def cmd_graph_table(a: argparse.Namespace) -> None:
    from scgraphbench.report.aggregate import graph_table

    graph_table(a.stats, a.out)


def cmd_aggregate(a: argparse.Namespace) -> None:
    from scgraphbench.report.aggregate import aggregate

    aggregate(a.metrics, a.out_dir)


def cmd_figures(a: argparse.Namespace) -> None:
    from scgraphbench.report.figures import annotation_figures

    annotation_figures(a.runs, a.out_dir)


def cmd_list_models(a: argparse.Namespace) -> None:
    from scgraphbench.models.registry import available

    print("\n".join(available()))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scgraphbench", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("prepare", help="prepare a dataset into the canonical h5ad")
    s.add_argument("--dataset", required=True)
    s.add_argument("--spec", type=_json, required=True, help="the dataset's config entry, JSON")
    s.add_argument("--inputs", nargs="*", default=None, help="downloaded files, if any")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("build-graph", help="build a gene graph variant from training cells")
    s.add_argument("--prepared", required=True)
    s.add_argument("--variant", required=True)
    s.add_argument("--params", type=_json, default={})
    s.add_argument("--out", required=True)
    s.add_argument("--stats", required=True)
    s.set_defaults(func=cmd_build_graph)

    s = sub.add_parser("train", help="train and evaluate one (family, seed)")
    s.add_argument("--prepared", required=True)
    s.add_argument("--graph", default=None)
    s.add_argument("--family", required=True)
    s.add_argument("--params", type=_json, default={})
    s.add_argument("--train", type=_json, default={})
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--meta", type=_json, default={},
                   help="labels stored in metrics.json (dataset, graph, study)")
    s.add_argument("--out-dir", required=True)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("graph-table", help="graph stats.json files -> graphs.csv/.md")
    s.add_argument("--stats", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_graph_table)

    s = sub.add_parser("aggregate", help="metrics.json files -> tables")
    s.add_argument("--metrics", nargs="+", required=True)
    s.add_argument("--out-dir", required=True)
    s.set_defaults(func=cmd_aggregate)

    s = sub.add_parser("figures", help="tables -> seaborn figures")
    s.add_argument("--runs", required=True, help="runs.csv written by aggregate")
    s.add_argument("--out-dir", required=True)
    s.set_defaults(func=cmd_figures)

    s = sub.add_parser("list-models", help="print the registered model families")
    s.set_defaults(func=cmd_list_models)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except ScgbError as e:
        print(f"scgraphbench {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0
