"""The additive and linear perturbation baselines (Ahlmann-Eltze, Huber & Anders 2025) against
effects whose form is known: the synthetic generator's combinations (additive or saturating)
and a planted low-rank bilinear effect."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from scgraphbench.data.gears import genes_of
from scgraphbench.data.synthetic import synthetic_perturbation_adata
from scgraphbench.errors import ScgbError
from scgraphbench.models.additive_baseline import AdditiveBaseline
from scgraphbench.models.linear_baseline import LinearBaseline
from scgraphbench.models.perturbation_baselines import MeanBaseline
from scgraphbench.models.registry import ModelContext, build_family
from scgraphbench.train.run import run

pytestmark = pytest.mark.usefixtures("one_thread")
TRAIN = {"epochs": 1, "patience": 1, "lr": 1e-3, "batch_size": 32, "device": "cpu"}


def ctx_for(genes: list[str]) -> ModelContext:
    return ModelContext(task="perturbation", n_genes=len(genes), gene_names=genes)


def flags_of(conditions: np.ndarray, genes: list[str]) -> np.ndarray:
    index = {g: i for i, g in enumerate(genes)}
    flags = np.zeros((len(conditions), len(genes)), dtype=np.uint8)
    for i, c in enumerate(conditions):
        flags[i, [index[g] for g in genes_of(c)]] = 1
    return flags


def generated(combination: str, cells: int, **kw) -> tuple[np.ndarray, np.ndarray, list[str],
                                                          dict[str, np.ndarray]]:
    a = synthetic_perturbation_adata(n_genes=30, n_perturbations=8, n_combos=8,
                                     cells_per_perturbation=cells, n_control=2 * cells, seed=3,
                                     de_genes=False, combination=combination, **kw)
    genes = a.var["gene_name"].astype(str).tolist()
    return (a.X.toarray().astype(np.float64), a.obs["condition"].astype(str).to_numpy(), genes,
            {k: np.asarray(v, np.float64) for k, v in a.uns["true_log_fc"].items()})


def is_combo(c: str) -> bool:
    return len(genes_of(c)) == 2


def additive_by_hand(X: np.ndarray, cond: np.ndarray, train: np.ndarray, condition: str
                     ) -> np.ndarray:
    """c + sum over the condition's genes of (m_gene - c), from the training cells."""
    def mean(k: str) -> np.ndarray:
        return X[train & (cond == k)].mean(0)

    return mean("ctrl") + sum(mean(f"{g}+ctrl") - mean("ctrl") for g in genes_of(condition))


# -- the generator's combination modes -------------------------------------------------------
def test_generator_combinations_are_additive_or_saturating():
    _, _, _, add = generated("additive", 4)
    _, _, _, sat = generated("saturating", 4)
    combos = [c for c in add if is_combo(c)]
    assert len(combos) == 8
    gap = {}
    for c in combos:
        a, b = genes_of(c)
        np.testing.assert_allclose(add[c], add[f"{a}+ctrl"] + add[f"{b}+ctrl"], atol=1e-6)
        gap[c] = np.abs(sat[c] - sat[f"{a}+ctrl"] - sat[f"{b}+ctrl"]).max()
        np.testing.assert_array_equal(add[f"{a}+ctrl"], sat[f"{a}+ctrl"])  # singles agree
    assert max(gap.values()) > 0.05  # tanh saturation: shared targets respond sub-additively
    with pytest.raises(ScgbError, match="combination"):
        synthetic_perturbation_adata(n_genes=10, n_perturbations=3, combination="multiplicative")


