"""The synthetic GEARS-format generator: layout, determinism, and its ground truth."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from scgraphbench.data.synthetic import (
    condition_effect,
    grn_adjacency,
    propagation_operator,
    synthetic_perturbation_adata,
)
from scgraphbench.errors import ScgbError

SMALL = dict(n_genes=40, n_perturbations=8, n_combos=3, cells_per_perturbation=30, n_control=120)


@pytest.fixture(scope="module")
def small():
    return synthetic_perturbation_adata(seed=3, **SMALL)


def test_gears_layout(small):
    obs = small.obs
    conds = set(obs["condition"].astype(str))
    assert "ctrl" in conds
    singles = {c for c in conds if c.endswith("+ctrl")}
    combos = conds - singles - {"ctrl"}
    assert len(singles) == 8 and len(combos) == 3
    for c in combos:  # both genes of a combination are also perturbed alone
        a, b = c.split("+")
        assert f"{a}+ctrl" in singles and f"{b}+ctrl" in singles
    assert set(obs.columns) >= {"condition", "cell_type", "control", "condition_name", "dose_val"}
    assert (obs["control"].to_numpy() == (obs["condition"] == "ctrl").to_numpy()).all()
    assert obs.loc[obs["condition"] == "ctrl", "condition_name"].iloc[0] == "synthetic_ctrl_1"
    assert obs.loc[obs["condition"] != "ctrl", "condition_name"].iloc[0].endswith("_1+1")
    assert "gene_name" in small.var and small.var_names[0].startswith("SYN")
    assert sp.issparse(small.X) and small.X.dtype == np.float32
    # X = log1p(normalize_total(counts, 1e4))
    counts = small.layers["counts"].toarray()
    expected = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)
    np.testing.assert_allclose(small.X.toarray(), expected, rtol=1e-5, atol=1e-5)
    assert np.allclose(counts, np.round(counts))
    # GEARS DE caches keyed by condition_name, holding gene ids
    de = small.uns["rank_genes_groups_cov_all"]
    name = obs.loc[obs["condition"] != "ctrl", "condition_name"].iloc[0]
    assert len(de[name]) == small.n_vars and set(de[name]) <= set(small.var_names)
    assert len(small.uns["top_non_dropout_de_20"][name]) == 20


def test_seeded(small):
    again = synthetic_perturbation_adata(seed=3, **SMALL)
    assert (again.X != small.X).nnz == 0
    other = synthetic_perturbation_adata(seed=4, de_genes=False, **SMALL)
    assert other.X.shape != small.X.shape or (other.X != small.X).nnz > 0


def test_ground_truth_effects_are_visible_in_the_data(small):
    genes = small.var["gene_name"].astype(str).tolist()
    X = small.X.toarray()
    cond = small.obs["condition"].astype(str).to_numpy()
    ctrl = X[cond == "ctrl"].mean(0)
    truth = small.uns["true_log_fc"]
    kd = np.log1p(-0.9)
    for c in [c for c in truth if c.endswith("+ctrl")]:
        g = genes.index(c.split("+")[0])
        assert truth[c][g] == pytest.approx(kd)  # the perturbed gene is knocked down
        observed = X[cond == c].mean(0) - ctrl
        assert observed[g] < -0.5
        # observed shifts follow the true log fold changes
        assert np.corrcoef(observed, truth[c])[0, 1] > 0.5


def test_effect_travels_through_the_grn():
    # 0 activates 1 (w=1), 1 represses 2 (w=-1): knocking 0 down lowers 1 and raises 2
    W = sp.csr_matrix((np.array([1.0, -1.0]), (np.array([1, 2]), np.array([0, 1]))), shape=(3, 3))
    M = propagation_operator(W, hops=2, hop_decay=0.5)
    np.testing.assert_allclose(M, W.toarray() + 0.5 * (W @ W).toarray())
    d = condition_effect([0], M, effect_size=1.0, max_shift=10.0, knockdown=0.9)
    assert d[0] == pytest.approx(np.log(0.1))
    assert d[1] == pytest.approx(10 * np.tanh(-1 / 10))
    assert d[2] == pytest.approx(10 * np.tanh(0.5 / 10))


def test_grn_is_stored_and_aligns(small):
    grn = small.uns["grn"]
    assert len(grn["regulator"]) == len(grn["target"]) == len(grn["weight"]) > 0
    genes = small.var["gene_name"].astype(str).tolist()
    A = grn_adjacency(small)
    assert A.shape == (40, 40) and A.nnz == len(
        set(zip(grn["target"], grn["regulator"], strict=True))
    )
    t, r = genes.index(str(grn["target"][0])), genes.index(str(grn["regulator"][0]))
    assert A[t, r] == 1.0  # row = target, column = regulator
    sub = grn_adjacency(small, genes[:10])  # edges to dropped genes disappear
    assert sub.shape == (10, 10) and sub.nnz <= A.nnz
    # every perturbed gene regulates something, so every perturbation has an effect beyond itself
    for c in small.obs["condition"].astype(str).unique():
        if c.endswith("+ctrl"):
            assert A[:, genes.index(c.split("+")[0])].nnz >= 1


@pytest.mark.parametrize(
    "bad",
    [
        dict(n_perturbations=0),
        dict(n_perturbations=999),
        dict(knockdown=1.0),
        dict(n_combos=10_000),
        dict(effect_size=-1.0),
        dict(dispersion=0.0),
    ],
)
def test_bad_parameters_raise_clear_errors(bad):
    with pytest.raises(ScgbError) as e:
        synthetic_perturbation_adata(**{**SMALL, **bad, "de_genes": False})
    assert next(iter(bad)) in str(e.value) and "fix:" in str(e.value)
