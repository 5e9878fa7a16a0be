"""The graph tables of the report: one row per built graph, and the edge overlap between a
dataset's variants (graphs stage outputs, so they live with the graphs stage)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scgraphbench.graphs.build import GENOHOPTION_PAPER_MEAN_DEGREE, edge_jaccard
from scgraphbench.graphs.io import align_graph, load_graph
from scgraphbench.io import read_json, write_table


def graph_unit(path: Path) -> tuple[str, int]:
    """(dataset, replicate) of a graph file ``<dataset>/rep<r>/<variant>.*``."""
    rep = path.parent.name
    if rep.startswith("rep") and rep[3:].isdigit():
        return path.parent.parent.name, int(rep[3:])
    return rep, 0


def graph_table(stats_paths: list[str], out: str, graph_paths: list[str] | None = None,
                overlap_out: str | None = None) -> pd.DataFrame:
    """One row per (dataset, replicate, variant) from the stats.json files of build_graph
    (none: a config whose models use no graph gets an empty table).

    Nested fields become dotted columns (``databases.<db>.hvg_fraction``, ``overlap.base``,
    ``params.top_h``); lists are left out. GenoHoption's reported mean degree stands beside
    ours for the datasets it reports (ms, myeloid, pancreas). With ``graph_paths`` and
    ``overlap_out``, the pairwise edge Jaccard between each dataset's variants is written too.
    """
    rows = []
    for p in stats_paths:
        st = read_json(p)
        dataset, replicate = graph_unit(Path(p))
        st.setdefault("dataset", dataset)
        st["replicate"] = replicate
        flat = pd.json_normalize(st, sep=".").iloc[0].to_dict()
        rows.append({k: v for k, v in flat.items() if not isinstance(v, (dict, list))})
    df = pd.DataFrame(rows, columns=None if rows else ["dataset", "replicate", "variant"])
    df["genohoption_paper_mean_degree"] = (
        df["dataset"].astype(str).str.lower().map(GENOHOPTION_PAPER_MEAN_DEGREE))
    first = [c for c in ("dataset", "replicate", "variant", "kind", "nodes", "edges", "mean_degree",
                         "genohoption_paper_mean_degree") if c in df]
    df = df[first + [c for c in df.columns if c not in first]].sort_values(["dataset", "replicate", "variant"])
    write_table(df, Path(out), df.to_markdown(index=False) + "\n")
    if graph_paths and overlap_out:
        ov = overlap_table(graph_paths)
        write_table(ov, Path(overlap_out), ov.to_markdown(index=False) + "\n")
    return df


def overlap_table(graph_paths: list[str | Path]) -> pd.DataFrame:
    """Pairwise Jaccard of edge sets between the variants of each dataset replicate, from
    graph files laid out as ``<dataset>/rep<r>/<variant>.npz``."""
    by_unit: dict[tuple[str, int], dict[str, Path]] = {}
    for p in map(Path, graph_paths):
        by_unit.setdefault(graph_unit(p), {})[p.stem] = p
    rows = []
    for (dataset, replicate), variants in sorted(by_unit.items()):
        loaded = {name: load_graph(p) for name, p in sorted(variants.items())}
        names = list(loaded)
        for i, a in enumerate(names):
            A, genes = loaded[a]
            for b in names[i + 1 :]:
                B = align_graph(*loaded[b], genes, str(variants[b]))
                rows.append({"dataset": dataset, "replicate": replicate, "variant_a": a,
                             "variant_b": b, **edge_jaccard(A, B)})
    return pd.DataFrame(
        rows,
        columns=[
            "dataset",
            "replicate",
            "variant_a",
            "variant_b",
            "jaccard",
            "shared_edges",
            "edges_a",
            "edges_b",
        ],
    )


