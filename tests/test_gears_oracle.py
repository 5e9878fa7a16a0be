"""Our GEARS conventions against cell-gears 0.1.2 itself, run offline on data made here.

- the 'simulation' split: ``gears_split`` and ``prepare_gears`` against
  ``PertData.prepare_split(split='simulation', seed, train_gene_set_size)``;
- the top-20 DE genes: ``top_de_genes`` against ``PertData.new_data_process`` (``get_DE_genes``);
- the six metrics: ``evaluate.perturbation`` against ``gears.inference.compute_metrics`` and
  ``deeper_analysis``, per perturbation, overall and per subgroup, on the same arrays.

GEARS needs a data folder with ``gene2go_all.pkl`` (else it downloads it); a pickle naming every
gene of the data is written there first. ``default_pert_graph=False`` makes GEARS take its
perturbable genes from the data instead of downloading its essential-gene list.
"""

from __future__ import annotations

import itertools
import pickle
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

with warnings.catch_warnings():  # gears.pertdata sets a global "ignore" filter on import
    pytest.importorskip(
        "gears",
        reason="cell-gears is not installed: pip install --no-deps cell-gears==0.1.2 dcor",
    )
    from gears import PertData
    from gears.inference import compute_metrics, deeper_analysis

from scgraphbench.data import gears as sgb_gears
from scgraphbench.data.prepare import prepare_gears
from scgraphbench.data.synthetic import synthetic_perturbation_adata
from scgraphbench.evaluate.perturbation import (
    METRICS,
    condition_means,
    perturbation_table,
    summarise,
)
from scgraphbench.train.data import perturbation_data

pytestmark = pytest.mark.usefixtures("one_thread")

COMPUTE_METRICS = ("mse", "pearson", "mse_de", "pearson_de")  # the rest: deeper_analysis
# GEARS means in float32 (its torch outputs, its sparse control mean), ours in float64
TOL = {"rtol": 1e-6, "atol": 1e-6}


