"""Aggregation math on known inputs, claims verdicts, and that study figures are produced."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from scgraphbench.report.claims import compute_claims
from scgraphbench.report.stats import paired_test, summarise
from scgraphbench.report.studies import run_study


def make_runs(deltas: dict[str, list[float]], base: list[float]) -> pd.DataFrame:
    """Annotation runs: a transformer with macro-F1 `base` per seed, others base + delta."""
    rows = []
    for seed, b in enumerate(base):
        rows.append(dict(task="annotation", dataset="d", model="transformer", family="transformer",
                         graph="none", setting="default", seed=seed, macro_f1=b, accuracy=b,
                         time_per_step_s=1.0, peak_memory_mb=800.0, n_parameters=1000))
        for model, ds in deltas.items():
            family, graph = {"gnn": ("gnn_gcn", "coexpr"), "gnn_rand": ("gnn_gcn", "random"),
                             "logreg": ("logreg", "none")}[model]
            rows.append(dict(task="annotation", dataset="d", model="gnn" if model != "logreg"
                             else "logreg", family=family, graph=graph, setting="default",
                             seed=seed, macro_f1=b + ds[seed], accuracy=b + ds[seed],
                             time_per_step_s=0.3, peak_memory_mb=80.0, n_parameters=500))
    runs = pd.DataFrame(rows)
    runs["setting_key"], runs["setting_value"] = "", ""
    return runs


def test_summarise_mean_and_sample_std() -> None:
    runs = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 2, "seed": [0, 1, 2, 0, 1],
                         "acc": [0.5, 0.7, 0.9, 0.2, 0.4]})
    out = summarise(runs, ["acc"], ["model"]).set_index("model")
    assert out.loc["a", "acc_mean"] == pytest.approx(0.7)
    assert out.loc["a", "acc_std"] == pytest.approx(0.2)  # ddof=1
    assert out.loc["b", "acc_std"] == pytest.approx(math.sqrt(0.02))
    assert out.loc["a", "n_seeds"] == 3


def test_paired_test_matches_scipy_and_pairs_by_seed() -> None:
    a = pd.Series([0.8, 0.82, 0.79, 0.85, 0.81], index=[4, 3, 2, 1, 0])
    b = pd.Series([0.75, 0.80, 0.78, 0.80, 0.70], index=[4, 3, 2, 1, 0])
    t = paired_test(a, b.sample(frac=1.0, random_state=1))  # order must not matter
    assert t.n_pairs == 5
    assert t.mean_difference == pytest.approx(float(np.mean(a - b)))
    assert t.p_ttest == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert t.p_wilcoxon == pytest.approx(stats.wilcoxon(a - b).pvalue)


def test_paired_test_edge_cases() -> None:
    s = pd.Series([0.5, 0.6], index=[0, 1])
    assert paired_test(s, s).p_ttest == 1.0
    one = paired_test(s.iloc[:1], s.iloc[:1] - 0.1)
    assert one.n_pairs == 1 and math.isnan(one.p_ttest)
    assert paired_test(s, pd.Series([0.1], index=[7])).n_pairs == 0


def test_claims_verdicts_are_computed_from_runs() -> None:
    base = [0.70, 0.72, 0.71, 0.69, 0.73]
    runs = make_runs({"gnn": [0.01, 0.0, 0.02, 0.01, 0.0],
                      "gnn_rand": [-0.05, -0.06, -0.04, -0.05, -0.07],
                      "logreg": [0.1, 0.12, 0.09, 0.11, 0.1]}, base)
    settings = {"baseline": "transformer", "random_control": {"coexpr": "random"},
                "families": {"transformer": "transformer", "gnn": "gnn_gcn",
                             "logreg": "logreg"}}
    claims = compute_claims(runs, settings).set_index("claim")
    verdict = claims["verdict"]
    assert verdict.filter(like="competitive").item() == "reproduced"
    assert verdict.filter(like="compute").item() == "reproduced"  # 0.3 <= 0.5
    assert verdict.filter(like="memory").item() == "reproduced"  # 0.1 <= 0.125
    assert verdict.filter(like="Logistic").item() == "reproduced"
    assert verdict.filter(like="random graph").item() == "reproduced"
    assert verdict.filter(like="perturbation").item() == "not testable"
    assert claims["measured_value"].filter(like="compute").item() == pytest.approx(0.3)

    worse = make_runs({"gnn": [-0.1, -0.12, -0.09, -0.11, -0.1]}, base)
    claims = compute_claims(worse, settings).set_index("claim")
    assert claims["verdict"].filter(like="competitive").item() == "not reproduced"
    assert claims["verdict"].filter(like="Logistic").item() == "not testable"


@pytest.mark.parametrize("study", ["main", "cost"])
def test_study_writes_table_markdown_and_figures(tmp_path, study: str) -> None:
    runs = make_runs({"gnn": [0.01, 0.0, 0.02], "logreg": [0.1, 0.1, 0.1]}, [0.7, 0.72, 0.71])
    path = tmp_path / "runs.csv"
    runs.to_csv(path, index=False)
    table = run_study(study, str(path), {"studies": {}, "baseline": "transformer"},
                      str(tmp_path / f"{study}.csv"), str(tmp_path / f"{study}.png"))
    assert (tmp_path / f"{study}.md").read_text().count("±") >= 3
    assert (tmp_path / f"{study}.png").stat().st_size > 5_000
    assert (tmp_path / f"{study}.pdf").exists()
    if study == "main":
        gnn = table.set_index("model").loc["gnn"]
        assert gnn["delta_vs_transformer"] == pytest.approx(0.01)
        assert gnn["macro_f1_std"] == pytest.approx(0.01)
    else:
        gnn = table.set_index("model").loc["gnn"]
        assert gnn["time_per_step_s_ratio_vs_transformer"] == pytest.approx(0.3)


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

