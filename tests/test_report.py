"""The report stage on simulated runs tables: claims compare exactly their declared arms,
choices are made on validation, collapsed runs are left out and counted, verdicts are
calibrated (no true effect -> 'supported' at most at alpha), and studies group correctly.

Runs tables are simulated from a real plan: every run the plan lists gets a metric
``base[dataset, replicate] + effect[(model, graph)] + noise``, its validation score the
same effect with independent noise, and costs from per-model base costs.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scgraphbench.plan import build_plan
from scgraphbench.report.aggregate import label_runs
from scgraphbench.report.claims import compute_claims
from scgraphbench.report.studies import STUDIES, run_study

CONFIG = {
    "datasets": {
        "ann": {"source": "scanpy_pbmc68k_reduced", "label_key": "bulk_labels"},
        "ann2": {"source": "scanpy_pbmc68k_reduced", "label_key": "bulk_labels"},
        "pert": {"source": "synthetic_perturbation"},
    },
    "graphs": {"coexpr": {"kind": "coexpr"}, "random_coexpr": {"kind": "random",
                                                               "base": "coexpr"}},
    "models": {
        "logreg": {}, "mean_baseline": {}, "transformer": {},
        "gnn_gcn": {"graphs": ["coexpr", "random_coexpr"]},
        "gnn_sage": {"graphs": ["coexpr"], "tasks": ["annotation"]},
        "genohoption_ppr": {"graphs": ["coexpr", "random_coexpr"]},
        "masked_attention": {"graphs": ["coexpr"], "tasks": ["annotation"]},
    },
    "train": {"epochs": 5},
    "replicates": 5,
    "seeds": [0, 1],
    "studies": {
        "ablation": {"arms": {"full": {"model": "genohoption_ppr", "graph": "coexpr"},
                              "random graph": {"model": "genohoption_ppr",
                                               "graph": "random_coexpr"},
                              "without iteration": {"model": "masked_attention",
                                                    "graph": "coexpr"}},
                     "datasets": ["ann"]},
        "sensitivity": {"grid": {"genohoption_ppr": {"alpha": [0.5]}}, "datasets": ["ann"],
                        "replicates": 3},
    },
}
PLAN = build_plan(CONFIG)
PLAN_JSON = PLAN.to_json()
COST = {"logreg": (0.05, 50), "mean_baseline": (0.01, 10), "transformer": (1.0, 800),
        "gnn_gcn": (0.3, 80), "gnn_sage": (0.3, 80), "genohoption_ppr": (0.4, 120),
        "masked_attention": (0.5, 300)}


def simulate(effects: dict[tuple[str, str], float] | None = None, *, seed: int = 0,
             noise: float = 0.0075, val_effects: dict | None = None,
             collapsed: set[tuple[str, str]] = frozenset(), plan: dict = PLAN_JSON
             ) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    effects, val_effects = effects or {}, val_effects or {}
    base = {}
    rows = []
    for r in plan["runs"]:
        unit = (r["dataset"], r["replicate"])
        base.setdefault(unit, rng.normal(0.7, 0.02))
        arm = (r["model"], r["graph"])
        value = base[unit] + effects.get(arm, 0.0) + rng.normal(0, noise / math.sqrt(2))
        val = base[unit] + val_effects.get(arm, effects.get(arm, 0.0)) + rng.normal(0, 0.005)
        t, mem = COST[r["model"]]
        metric = "macro_f1" if r["task"] == "annotation" else "pearson_delta"
        rows.append({**r, metric: value, "accuracy": value, "best_val_score": val,
                     "time_per_step_s": t * math.exp(rng.normal(0, 0.1)),
                     "peak_memory_mb": mem * math.exp(rng.normal(0, 0.1)),
                     "collapsed": arm in collapsed})
    runs = pd.DataFrame(rows)
    label_runs(runs, plan)
    return runs


def claims_of(runs: pd.DataFrame) -> pd.DataFrame:
    return compute_claims(runs, PLAN_JSON).set_index("comparison")


def test_claims_compare_exactly_their_arms():
    """A +0.03 gain of GenoHoption on its prior, with its random control at -0.05 in the
    same table: the claim's effect is +0.03 (the control is not pooled in)."""
    runs = simulate({("genohoption_ppr", "coexpr"): 0.03,
                     ("genohoption_ppr", "random_coexpr"): -0.05})
    c = claims_of(runs)
    row = c.loc["genohoption_annotation"]
    assert row["estimate"] == pytest.approx(0.03, abs=0.006)
    assert row["verdict"] == "supported" and row["n_pairs"] == 10  # 2 datasets x 5 splits
    prior = c.loc["prior_vs_random_annotation:genohoption_ppr:coexpr"]
    assert prior["estimate"] == pytest.approx(0.08, abs=0.006) and prior["verdict"] == "supported"
    assert c.loc["prior_vs_random_annotation"]["verdict"] == "supported"  # the headline


