"""Every metric against values computed by hand on small examples."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from scgraphbench.data.gears import gears_subgroup
from scgraphbench.evaluate.annotation import (
    annotation_scores,
    confusion_table,
    embedding_scores,
    leiden_clusters,
    per_class_scores,
)
from scgraphbench.evaluate.attention import attention_on_known_edges, edge_mass
from scgraphbench.evaluate.perturbation import (
    METRICS,
    condition_means,
    pearson,
    perturbation_scores,
    perturbation_table,
    summarise,
)
from scgraphbench.graphs.controls import random_graph_like

# ---------------------------------------------------------------- annotation
Y_TRUE = np.array([0, 0, 1, 1, 2])
Y_PRED = np.array([0, 1, 1, 1, 0])


def test_accuracy_and_macro_f1_by_hand():
    s = annotation_scores(Y_TRUE, Y_PRED, 3)
    assert s["accuracy"] == pytest.approx(3 / 5)
    # F1 per class: c0 P=1/2 R=1/2 -> 1/2; c1 P=2/3 R=1 -> 4/5; c2 never right -> 0
    assert s["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    # a training class absent from both truth and predictions does not drag macro-F1 down
    assert annotation_scores(Y_TRUE, Y_PRED, 4)["macro_f1"] == pytest.approx(1.3 / 3)


def test_per_class_scores_by_hand():
    pc = per_class_scores(Y_TRUE, Y_PRED, ["a", "b", "c"])
    assert pc["a"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert pc["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert pc["c"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1})


def test_confusion_table_rows_are_truth():
    cm = confusion_table(Y_TRUE, Y_PRED, ["a", "b", "c"])
    assert cm.index.tolist() == ["a", "b", "c"] and cm.columns.tolist() == ["a", "b", "c"]
    assert cm.to_numpy().tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_silhouette_by_hand_and_leiden_on_separated_blobs():
    # 1-D points 0, 1 | 10, 11: s(0) = (10.5-1)/10.5, s(1) = (9.5-1)/9.5, symmetric for b
    emb = np.array([[0.0], [1.0], [10.0], [11.0]])
    s = embedding_scores(emb, np.array(["a", "a", "b", "b"]))
    asw = (9.5 / 10.5 + 8.5 / 9.5) / 2
    assert s["silhouette_label"] == pytest.approx((asw + 1) / 2)  # scib's rescaling to [0, 1]

    rng = np.random.default_rng(0)
    blobs = np.vstack([rng.normal(0, 0.1, (40, 5)), rng.normal(5, 0.1, (40, 5))])
    labels = np.repeat(["x", "y"], 40)
    s = embedding_scores(blobs, labels, resolution=0.2)
    assert s["leiden_ari"] == pytest.approx(1.0) and s["leiden_nmi"] == pytest.approx(1.0)
    # a random labelling of the same points scores about 0
    s_rand = embedding_scores(blobs, rng.permutation(labels), resolution=0.2)
    assert abs(s_rand["leiden_ari"]) < 0.2


def _blobs(n_per: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    emb = np.vstack([rng.normal(c, 1.5, (n_per, 8)) for c in range(3)])
    labels = np.repeat(["x", "y", "z"], n_per).astype(object)
    labels[0] = "alone"  # a label with one cell: silhouette 0 there, in both
    return emb, labels


def test_silhouette_label_is_scib_metrics_silhouette_label():
    scib = pytest.importorskip("scib_metrics", reason="scib-metrics is not installed")
    emb, labels = _blobs()
    ours = embedding_scores(emb, labels)["silhouette_label"]
    theirs = float(scib.silhouette_label(emb.astype(np.float32), labels))
    assert 0 < ours < 1 and ours == pytest.approx(theirs, abs=1e-5)  # jax computes in fp32


def test_leiden_clusters_equal_scanpys_for_a_seed():
    """The scanpy-free Leiden gives scanpy's clusters: sc.pp.neighbors(method='gauss',
    transformer=KNeighborsTransformer) + sc.tl.leiden(flavor='igraph', n_iterations=2)."""
    import warnings

    import anndata as ad
    import scanpy as sc
    from sklearn.neighbors import KNeighborsTransformer

    for seed, n_per, resolution in ((0, 40, 1.0), (1, 70, 2.0), (2, 12, 1.5)):
        emb = _blobs(n_per, seed)[0].astype(np.float32)
        k = min(15, len(emb) - 1)
        adata = ad.AnnData(emb)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sc.pp.neighbors(adata, use_rep="X", n_neighbors=k, method="gauss",
                            transformer=KNeighborsTransformer(n_neighbors=k))
            sc.tl.leiden(adata, resolution=resolution, flavor="igraph", n_iterations=2,
                         directed=False, random_state=seed)
        want = adata.obs["leiden"].astype(int).to_numpy()
        got = leiden_clusters(emb, resolution=resolution, seed=seed)
        assert len(np.unique(want)) > 1
        np.testing.assert_array_equal(got, want)


def test_embedding_scores_undefined_cases_are_nan():
    s = embedding_scores(np.zeros((2, 3)), np.array(["a", "b"]))
    assert np.isnan(s["leiden_ari"]) and np.isnan(s["silhouette_label"])
    s = embedding_scores(np.random.default_rng(0).normal(size=(10, 2)), np.array(["a"] * 10))
    assert np.isnan(s["silhouette_label"])  # one label: silhouette undefined


# ---------------------------------------------------------------- perturbation (GEARS)
PRED = np.array([1.0, 2.0, 3.0, 4.0])
TRUE = np.array([1.0, 3.0, 2.0, 5.0])
CTRL = np.array([0.0, 1.0, 2.0, 1.0])
DE = np.array([0, 1, 3])


def test_gears_metrics_by_hand():
    s = perturbation_scores(PRED, TRUE, CTRL, DE)
    assert s["mse"] == pytest.approx((0 + 1 + 1 + 1) / 4)
    # deviations pred [-1.5,-.5,.5,1.5], true [-1.75,.25,-.75,2.25]: cov 5.5, ss 5 and 8.75
    assert s["pearson"] == pytest.approx(5.5 / np.sqrt(5 * 8.75))
    assert s["mse_de"] == pytest.approx((0 + 1 + 1) / 3)
    # [1,2,4] vs [1,3,5]: cov 6, ss 14/3 and 8
    assert s["pearson_de"] == pytest.approx(6 / np.sqrt(14 / 3 * 8))
    # deltas [1,1,1,3] vs [1,2,0,4]: cov 4.5, ss 3 and 8.75
    assert s["pearson_delta"] == pytest.approx(4.5 / np.sqrt(3 * 8.75))
    # DE deltas [1,1,3] vs [1,2,4]: cov 10/3, ss 8/3 and 14/3
    assert s["pearson_delta_de"] == pytest.approx(10 / np.sqrt(112))


def test_undefined_pearson_counts_as_zero_like_gears():
    assert pearson(np.ones(5), np.arange(5.0)) == 0.0
    s = perturbation_scores(CTRL.copy(), TRUE, CTRL, DE)  # predicting "no change"
    assert s["pearson_delta"] == 0.0 and s["pearson_delta_de"] == 0.0


def test_means_per_perturbation_then_metrics():
    # two perturbations, cells in mixed order; metrics are on the per-condition means
    cells_true = np.array([[1.0, 3, 2, 5], [9, 9, 9, 9], [1, 3, 2, 5], [7, 7, 7, 8]])
    cells_pred = np.array([[0.0, 2, 3, 4], [8, 8, 8, 8], [2, 2, 3, 4], [8, 8, 8, 9]])
    conds = np.array(["A+ctrl", "B+ctrl", "A+ctrl", "B+ctrl"])
    names, pred_mean = condition_means(cells_pred, conds)
    _, true_mean = condition_means(cells_true, conds)
    assert names == ["A+ctrl", "B+ctrl"]
    np.testing.assert_allclose(pred_mean[0], PRED)
    np.testing.assert_allclose(true_mean[0], TRUE)
    table = perturbation_table(
        names,
        pred_mean,
        true_mean,
        CTRL,
        {"A+ctrl": DE, "B+ctrl": DE},
        {"A+ctrl": "unseen_single", "B+ctrl": "combo_seen0"},
        {"A+ctrl": 2, "B+ctrl": 2},
    )
    assert table.loc[0, "mse"] == pytest.approx(0.75)
    assert table.loc[0, "pearson_delta_de"] == pytest.approx(10 / np.sqrt(112))
    # B: pred mean [8,8,8,8.5], true [8,8,8,8.5] -> mse 0, pearson 1
    assert table.loc[1, "mse"] == pytest.approx(0.0) and table.loc[1, "pearson"] == pytest.approx(1)
    overall, groups = summarise(table)
    assert overall["mse"] == pytest.approx(0.75 / 2)
    assert overall["n_perturbations"] == 2
    assert groups["unseen_single"]["mse"] == pytest.approx(0.75)
    assert groups["combo_seen0"]["n_perturbations"] == 1
    assert set(METRICS) <= set(groups["combo_seen0"])


def test_gears_subgroups():
    seen = {"A", "B"}
    assert gears_subgroup("C+ctrl", seen) == "unseen_single"
    assert gears_subgroup("A+B", seen) == "combo_seen2"
    assert gears_subgroup("A+C", seen) == "combo_seen1"
    assert gears_subgroup("C+D", seen) == "combo_seen0"


# ---------------------------------------------------------------- attention on edges
W = np.array(
    [[0.4, 0.3, 0.2, 0.1], [0.1, 0.5, 0.2, 0.2], [0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.3, 0.4]]
)


def _graph(edges: list[tuple[int, int]], n: int = 4) -> sp.csr_matrix:
    r, c = zip(*edges, strict=True)
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n))


def test_attention_mass_on_known_vs_random_edges_by_hand():
    known = _graph([(0, 1), (2, 3)])  # symmetrised: (0,1),(1,0),(2,3),(3,2)
    random = _graph([(0, 2), (1, 3)])
    off_diagonal = 0.6 + 0.5 + 0.75 + 0.6
    assert edge_mass(W, known) == pytest.approx((0.3 + 0.1 + 0.25 + 0.3) / off_diagonal)
    res = attention_on_known_edges(W, known, random)
    assert res["mass_random"] == pytest.approx((0.2 + 0.25 + 0.2 + 0.2) / off_diagonal)
    assert res["enrichment"] == pytest.approx(0.95 / 0.85)
    assert res["density_known"] == pytest.approx(4 / 12) == res["density_random"]
    # directed counting keeps only the listed direction
    assert edge_mass(W, known, symmetric=False) == pytest.approx((0.3 + 0.25) / off_diagonal)


def test_uniform_attention_mass_equals_density():
    n = 30
    known = random_graph_like(_graph([(0, 1)], n) + sp.random(n, n, density=0.1, random_state=0))
    res = attention_on_known_edges(np.full((n, n), 1.0 / n), known, seed=1)
    assert res["mass_known"] == pytest.approx(res["density_known"])
    assert res["enrichment"] == pytest.approx(1.0)


def test_random_graph_like_matches_density_and_seed():
    A = sp.random(50, 50, density=0.05, random_state=3, format="csr")
    R1, R2 = random_graph_like(A, seed=7), random_graph_like(A, seed=7)
    sym = (A + A.T).tocsr()
    sym.setdiag(0)
    sym.eliminate_zeros()
    assert R1.nnz == sym.nnz and (R1 != R2).nnz == 0
    assert R1.diagonal().sum() == 0 and (R1 != R1.T).nnz == 0
    assert (random_graph_like(A, seed=8) != R1).nnz > 0
    directed = random_graph_like(A, seed=0, symmetric=False)
    A0 = A.copy()
    A0.setdiag(0)
    A0.eliminate_zeros()
    assert directed.nnz == A0.nnz


def _ctx(n: int, graph: sp.csr_matrix | None = None):
    from scgraphbench.models.registry import ModelContext

    return ModelContext(
        task="perturbation", n_genes=n, gene_names=[f"g{i}" for i in range(n)], graph=graph
    )


def test_attention_maps_from_dense_and_masked_families():
    import torch

    from scgraphbench.models.registry import build_family

    torch.manual_seed(0)
    n = 12
    chain = _graph([(i, i + 1) for i in range(n - 1)], n)
    x = torch.rand(5, n)
    pert = torch.zeros(5, n)
    dense = build_family("transformer", _ctx(n), dict(d_model=8, n_layers=2, n_heads=2))
    Wd = dense.attention_maps({"x": x, "pert": pert}, n, chunk=2)
    assert Wd.shape == (n, n)
    np.testing.assert_allclose(Wd.sum(1), 1.0, atol=1e-6)
    assert (Wd > 0).all()  # dense attention reaches every gene

    masked = build_family(
        "masked_attention", _ctx(n, chain), dict(d_model=8, n_layers=1, n_heads=2)
    )
    Wm = masked.attention_maps({"x": x, "pert": pert}, n)
    np.testing.assert_allclose(Wm.sum(1), 1.0, atol=1e-6)
    allowed = (chain + chain.T).toarray() + np.eye(n) > 0
    assert np.abs(Wm[~allowed]).max() == 0.0  # nothing off the graph (CLS dropped)
    assert edge_mass(Wm, chain) == pytest.approx(1.0)
    # families without attention have no map
    gcn = build_family("gnn_gcn", _ctx(n, chain), dict(d_model=8, n_layers=1))
    assert gcn.attention_maps({"x": x, "pert": pert}, n) is None


def test_pearson_and_mse_agree_with_scipy_and_sklearn():
    from scipy.stats import pearsonr
    from sklearn.metrics import mean_squared_error as sk_mse

    from scgraphbench.evaluate.perturbation import mean_squared_error, pearson

    rng = np.random.default_rng(0)
    for n in (2, 5, 100, 5000):
        a, b = rng.normal(size=n), rng.normal(size=n) * 3 + 1e3
        assert pearson(a, b) == pytest.approx(pearsonr(a, b)[0], abs=1e-12)
        assert pearson(a, a * 2 + 1) == pytest.approx(1.0, abs=1e-12)
        assert mean_squared_error(a, b) == pytest.approx(sk_mse(a, b), rel=1e-12)
    assert pearson(np.ones(5), rng.normal(size=5)) == 0.0  # GEARS: undefined r is 0
    assert pearson(np.ones(1), np.ones(1)) == 0.0
