"""GEARS conventions and prepare_gears on GEARS-layout perturb_processed.h5ad files made here."""

from __future__ import annotations

import itertools
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scgraphbench.data import gears
from scgraphbench.data.datasets import prepare_dataset
from scgraphbench.data.prepare import prepare_gears
from scgraphbench.errors import ScgbError


def single_list(n: int) -> list[str]:
    return [f"P{i:02d}+ctrl" for i in range(n)]


def norman_like_perts(n_genes: int = 16) -> list[str]:
    genes = [f"P{i:02d}" for i in range(n_genes)]
    combos = [f"{a}+{b}" for a, b in itertools.combinations(genes, 2)][::3]
    return single_list(n_genes) + combos


def test_simulation_split_subgroups_follow_their_definitions():
    perts = norman_like_perts()
    res = gears.simulation_split(perts, 0.75, seed=1)
    seen = {g for p in res.train if gears.is_single(p) for g in gears.genes_of(p)}
    all_genes = {g for p in perts for g in gears.genes_of(p)}
    assert len(seen) == int(len(all_genes) * 0.75)
    assert sorted(res.train + res.test) == sorted(perts)
    sg = res.subgroup
    assert all(sum(g in seen for g in gears.genes_of(p)) == 0 for p in sg["combo_seen0"])
    assert all(sum(g in seen for g in gears.genes_of(p)) == 1 for p in sg["combo_seen1"])
    assert all(sum(g in seen for g in gears.genes_of(p)) == 2 for p in sg["combo_seen2"])
    assert all(gears.is_single(p) and gears.genes_of(p)[0] not in seen for p in sg["unseen_single"])
    # 75% of the both-seen combos train, the rest are combo_seen2
    both_seen = [p for p in perts if gears.is_combo(p) and set(gears.genes_of(p)) <= seen]
    assert len(sg["combo_seen2"]) == len(both_seen) - int(len(both_seen) * 0.75)


def test_simulation_split_is_seeded_and_order_free():
    perts = norman_like_perts()
    a = gears.simulation_split(perts, 0.75, seed=1)
    b = gears.simulation_split(list(reversed(perts)), 0.75, seed=1)
    c = gears.simulation_split(perts, 0.75, seed=2)
    assert set(a.test) == set(b.test)
    assert set(a.test) != set(c.test)


def test_gears_split_single_only_dataset_has_unseen_single_subgroup_only():
    conds = pd.Series(["ctrl"] * 3 + single_list(20))
    split, subgroup = gears.gears_split(conds, 0.75, seed=1)
    assert "ctrl" not in split
    assert set(split.values()) == {"train", "val", "test"}
    assert set(subgroup.values()) == {"unseen_single"}
    assert set(subgroup) == {c for c, s in split.items() if s == "test"}
    assert sum(s == "test" for s in split.values()) == 20 - int(20 * 0.75)


def gears_file(
    tmp_path: Path,
    perts: list[str],
    n_genes: int = 60,
    cells: int = 12,
    n_ctrl: int = 80,
    seed: int = 0,
    log_normalised: bool = True,
) -> Path:
    """A perturb_processed.h5ad as GEARS ships it: Ensembl-like var_names, var['gene_name'],
    obs condition/cell_type/control, log-normalised sparse X; each perturbation knocks its
    genes down and pushes two 'target' genes up."""
    rng = np.random.default_rng(seed)
    genes = [f"P{i:02d}" for i in range(16)] + [f"G{i:03d}" for i in range(n_genes - 16)]
    conds = ["ctrl"] * n_ctrl + [p for p in perts for _ in range(cells)]
    counts = rng.poisson(3.0, size=(len(conds), n_genes)).astype(np.float32)
    for i, c in enumerate(conds):
        for g in gears.genes_of(c):
            if g not in genes:  # a perturbation of a gene the matrix lacks
                continue
            j = genes.index(g)
            counts[i, j] = 0
            counts[i, 16 + (j * 2) % (n_genes - 16)] += 25
    X = counts
    if log_normalised:
        X = np.log1p(counts / counts.sum(1, keepdims=True) * np.median(counts.sum(1)))
    obs = pd.DataFrame(
        {"condition": conds, "cell_type": "K562", "control": [int(c == "ctrl") for c in conds]},
        index=[f"cell{i}" for i in range(len(conds))],
    )
    var = pd.DataFrame({"gene_name": genes}, index=[f"ENSG{i:011d}" for i in range(n_genes)])
    adata = ad.AnnData(X=sp.csr_matrix(X.astype(np.float32)), obs=obs, var=var)
    adata.uns["rank_genes_groups_cov_all"] = {"K562_P00+ctrl_1+1": np.array(genes[:5])}
    path = tmp_path / "perturb_processed.h5ad"
    adata.write_h5ad(path)
    return path