def test_best_of_is_chosen_on_validation_not_test():
    """gnn_sage is best on test but worst on validation: the GNN arm takes gnn_gcn."""
    runs = simulate({("gnn_sage", "coexpr"): 0.05}, val_effects={("gnn_sage", "coexpr"): -0.1,
                                                                  ("gnn_gcn", "coexpr"): 0.0})
    row = claims_of(runs).loc["gnn_competitive"]
    assert "gnn_gcn · coexpr" in row["chosen_a"] and "gnn_sage" not in row["chosen_a"]
    assert abs(row["estimate"]) < 0.01


def test_no_significant_difference_is_inconclusive_with_its_mde():
    runs = simulate(seed=3)
    row = claims_of(runs).loc["logreg_vs_transformer"]
    assert row["verdict"] in ("inconclusive", "contradicted")
    if row["verdict"] == "inconclusive":
        assert row["mde"] > 0 and "not" not in row["verdict"]


def test_contradicted_the_other_way_and_ratios_against_the_paper():
    runs = simulate({("genohoption_ppr", "coexpr"): -0.05})
    c = claims_of(runs)
    assert c.loc["genohoption_annotation", "verdict"] == "contradicted"
    # GNN: 0.3x the Transformer's time (the paper: 0.25-0.5) and 0.1x its memory (0.125)
    assert c.loc["gnn_compute", "verdict"] == "supported"
    assert c.loc["gnn_compute", "estimate"] == pytest.approx(0.3, rel=0.1)
    assert c.loc["gnn_memory", "verdict"] == "supported"


def test_memory_ratio_above_the_papers_is_contradicted():
    global COST
    saved = COST["gnn_gcn"]
    COST["gnn_gcn"] = (0.3, 400)  # half the Transformer's memory, not an eighth
    try:
        c = claims_of(simulate())
    finally:
        COST["gnn_gcn"] = saved
    assert c.loc["gnn_memory", "verdict"] == "contradicted"


def test_collapsed_runs_are_left_out_and_counted():
    runs = simulate({("genohoption_ppr", "coexpr"): 0.03},
                    collapsed={("genohoption_ppr", "coexpr")})
    row = claims_of(runs).loc["genohoption_annotation"]
    assert row["verdict"] == "not testable"
    assert row["excluded_collapsed"] == (runs["collapsed"] & (runs["setting"] == "default")
                                         & runs["dataset"].isin(["ann", "ann2"])).sum()


def test_missing_arms_are_not_testable():
    runs = simulate()
    c = claims_of(runs)
    # no additive/linear baseline is configured here
    assert c.loc["graph_vs_additive", "verdict"] == "not testable"
    assert c.loc["prior_vs_random_annotation:gnn_sage:coexpr", "verdict"] == "not testable"


# -- calibration through the whole claims layer ------------------------------------------
def test_no_true_effect_supports_no_claim_beyond_alpha():
    """500 tables with no true effect anywhere (same costs for every model): every claim's
    'supported' rate stays within alpha + 3 Monte-Carlo SE. Equivalence ('competitive')
    claims are excluded: with no difference, equivalence is the truth."""
    saved = dict(COST)
    for k in COST:
        COST[k] = (1.0, 800)
    n = 500
    counts: dict[str, int] = {}
    try:
        for i in range(n):
            table = compute_claims(simulate(seed=1000 + i), PLAN_JSON)
            table = table[table["comparison"] == table["family"]]  # one row per claim
            for cid, verdict in zip(table["comparison"], table["verdict"], strict=True):
                counts[cid] = counts.get(cid, 0) + (verdict == "supported")
    finally:
        COST.update(saved)
    bound = 0.05 + 3 * math.sqrt(0.05 * 0.95 / n)
    rates = {k: v / n for k, v in counts.items() if k != "gnn_competitive"}
    assert rates and max(rates.values()) <= bound, rates