# -- additive ------------------------------------------------------------------------------
@pytest.mark.parametrize("combination", ["additive", "saturating"])
def test_additive_error_is_the_generators_non_additivity(combination):
    """Noise-free cells at the generator's own expected log expression (baseline + true
    shift): the additive baseline's error on every combination is exactly the generator's
    departure from additivity, true(A+B) - true(A) - true(B): zero for additive effects."""
    _, _, genes, truth = generated(combination, 4)
    base = np.random.default_rng(0).normal(2.0, 1.0, len(genes))
    train = np.array(["ctrl", *[c for c in truth if not is_combo(c) and c != "ctrl"]])
    cells = np.repeat(train, 3)
    y = base + np.stack([truth[c] for c in cells])
    model = AdditiveBaseline(ctx_for(genes)).fit(None, flags_of(cells, genes), y)
    combos = np.array([c for c in truth if is_combo(c)])
    pred = model.predict(None, flags_of(combos, genes))
    for c, p in zip(combos, pred, strict=True):
        a, b = genes_of(c)
        non_additivity = truth[c] - truth[f"{a}+ctrl"] - truth[f"{b}+ctrl"]
        np.testing.assert_allclose(p - (base + truth[c]), -non_additivity, atol=1e-5)
    assert model.report() == {"n_conditions": 8, "n_fallback": 0, "n_fallback_combinations": 0,
                              "fallback_conditions": []}


def _z_rms(pred: np.ndarray, X: np.ndarray, cond: np.ndarray, train: np.ndarray,
           combos: list[str]) -> float:
    """RMS over genes and combinations of (prediction - held-out combination mean) / its
    standard error under additivity (the four means' sampling variances: m_A, m_B, the
    control mean and the held-out mean)."""
    z2 = []
    for c, p in zip(combos, pred, strict=True):
        a, b = genes_of(c)
        held = cond == c
        var = X[held].var(0, ddof=1) / held.sum()
        for k in (f"{a}+ctrl", f"{b}+ctrl", "ctrl"):
            rows = train & (cond == k)
            var = var + X[rows].var(0, ddof=1) / rows.sum()
        z2.append((p - X[held].mean(0)) ** 2 / var)
    return float(np.sqrt(np.mean(z2)))


def test_additive_on_sampled_cells_is_its_estimates_and_their_sampling_error():
    """Generated counts (log-normalised), half of each single's and the controls' cells for
    training, every combination held out. The prediction is c + (m_A - c) + (m_B - c) from
    the training cells, to float precision; on additive effects its error is the sampling
    error of those means (z-scores of RMS ~1); on saturating effects of the same size it is
    larger (the non-additivity on top), and a wrong predictor (the train mean, or m_A + m_B
    without the control mean) is far off."""
    z = {}
    for combination in ("additive", "saturating"):
        X, cond, genes, _ = generated(combination, 1000)
        combo_cell = np.array([is_combo(c) for c in cond])
        train = (np.random.default_rng(0).random(len(cond)) < 0.5) & ~combo_cell
        flags = flags_of(cond, genes)
        model = AdditiveBaseline(ctx_for(genes)).fit(None, flags[train], X[train])
        combos = sorted(set(cond[combo_cell]))
        pred = model.predict(None, flags_of(np.array(combos), genes)).astype(np.float64)
        by_hand = np.stack([additive_by_hand(X, cond, train, c) for c in combos])
        np.testing.assert_allclose(pred, by_hand, rtol=1e-5, atol=1e-5)
        z[combination] = _z_rms(pred, X, cond, train, combos)
        if combination == "additive":
            train_mean = MeanBaseline(ctx_for(genes)).fit(None, flags[train], X[train])
            wrong = {
                "train mean": train_mean.predict(pred, flags_of(np.array(combos), genes)),
                "no control mean": by_hand + X[train & (cond == "ctrl")].mean(0),  # m_A + m_B
            }
            for name, p in wrong.items():
                assert _z_rms(p, X, cond, train, combos) > 5, name
    assert 0.8 < z["additive"] < 1.25, z
    assert z["saturating"] > z["additive"] + 0.3, z