def test_prepare_gears_file_layout(tmp_path):
    perts = norman_like_perts()
    path = gears_file(tmp_path, perts)
    out = prepare_dataset(
        "norman_like", {"source": "gears", "path": str(path), "n_top_genes": 20, "seed": 1}
    )
    # symbols as var_names, every perturbed gene kept although only 20 HVGs were asked for
    assert set(out.var_names) >= {f"P{i:02d}" for i in range(16)}
    assert out.n_vars < 60 and list(out.var["gene_name"]) == list(out.var_names)
    # split by perturbation: a condition never spans two splits
    per_cond = out.obs[~out.obs["control"]].groupby("condition", observed=True)["split"].nunique()
    assert (per_cond == 1).all()
    # control cells are split too
    ctrl = out.obs[out.obs["control"]]
    assert set(ctrl["split"]) == {"train", "val", "test"}
    assert (out.obs["condition"] == "ctrl").equals(out.obs["control"])
    # top-20 DE genes for every perturbation, inside the kept genes; GEARS' cache not carried
    conds = set(out.obs["condition"]) - {"ctrl"}
    assert set(out.uns["top20_de"]) == conds
    assert all(len(v) == 20 and set(v) <= set(out.var_names) for v in out.uns["top20_de"].values())
    assert "rank_genes_groups_cov_all" not in out.uns
    # knock-down of the perturbed gene ranks at the top (rankby_abs keeps down-regulation)
    assert out.uns["top20_de"]["P03+ctrl"][:3].count("P03") == 1
    # subgroups for test conditions only
    test_conds = set(out.obs.loc[(out.obs["split"] == "test") & ~out.obs["control"], "condition"])
    assert set(out.uns["subgroup"]) == test_conds
    assert set(out.uns["subgroup"].values()) <= set(gears.SUBGROUPS)
    meta = out.uns["scgraphbench"]
    assert meta["task"] == "perturbation" and meta["input_scale"] == "log1p"
    # log-normalised input: X kept, counts layer = expm1(X)
    counts = out.layers["counts"]
    counts = counts.toarray() if sp.issparse(counts) else counts
    np.testing.assert_allclose(counts, np.expm1(out.X), rtol=1e-5, atol=1e-5)
    # the prepared file round-trips through h5ad
    out.write_h5ad(tmp_path / "prepared.h5ad")
    back = ad.read_h5ad(tmp_path / "prepared.h5ad")
    assert list(back.uns["top20_de"]["P03+ctrl"]) == out.uns["top20_de"]["P03+ctrl"]


def test_prepare_gears_counts_input_is_normalised(tmp_path):
    path = gears_file(tmp_path, single_list(8), log_normalised=False)
    out = prepare_gears(ad.read_h5ad(path), dataset="x", seed=1, n_top_genes=None, source="t")
    assert out.uns["scgraphbench"]["input_scale"] == "counts"
    np.testing.assert_allclose(np.expm1(out.X).sum(1), 1e4, rtol=1e-3)


def test_perturbation_of_absent_gene_dropped_and_counted_or_error(tmp_path):
    path = gears_file(tmp_path, single_list(8) + ["NOTAGENE+ctrl", "P01+NOTAGENE"])
    adata = ad.read_h5ad(path)
    out = prepare_gears(adata, dataset="x", seed=1, n_top_genes=None, source="t")
    assert out.uns["scgraphbench"]["dropped_conditions"] == {
        "NOTAGENE+ctrl": 12,
        "P01+NOTAGENE": 12,
    }
    assert "NOTAGENE+ctrl" not in set(out.obs["condition"])
    with pytest.raises(ScgbError, match="NOTAGENE"):
        prepare_gears(
            adata, dataset="x", seed=1, n_top_genes=None, source="t", on_missing_gene="error"
        )


def test_gears_bad_inputs(tmp_path):
    adata = ad.read_h5ad(gears_file(tmp_path, single_list(8)))
    no_cond = adata.copy()
    del no_cond.obs["condition"]
    with pytest.raises(ScgbError, match=r"'condition' not found; obs has: \['cell_type'"):
        prepare_gears(no_cond, dataset="x", seed=1, n_top_genes=None, source="t")
    no_ctrl = adata[adata.obs["condition"] != "ctrl"].copy()
    with pytest.raises(ScgbError, match="no control cells"):
        prepare_gears(no_ctrl, dataset="x", seed=1, n_top_genes=None, source="t")
    dup = adata.copy()
    dup.var["gene_name"] = ["P00"] * 2 + list(dup.var["gene_name"][2:])
    with pytest.raises(ScgbError, match="duplicate gene names"):
        prepare_gears(dup, dataset="x", seed=1, n_top_genes=None, source="t")


def test_hvgs_use_training_cells_only(tmp_path):
    """Changing the test cells' expression must leave the selected genes unchanged."""
    adata = ad.read_h5ad(gears_file(tmp_path, single_list(16), cells=8))
    base = prepare_gears(adata.copy(), dataset="x", seed=1, n_top_genes=20, source="t")
    test_cells = base.obs_names[base.obs["split"] == "test"]
    changed = adata.copy()
    X = changed.X.toarray()
    rows = changed.obs_names.get_indexer(test_cells)
    X[rows] = np.random.default_rng(5).permutation(X[rows].T).T * 3
    changed.X = sp.csr_matrix(X)
    again = prepare_gears(changed, dataset="x", seed=1, n_top_genes=20, source="t")
    assert list(again.var_names) == list(base.var_names)
    assert not np.allclose(again.X, base.X)


def test_synthetic_perturbation_source():
    out = prepare_dataset(
        "syn",
        {
            "source": "synthetic_perturbation",
            "seed": 1,
            "params": {
                "n_genes": 80,
                "n_perturbations": 12,
                "n_combos": 6,
                "cells_per_perturbation": 10,
                "n_control": 100,
            },
        },
    )
    assert out.uns["scgraphbench"]["task"] == "perturbation"
    assert out.uns["scgraphbench"]["input_scale"] == "counts"  # the generator's counts layer
    assert set(out.obs["split"]) == {"train", "val", "test"}
    assert set(out.uns["top20_de"]) == set(out.obs["condition"]) - {"ctrl"}