def test_planted_effects_of_the_papers_size_are_found():
    """GenoHoption +0.0127 accuracy on 10 units (2 datasets x 5 replicates): found in >= 80%
    of 200 tables; a planted prior effect likewise."""
    n, found, prior = 200, 0, 0
    for i in range(n):
        c = claims_of(simulate({("genohoption_ppr", "coexpr"): 0.0127}, seed=i))
        found += c.loc["genohoption_annotation", "verdict"] == "supported"
        prior += c.loc["prior_vs_random_annotation", "verdict"] == "supported"
    assert found / n >= 0.8 and prior / n >= 0.8


# -- studies ---------------------------------------------------------------------------------
@pytest.mark.parametrize("study", [s for s in STUDIES if s not in ("scaling", "few_shot",
                                                                    "positional")])
def test_study_writes_table_markdown_and_figures(tmp_path, study: str) -> None:
    runs = simulate({("gnn_gcn", "coexpr"): 0.02}, collapsed={("masked_attention", "coexpr")})
    path = tmp_path / "runs.csv"
    runs.to_csv(path, index=False)
    table = run_study(study, str(path), PLAN_JSON, str(tmp_path / f"{study}.csv"),
                      str(tmp_path / f"{study}.png"))
    md = (tmp_path / f"{study}.md").read_text()
    assert md.count("±") >= 3
    assert (tmp_path / f"{study}.png").stat().st_size > 5_000
    assert (tmp_path / f"{study}.pdf").exists()
    if study == "main":
        t = table.set_index(["dataset", "model", "graph"])
        gcn = t.loc[("ann", "gnn_gcn", "coexpr")]
        assert gcn["delta_vs_baseline"] == pytest.approx(0.02, abs=0.01)
        assert gcn["n_replicates"] == 5 and gcn["p_holm_vs_baseline"] >= gcn["p_vs_baseline"]
        assert not math.isnan(gcn["p_vs_random"])
        assert t.loc[("ann", "masked_attention", "coexpr"), "collapsed"] == 10
        assert "collapsed" in md
    if study == "cost":
        gcn = table.set_index(["dataset", "model"]).loc[("ann", "gnn_gcn")]
        assert gcn["time_per_step_s_ratio_vs_transformer"].iloc[0] == pytest.approx(0.3, rel=0.15)


def test_sensitivity_groups_by_graph_and_reads_defaults_from_the_config(tmp_path):
    plan = build_plan({**CONFIG, "models": {**CONFIG["models"], "genohoption_ppr": {
        "graphs": ["coexpr", "random_coexpr"], "params": {"alpha": 0.3}}}}).to_json()
    runs = simulate({("genohoption_ppr", "random_coexpr"): -0.3}, plan=plan)
    table, _, _ = STUDIES["sensitivity"](runs, plan)
    assert set(table["graph"]) == {"coexpr"}  # the random-graph runs are not pooled in
    assert sorted(table["value"]) == [0.3, 0.5]  # the default point is the config's alpha
    default = table[table["value"] == 0.3].iloc[0]
    assert default["n_replicates"] == 3 and default["macro_f1_mean"] > 0.6


def test_ablation_compares_each_arm_with_the_full_model():
    runs = simulate({("genohoption_ppr", "random_coexpr"): -0.05})
    table, md, _ = STUDIES["ablation"](runs, PLAN_JSON)
    rnd = table.set_index("arm").loc["random graph"]
    assert rnd["delta_vs_full"] == pytest.approx(-0.05, abs=0.01)
    assert rnd["p_holm_vs_full"] < 0.05


def test_cost_model_fit_and_estimate_arithmetic() -> None:
    from scgraphbench.report.estimate import estimate_jobs, fit_cost_model, summary_text

    n = np.array([250, 500, 1000, 2000])
    scaling = pd.DataFrame({"family": "transformer", "n_genes": n, "status": "ok",
                            "time_per_step_s": 0.4 * (n / 1000) ** 2})
    scaling = pd.concat([scaling, pd.DataFrame({"family": ["gnn_gcn"], "n_genes": [4000],
                                                "status": ["skipped: over 600 s"],
                                                "time_per_step_s": [np.nan]})])
    model = fit_cost_model(scaling)
    assert set(model) == {"transformer"}
    assert model["transformer"]["seconds_at_1000_genes"] == pytest.approx(0.4)
    assert model["transformer"]["exponent"] == pytest.approx(2.0)
    jobs = [dict(family="transformer", n_genes=2000, n_train_cells=320, epochs=10,
                 batch_size=32),
            dict(family="unknown", n_genes=100, n_train_cells=10, epochs=1, batch_size=32)]
    table = estimate_jobs(jobs, model)
    # 1.6 s/step x 10 steps/epoch x 10 epochs = 160 s
    assert table.loc[0, "hours"] == pytest.approx(160 / 3600)
    assert math.isnan(table.loc[1, "hours"])
    text = summary_text(table, "GPU")
    assert "2 training jobs" in text and "no measured cost for: unknown" in text