def test_additive_falls_back_to_the_train_mean_and_says_so():
    genes = ["A", "B", "C", "D"]
    cells = np.array(["ctrl", "ctrl", "A+ctrl", "A+ctrl", "B+ctrl", "A+C"])
    y = np.arange(len(cells) * 4, dtype=np.float64).reshape(len(cells), 4) ** 1.5
    model = AdditiveBaseline(ctx_for(genes)).fit(None, flags_of(cells, genes), y)
    asked = np.array(["A+B", "A+C", "D+ctrl", "ctrl", "A+B"])
    pred = model.predict(None, flags_of(asked, genes))
    c, m_a, m_b = y[:2].mean(0), y[2:4].mean(0), y[4]
    np.testing.assert_allclose(pred[0], c + (m_a - c) + (m_b - c), rtol=1e-6)
    np.testing.assert_allclose(pred[4], pred[0])
    np.testing.assert_allclose(pred[1], y[2:].mean(0), rtol=1e-6)  # no single C: train mean
    np.testing.assert_allclose(pred[2], y[2:].mean(0), rtol=1e-6)  # unseen single
    np.testing.assert_allclose(pred[3], c, rtol=1e-6)
    assert model.report() == {"n_conditions": 3, "n_fallback": 2, "n_fallback_combinations": 1,
                              "fallback_conditions": ["A+C", "D+ctrl"]}
    with pytest.raises(ScgbError, match="controls and perturbed cells"):
        AdditiveBaseline(ctx_for(genes)).fit(None, flags_of(cells[2:], genes), y[2:])


# -- linear --------------------------------------------------------------------------------
def planted(noise: float, n_components: int = 3, ridge: float = 1e-8, rank: int = 3
            ) -> tuple[float, float, dict]:
    """Relative RMS error on held-out single perturbations of the linear and the mean
    baseline, on cells around c + A M A[g]ᵀ (a rank-``rank`` bilinear effect of the perturbed
    gene g's factor row) plus Gaussian noise. A has zero mean over all genes and over the
    training genes, so the training PCA spans it and the paper's centring b is zero: the
    model's form holds exactly and the truth is recoverable as noise -> 0."""
    n_genes, n_train, n_test, cells = 60, 30, 10, 20
    rng = np.random.default_rng(0)
    order = rng.permutation(n_genes)
    train_genes, test_genes = order[:n_train], order[n_train:n_train + n_test]
    basis, _ = np.linalg.qr(np.stack([np.ones(n_genes), np.isin(np.arange(n_genes),
                                                                 train_genes)], 1))
    Z = rng.normal(size=(n_genes, rank))
    A = Z - basis @ (basis.T @ Z)
    M = rng.normal(size=(rank, rank))  # not symmetric: a transposed W would be wrong
    c = np.full(n_genes, 2.0)
    names = [f"g{i}" for i in range(n_genes)]
    flags, y = [], []
    for g in [None, *train_genes]:
        f = np.zeros(n_genes, np.uint8)
        if g is not None:
            f[g] = 1
        mean = c if g is None else c + A @ M @ A[g]
        flags.append(np.repeat(f[None], cells, 0))
        y.append(mean + noise * rng.normal(size=(cells, n_genes)))
    flags, y = np.vstack(flags), np.vstack(y)
    model = LinearBaseline(ctx_for(names), n_components=n_components, ridge=ridge)
    model.fit(None, flags, y)
    train_mean = MeanBaseline(ctx_for(names)).fit(None, flags, y)
    test = np.zeros((n_test, n_genes), np.uint8)
    test[np.arange(n_test), test_genes] = 1
    truth = np.stack([c + A @ M @ A[g] for g in test_genes])
    scale = np.sqrt(np.mean((truth - c) ** 2))

    def err(m):
        return float(np.sqrt(np.mean((m.predict(test, test) - truth) ** 2)) / scale)

    return err(model), err(train_mean), model.report()


def test_linear_recovers_a_planted_low_rank_effect():
    exact, mean_err, info = planted(0.0)
    assert exact < 1e-6 and mean_err > 0.9
    assert info == {"n_components": 3, "n_fit_conditions": 31, "n_combinations_not_fitted": 0}
    small, large = planted(0.01)[0], planted(0.1)[0]
    assert small < 1e-3 and large < 1e-2
    assert 5 < large / small < 20  # the error is the noise's, linear in it
    # the paper's defaults (K = 10 > rank, λ = 0.1) still recover it
    default, _, info = planted(0.01, n_components=10, ridge=0.1)
    assert default < 2e-3 and info["n_components"] == 10