def gears_pert_data(adata: ad.AnnData, root: Path, name: str, de: bool) -> PertData:
    """GEARS' own route for a new dataset, offline: PertData(root) + new_data_process."""
    root.mkdir(parents=True, exist_ok=True)
    genes = adata.var["gene_name"].astype(str).tolist()
    with open(root / "gene2go_all.pkl", "wb") as f:
        pickle.dump({g: ["GO:0000001"] for g in genes}, f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scanpy/pandas notices from inside GEARS
        pert_data = PertData(str(root), default_pert_graph=False)
        pert_data.new_data_process(name, adata=adata, skip_calc_de=not de)
    return pert_data


def gears_simulation_split(
    pert_data: PertData, seed: int, train_gene_set_size: float, combo_seen2_train_frac: float
):
    """(split -> set of perturbed conditions, subgroup -> set) from GEARS' prepare_split."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pert_data.prepare_split(
            split="simulation",
            seed=seed,
            train_gene_set_size=train_gene_set_size,
            combo_seen2_train_frac=combo_seen2_train_frac,
        )
    sets = {
        s: set(pert_data.set2conditions.get(s, [])) - {"ctrl"} for s in ("train", "val", "test")
    }
    subgroups = {k: set(v) for k, v in pert_data.subgroup["test_subgroup"].items()}
    return sets, subgroups


def by_value(mapping: dict[str, str], keys) -> dict[str, set[str]]:
    return {k: {c for c, v in mapping.items() if v == k} for k in keys}


# -- the split on condition lists --------------------------------------------------------------


def norman_like() -> list[str]:
    """40 genes, 32 of them with a single perturbation, 80 random two-gene combos (so some
    combos have a gene with no single, as in Norman et al.)."""
    genes = [f"P{i:02d}" for i in range(40)]
    pairs = [f"{a}+{b}" for a, b in itertools.combinations(genes, 2)]
    picked = np.random.default_rng(0).choice(len(pairs), 80, replace=False)
    return [f"{g}+ctrl" for g in genes[:32]] + [pairs[i] for i in sorted(picked)]


def singles_only() -> list[str]:
    return [f"P{i:02d}+ctrl" for i in range(37)]


def condition_adata(perts: list[str]) -> ad.AnnData:
    """The least GEARS-layout AnnData a split needs: one cell per condition, two controls."""
    genes = sorted({g for p in perts for g in sgb_gears.genes_of(p)}) + ["X0", "X1"]
    conds = ["ctrl", "ctrl", *perts]
    X = np.random.default_rng(0).poisson(1.0, (len(conds), len(genes))).astype(np.float32)
    return ad.AnnData(
        X=sp.csr_matrix(X),
        obs=pd.DataFrame(
            {"condition": conds, "cell_type": "K562"}, index=[f"c{i}" for i in range(len(conds))]
        ),
        var=pd.DataFrame({"gene_name": genes}, index=[f"ENSG{i:05d}" for i in range(len(genes))]),
    )


@pytest.mark.parametrize("layout", [norman_like, singles_only])
@pytest.mark.parametrize(
    ("train_gene_set_size", "combo_seen2_train_frac"),
    # GEARS' defaults; another gene share (its combo share stays 0.75); both changed
    [(0.75, 0.75), (0.8, 0.75), (0.8, 0.6)],
)
def test_simulation_split_is_gears_prepare_split(
    tmp_path, layout, train_gene_set_size, combo_seen2_train_frac
):
    perts = layout()
    # its own folder per case: GEARS caches a split under (seed, gene share) only
    pert_data = gears_pert_data(condition_adata(perts), tmp_path, "split", de=False)
    for seed in range(1, 6):
        sets, subgroups = gears_simulation_split(
            pert_data, seed, train_gene_set_size, combo_seen2_train_frac
        )
        # our order of first appearance differs from GEARS' (ctrl last, reversed): no effect
        split, subgroup = sgb_gears.gears_split(
            pd.Series(list(reversed(perts)) + ["ctrl"]),
            train_gene_set_size,
            seed,
            combo_seen2_train_frac=combo_seen2_train_frac,
        )
        assert by_value(split, ("train", "val", "test")) == sets, seed
        assert by_value(subgroup, sgb_gears.SUBGROUPS) == subgroups, seed
        assert sets["test"] and sets["val"]


# -- a prepared synthetic dataset: split, DE genes, metrics ------------------------------------


@pytest.fixture(scope="module")
def prepared_and_gears(tmp_path_factory):
    """The synthetic dataset with combos, prepared by us (split seed 1), and the same
    expression matrix processed by GEARS (DE genes, pyg cells, simulation split seed 1)."""
    synthetic = synthetic_perturbation_adata(
        n_genes=80,
        n_perturbations=16,
        n_combos=40,
        cells_per_perturbation=8,
        n_control=80,
        seed=3,
        de_genes=False,
    )
    prepared = prepare_gears(synthetic, dataset="synth", seed=1, n_top_genes=None, source="synth")
    gears_input = ad.AnnData(
        X=sp.csr_matrix(prepared.X),
        obs=pd.DataFrame(
            {
                "condition": prepared.obs["condition"].astype(str).to_numpy(),
                "cell_type": prepared.obs["cell_type"].astype(str).to_numpy(),
            },
            index=prepared.obs_names,
        ),
        var=pd.DataFrame({"gene_name": prepared.var_names}, index=prepared.var_names),
    )
    root = tmp_path_factory.mktemp("gears_data")
    pert_data = gears_pert_data(gears_input, root, "synth", de=True)
    sets, subgroups = gears_simulation_split(pert_data, 1, 0.75, 0.75)  # GEARS' defaults
    return prepared, pert_data, sets, subgroups


def test_prepared_split_and_subgroups_are_gears(prepared_and_gears):
    prepared, _, sets, subgroups = prepared_and_gears
    perturbed = prepared.obs[~prepared.obs["control"]]
    split_of = perturbed.groupby("condition", observed=True)["split"].first().astype(str)
    assert by_value(split_of.to_dict(), ("train", "val", "test")) == sets
    assert by_value(dict(prepared.uns["subgroup"]), sgb_gears.SUBGROUPS) == subgroups
    assert all(subgroups[k] for k in sgb_gears.SUBGROUPS)  # every subgroup is exercised


def test_top20_de_genes_are_gears_de_genes(prepared_and_gears):
    prepared, pert_data, *_ = prepared_and_gears
    obs = pert_data.adata.obs
    name_of = dict(
        zip(obs["condition"].astype(str), obs["condition_name"].astype(str), strict=True)
    )
    ranked = pert_data.adata.uns["rank_genes_groups_cov_all"]  # var_names = symbols here
    ours = prepared.uns["top20_de"]
    assert set(ours) == set(name_of) - {"ctrl"}
    for c, genes in ours.items():
        assert list(genes) == [str(g) for g in ranked[name_of[c]][:20]], c


def test_metrics_are_gears_metrics(prepared_and_gears):
    """Predictions = truth + noise, one perturbation exact and one constant (an undefined
    Pearson, 0 in both); then our scoring path (as PerturbationTask.score) against GEARS'."""
    prepared, pert_data, _, gears_subgroups = prepared_and_gears
    d = perturbation_data(prepared, "synth")
    cells = np.asarray(d.condition_names("test"), dtype=str)
    truth = d.X["test"].astype(np.float32)
    pred = (truth + np.random.default_rng(0).normal(0.0, 0.3, truth.shape)).astype(np.float32)
    test_conds = sorted(set(cells))
    exact, constant = test_conds[:2]
    pred[cells == exact] = truth[cells == exact]
    pred[cells == constant] = 1.5

    conds, pred_mean = condition_means(pred, cells)
    _, true_mean = condition_means(truth, cells)
    table = perturbation_table(conds, pred_mean, true_mean, d.ctrl_mean, d.de_idx, d.subgroup)
    overall, groups = summarise(table)
    table = table.set_index("condition")

    # GEARS' evaluate(): per cell, pred/truth on all genes and on the de_idx of its pyg cells
    de_idx = {c: np.asarray(pert_data.dataset_processed[c][0].de_idx) for c in test_conds}
    assert all(set(de_idx[c]) == set(d.de_idx[c].tolist()) for c in test_conds)
    results = {
        "pert_cat": cells,
        "pred": pred,
        "truth": truth,
        "pred_de": np.stack([pred[i, de_idx[c]] for i, c in enumerate(cells)]),
        "truth_de": np.stack([truth[i, de_idx[c]] for i, c in enumerate(cells)]),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's ConstantInputWarning on the constant one
        gears_overall, per_pert = compute_metrics(results)
        deeper = deeper_analysis(pert_data.adata, results)
    for c in test_conds:
        per_pert[c].update({m: deeper[c][m] for m in ("pearson_delta", "pearson_delta_de")})

    assert sorted(table.index) == sorted(per_pert)
    for m in METRICS:
        np.testing.assert_allclose(
            table[m].to_numpy(), [per_pert[c][m] for c in table.index], err_msg=m, **TOL
        )
        # compute_metrics' overall, and deeper_analysis' as GEARS.train averages it
        expected = (
            gears_overall[m]
            if m in COMPUTE_METRICS
            else np.mean([per_pert[c][m] for c in per_pert])
        )
        np.testing.assert_allclose(overall[m], expected, err_msg=m, **TOL)
        # GEARS.train's subgroup analysis: the plain mean over each subgroup's perturbations
        for name, members in gears_subgroups.items():
            np.testing.assert_allclose(
                groups[name][m], np.mean([per_pert[c][m] for c in members]), err_msg=name, **TOL
            )
    assert table.loc[exact, "mse"] == per_pert[exact]["mse"] == 0.0
    assert table.loc[constant, "pearson"] == per_pert[constant]["pearson"] == 0.0