def test_tuning_picks_each_replicates_setting_on_validation():
    from scgraphbench.report.arms import main_settings

    plan = build_plan({**CONFIG, "tuning": {"train": {"lr": [1e-3, 1e-2]},
                                            "params": {"logreg": {"C": [0.1, 1.0]}}}})
    names = {n for (m, n) in plan.settings if m == "transformer"}
    assert names == {"default", "tune0", "tune1"}
    assert {n for (m, n) in plan.settings if m == "mean_baseline"} == {"default"}
    runs = simulate(plan=plan.to_json())
    # tune1 wins on validation in replicate 0 only; its test score is worse there
    hit = (runs["model"] == "transformer") & (runs["replicate"] == 0)
    runs.loc[hit & (runs["setting"] == "tune1"), "best_val_score"] = 2.0
    runs.loc[hit & (runs["setting"] == "tune1"), "macro_f1"] = 0.1
    chosen = main_settings(runs, tuned=True)
    tf = chosen[chosen["model"] == "transformer"]
    assert set(tf.loc[tf["replicate"] == 0, "setting"]) == {"tune1"}
    pool = runs[runs["model"] == "transformer"]
    best = pool.groupby(["dataset", "replicate", "graph", "setting"])["best_val_score"].mean()
    expect = best.groupby(level=[0, 1, 2]).idxmax().map(lambda k: k[3])
    got = tf.groupby(["dataset", "replicate", "graph"])["setting"].first()
    assert got.to_dict() == expect.to_dict()  # every replicate: its best on validation
    assert len(tf) == len(runs[(runs["model"] == "transformer") & (runs["setting"] == "default")])


def test_positional_study_keeps_runs_at_the_prior_and_counts_them():
    """Without positional encoding, order-dependent labels cannot be learned: those runs sit
    at the class prior and are the study's result, not runs to leave out."""
    from scgraphbench.report.studies import study_positional

    rows = []
    for rep in (0, 1):
        for pe, acc, collapsed in ((True, 0.9, False), (False, 0.5, True)):
            rows.append({"dataset": "positional_order", "model": "transformer", "graph": "none",
                         "replicate": rep, "seed": 0, "setting": f"pe-{'on' if pe else 'off'}",
                         "setting_study": "positional", "setting_key": "positional",
                         "setting_value": str(pe), "accuracy": acc, "macro_f1": acc / 2,
                         "collapsed": collapsed})
    table, md, _ = study_positional(pd.DataFrame(rows), {})
    off = table[table["positional_encoding"] == "off"].iloc[0]
    assert off["accuracy_mean"] == pytest.approx(0.5) and off["at_prior"] == 2
    assert table[table["positional_encoding"] == "on"].iloc[0]["at_prior"] == 0
    assert "at_prior" in md


def test_frontier_names_only_the_frontier_and_the_baseline():
    from scgraphbench.report.figures import frontier_figure, pareto

    rows = [("logreg", "logreg", "none", "none", 0.60, 0.001, 5.0),
            ("mlp", "mlp", "none", "none", 0.70, 0.002, 20.0),
            ("transformer", "transformer", "none", "none", 0.72, 0.10, 90.0),
            ("gnn_gcn", "gnn_gcn", "coexpr", "coexpr", 0.65, 0.05, 60.0),  # beaten by mlp
            ("gnn_sage", "gnn_sage", "coexpr", "coexpr", 0.64, 0.06, 70.0)]  # beaten too
    table = pd.DataFrame(rows, columns=["model", "family", "graph", "graph_kind", "score_mean",
                                        "time_per_step_s_mean", "peak_memory_mb_mean"])
    table = table.assign(dataset="d", task="annotation", metric="macro_f1", score_std=0.01)
    front = pareto(table, "time_per_step_s_mean", "score_mean")
    assert list(front["model"]) == ["logreg", "mlp", "transformer"]
    fig = frontier_figure(table)
    names = {t.get_text() for t in fig.axes[0].texts}
    assert {"mlp", "transformer", " logreg (baseline)"} <= names
    assert not {"logreg", "gnn_gcn·coexpr", "gnn_sage·coexpr"} & names