def test_linear_caps_components_and_needs_single_perturbations():
    genes = ["A", "B", "C", "D", "E"]
    cells = np.array(["ctrl", "ctrl", "A+ctrl", "B+ctrl", "A+B"])
    y = np.random.default_rng(0).normal(size=(len(cells), len(genes)))
    model = build_family("linear_baseline", ctx_for(genes), {"n_components": 50})
    model.fit(None, flags_of(cells, genes), y)
    assert model.report() == {"n_components": 4, "n_fit_conditions": 3,
                              "n_combinations_not_fitted": 1}
    assert model.predict(None, flags_of(np.array(["C+ctrl", "A+B"]), genes)).shape == (2, 5)
    # a control has embedding zero: it gets c + b, b the mean change over the fitted
    # conditions (control, A, B; the paper's row centring), never the combination A+B
    c = y[:2].mean(0)
    b = (np.zeros(5) + (y[2] - c) + (y[3] - c)) / 3
    np.testing.assert_allclose(model.predict(None, np.zeros((1, 5)))[0], c + b, rtol=1e-5)
    with pytest.raises(ScgbError, match="single-gene perturbation"):
        model.fit(None, flags_of(cells[[0, 4]], genes), y[[0, 4]])
    with pytest.raises(ScgbError, match="ridge"):
        build_family("linear_baseline", ctx_for(genes), {"ridge": -1.0})


# -- through the one run flow --------------------------------------------------------------
@pytest.fixture(scope="module")
def gears_combos(tmp_path_factory) -> Path:
    """The data stage's GEARS preparation of an additive synthetic dataset with combinations
    (split seed 1: every GEARS subgroup present)."""
    from scgraphbench.data.prepare import prepare_gears

    raw = synthetic_perturbation_adata(n_genes=40, n_perturbations=12, n_combos=24,
                                       cells_per_perturbation=20, n_control=150, seed=2,
                                       combination="additive")
    path = tmp_path_factory.mktemp("combos") / "combos.h5ad"
    prepare_gears(raw, dataset="combos", seed=1, n_top_genes=None,
                  source="synthetic_perturbation").write_h5ad(path)
    return path


def test_baselines_through_the_runner(gears_combos, tmp_path):
    import anndata as ad

    metrics = {f: run(str(gears_combos), None, f, {}, TRAIN, 0, str(tmp_path / f))
               for f in ("mean_baseline", "additive_baseline", "linear_baseline")}
    a = ad.read_h5ad(gears_combos)
    X = np.asarray(a.X, dtype=np.float64)
    cond, split = a.obs["condition"].astype(str).to_numpy(), a.obs["split"].astype(str).to_numpy()
    train = split == "train"
    with np.load(tmp_path / "additive_baseline" / "mean_expression.npz") as f:
        conds, pred = list(f["conditions"]), f["pred_mean"]
    seen = {g for c in set(cond[train]) if c.endswith("+ctrl") for g in genes_of(c)}
    fallback = sorted(c for c in conds if not set(genes_of(c)) <= seen)
    for c, p in zip(conds, pred, strict=True):
        expected = (X[train & (cond != "ctrl")].mean(0) if c in fallback
                    else additive_by_hand(X, cond, train, c))
        np.testing.assert_allclose(p, expected, rtol=1e-4, atol=1e-4)
    report = metrics["additive_baseline"]["additive_baseline"]
    assert report["n_conditions"] == len(conds) and report["n_fallback"] == len(fallback)
    assert {c.replace("+ctrl", "") for c in report["fallback_conditions"]} == {
        "+".join(sorted(genes_of(c))) if is_combo(c) else genes_of(c)[0] for c in fallback}
    assert metrics["linear_baseline"]["linear_baseline"]["n_components"] == 10
    assert "mean_baseline" not in metrics["mean_baseline"]  # no report: nothing added
    sub = {f: {g: v["pearson_delta"] for g, v in m["subgroups"].items()}
           for f, m in metrics.items()}
    assert set(sub["additive_baseline"]) == {"combo_seen0", "combo_seen1", "combo_seen2",
                                             "unseen_single", "combo_singles_trained"}
    assert sub["additive_baseline"]["combo_seen2"] > sub["mean_baseline"]["combo_seen2"] + 0.2
    # where both singles trained, the additive baseline never falls back
    trained = metrics["additive_baseline"]["subgroups"]["combo_singles_trained"]
    assert trained["n_perturbations"] == sum(is_combo(c) and c not in fallback for c in conds)
    assert sub["linear_baseline"]["unseen_single"] > sub["mean_baseline"]["unseen_single"]
    saved = json.loads((tmp_path / "additive_baseline" / "metrics.json").read_text())
    assert saved["additive_baseline"] == report


# -- the perturbation table and figure -----------------------------------------------------
def test_perturbation_study_shows_every_subgroup_and_the_fallbacks(tmp_path):
    """The perturbation table has pearson_delta per GEARS subgroup for every model, the
    baselines included; the figure has one panel per subgroup (and overall)."""
    pytest.importorskip("scgraphbench.report.inference")  # the report stage's statistics
    import pandas as pd

    from scgraphbench.report.studies import study_perturbation

    subgroups = {"combo_seen0": 1, "combo_seen1": 5, "combo_seen2": 3, "unseen_single": 6}
    rows = []
    for rep in range(3):
        for model, family, graph, level in (("mean_baseline", "mean_baseline", "none", 0.1),
                                            ("additive_baseline", "additive_baseline", "none",
                                             0.5),
                                            ("linear_baseline", "linear_baseline", "none", 0.4),
                                            ("gnn_gcn", "gnn_gcn", "coexpr", 0.6)):
            row = dict(task="perturbation", dataset="syn", replicate=rep, model=model,
                       family=family, graph=graph, setting="default", setting_study="main",
                       seed=0, collapsed=False, best_val_score=-1.0, pearson_delta=level + rep / 100,
                       time_per_step_s=0.1)
            for k, (g, n) in enumerate(subgroups.items()):
                row[f"subgroups/{g}/pearson_delta"] = level + k / 10 + rep / 100
                row[f"subgroups/{g}/n_perturbations"] = n
            if family == "additive_baseline":
                row.update({"additive_baseline/n_conditions": 15,
                            "additive_baseline/n_fallback": 12 + rep,
                            "additive_baseline/n_fallback_combinations": 6})
            rows.append(row)
    plan = {"datasets": {"syn": {"main": True}}, "settings": {}, "comparisons": []}
    table, md, fig = study_perturbation(pd.DataFrame(rows), plan)
    by_model = table.set_index("model")
    for g in subgroups:
        assert by_model[f"subgroups/{g}/pearson_delta_mean"].notna().all(), g
    assert by_model.loc["linear_baseline", "subgroups/combo_seen2/pearson_delta_mean"] == \
        pytest.approx(0.4 + 0.2 + 0.01)
    assert "combo_seen2 (n=3)" in md and "unseen_single (n=6)" in md
    per_subgroup = md.split("per GEARS subgroup")[1]
    linear = next(line for line in per_subgroup.splitlines() if "linear_baseline" in line)
    assert [c.strip() for c in linear.split("|")][4:8] == [
        "0.41 ± 0.01", "0.51 ± 0.01", "0.61 ± 0.01", "0.71 ± 0.01"]
    assert "13.0 of 15.0 test perturbations (6.0 combinations)" in md
    panels = [ax.get_title() for ax in fig.axes]
    assert panels == ["overall", *subgroups]
    labels = {t.get_text() for t in fig.axes[0].get_yticklabels()}
    assert labels == {"mean_baseline", "additive_baseline", "linear_baseline", "gnn_gcn · coexpr"}
