"""The perturbation task end to end: the run path, baselines, resume, bad inputs, and the
synthetic ground truth being learnable."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from scgraphbench.cli import main
from scgraphbench.data.synthetic import synthetic_perturbation_adata
from scgraphbench.errors import ScgbError
from scgraphbench.evaluate.perturbation import METRICS
from scgraphbench.train.run import run

PARAMS = {"d_model": 8, "n_layers": 1, "n_heads": 2, "dropout": 0.1}
TRAIN = {"epochs": 3, "patience": 5, "lr": 3e-3, "batch_size": 32, "device": "cpu"}
VOLATILE = {
    "time_per_step_s",
    "epoch_time_s",
    "train_time_s",
    "inference_cells_per_s",
    "inference_time_s",
    "peak_memory_mb",
    "environment",
    "resumed_from_epoch",
}


pytestmark = pytest.mark.usefixtures("one_thread")


def make_prepared_perturbation(seed: int = 0, **synthetic) -> ad.AnnData:
    """A prepared-layout perturbation AnnData built directly from the synthetic generator:
    a quarter of the perturbations held out for test, a sixth for val, controls spread over
    the three splits; DE genes by |mean shift| (the test does not need scanpy's ranking)."""
    params = dict(n_genes=30, n_perturbations=12, cells_per_perturbation=16, n_control=120)
    params.update(synthetic)
    a = synthetic_perturbation_adata(seed=seed, de_genes=False, **params)
    cond = a.obs["condition"].astype(str).to_numpy()
    perts = sorted(set(cond) - {"ctrl"})
    rng = np.random.default_rng(seed)
    order = rng.permutation(perts)
    n_test, n_val = max(1, len(perts) // 4), max(1, len(perts) // 6)
    split_of = {p: "test" for p in order[:n_test]}
    split_of.update({p: "val" for p in order[n_test : n_test + n_val]})
    split = np.array([split_of.get(c, "train") for c in cond], dtype=object)
    ctrl_rows = rng.permutation(np.flatnonzero(cond == "ctrl"))
    split[ctrl_rows[: len(ctrl_rows) // 5]] = "test"
    split[ctrl_rows[len(ctrl_rows) // 5 : len(ctrl_rows) // 3]] = "val"
    X = a.X.toarray().astype(np.float32)
    genes = a.var["gene_name"].astype(str).tolist()
    obs = pd.DataFrame(
        {
            "condition": pd.Categorical(cond),
            "control": cond == "ctrl",
            "split": pd.Categorical(split, categories=["train", "val", "test"]),
        },
        index=a.obs_names,
    )
    out = ad.AnnData(X=X, obs=obs, var=pd.DataFrame({"gene_name": genes}, index=genes))
    out.layers["counts"] = a.layers["counts"].toarray()
    ctrl_mean = X[cond == "ctrl"].mean(0)
    out.uns["top20_de"] = {
        p: [genes[i] for i in np.argsort(-np.abs(X[cond == p].mean(0) - ctrl_mean))[:20]]
        for p in perts
    }
    out.uns["subgroup"] = {p: "unseen_single" for p in perts if split_of.get(p) == "test"}
    out.uns["grn"] = a.uns["grn"]
    out.uns["scgraphbench"] = {
        "dataset": "tinypert",
        "task": "perturbation",
        "seed": seed,
        "n_top_genes": len(genes),
        "source": "tests",
    }
    return out


@pytest.fixture(scope="module")
def tiny_pert(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pert") / "pert.h5ad"
    make_prepared_perturbation().write_h5ad(path)
    return path


def _cli(
    prepared: Path, out: Path, family: str, params: dict | None = None, train: dict | None = None
) -> int:
    return main(
        [
            "train",
            "--prepared",
            str(prepared),
            "--family",
            family,
            "--params",
            json.dumps(params or {}),
            "--train",
            json.dumps(train or TRAIN),
            "--meta",
            json.dumps({"dataset": "tinypert", "model": family, "graph": "none"}),
            "--out-dir",
            str(out),
        ]
    )


def test_perturbation_run_end_to_end_through_the_cli(tiny_pert, tmp_path):
    assert _cli(tiny_pert, tmp_path, "transformer", PARAMS) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["task"] == "perturbation" and m["dataset"] == "tinypert"
    for key in (
        *METRICS,
        "subgroups",
        "n_test_perturbations",
        "best_val_loss",
        "history",
        "n_parameters",
        "time_per_step_s",
        "epoch_time_s",
        "train_time_s",
        "inference_cells_per_s",
        "peak_memory_mb",
        "attention_flops_per_cell",
        "environment",
    ):
        assert key in m, key
    assert set(m["subgroups"]) == {"unseen_single"}
    assert m["subgroups"]["unseen_single"]["n_perturbations"] == m["n_test_perturbations"] == 3
    assert m["subgroups"]["unseen_single"]["pearson_delta"] == pytest.approx(m["pearson_delta"])
    assert all("val_loss" in h for h in m["history"])
    table = pd.read_csv(tmp_path / "predictions.csv")
    assert list(table.columns) == ["condition", "subgroup", "n_cells", *METRICS]
    assert len(table) == 3 and (table["n_cells"] == 16).all()
    assert table["pearson_delta"].mean() == pytest.approx(m["pearson_delta"])
    with np.load(tmp_path / "mean_expression.npz") as f:
        assert f["pred_mean"].shape == f["true_mean"].shape == (3, 30)
        assert list(f["conditions"]) == list(table["condition"])
    # the dataset carries its ground-truth GRN: the attention probe compares with random edges
    probe = m["attention_edges"]
    assert probe["reference"] == "uns:grn" and 0 < probe["mass_known"] < 1
    assert probe["density_known"] == pytest.approx(probe["density_random"])


@pytest.mark.parametrize("family", ["mean_baseline", "control_baseline"])
def test_non_learned_baselines(tiny_pert, tmp_path, family):
    assert _cli(tiny_pert, tmp_path, family) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["n_parameters"] == 30 and m["epochs_run"] == 1
    assert m["attention_flops_per_cell"] is None and "attention_edges" not in m
    prepared = ad.read_h5ad(tiny_pert)
    train = (prepared.obs["split"] == "train").to_numpy()
    ctrl = prepared.obs["control"].to_numpy()
    rows = train & (ctrl if family == "control_baseline" else ~ctrl)
    with np.load(tmp_path / "mean_expression.npz") as f:  # the same prediction everywhere
        np.testing.assert_allclose(
            f["pred_mean"],
            np.broadcast_to(prepared.X[rows].mean(0), f["pred_mean"].shape),
            rtol=1e-5,
            atol=1e-5,
        )


def test_perturbation_resume_equals_uninterrupted_and_is_deterministic(tiny_pert, tmp_path):
    def go(out: str, **kw):
        return run(
            str(tiny_pert), None, "transformer", PARAMS, TRAIN, 0, str(tmp_path / out), **kw
        )

    full = go("full")
    assert go("killed", stop_after_epoch=1) is None
    resumed = go("killed")
    assert resumed["resumed_from_epoch"] == 2
    stable = lambda m: {k: v for k, v in m.items() if k not in VOLATILE}  # noqa: E731
    assert stable(resumed) == stable(full)
    assert stable(go("again")) == stable(full)


def _broken(tiny_pert: Path, tmp_path: Path, edit) -> Path:
    a = ad.read_h5ad(tiny_pert)
    edit(a)
    path = tmp_path / "broken.h5ad"
    a.write_h5ad(path)
    return path


def test_perturbation_of_a_gene_absent_from_the_data(tiny_pert, tmp_path, capsys):
    def edit(a):
        cond = a.obs["condition"].astype(str)
        first = cond[cond != "ctrl"].iloc[0]
        a.obs["condition"] = cond.replace(first, "NOTAGENE+ctrl").astype("category")

    path = _broken(tiny_pert, tmp_path, edit)
    assert _cli(path, tmp_path / "out", "transformer", PARAMS) == 2
    err = capsys.readouterr().err
    assert "NOTAGENE" in err and "field 'condition'" in err and "fix:" in err
    assert "Traceback" not in err and not (tmp_path / "out" / "metrics.json").exists()


def test_empty_validation_split_perturbation(tiny_pert, tmp_path):
    def edit(a):
        a.obs.loc[(a.obs["split"] == "val") & ~a.obs["control"], "split"] = "train"

    path = _broken(tiny_pert, tmp_path, edit)
    with pytest.raises(ScgbError, match="'val' split has no perturbed cells") as e:
        run(str(path), None, "mean_baseline", {}, TRAIN, 0, str(tmp_path / "out"))
    assert e.value.field == "split"


def test_missing_de_genes_and_wrong_family_are_clear_errors(tiny_pert, tmp_path):
    path = _broken(tiny_pert, tmp_path, lambda a: a.uns.pop("top20_de"))
    with pytest.raises(ScgbError, match="top20_de"):
        run(str(path), None, "mean_baseline", {}, TRAIN, 0, str(tmp_path / "a"))
    with pytest.raises(ScgbError, match="does not do the perturbation task"):
        run(str(tiny_pert), None, "logreg", {}, TRAIN, 0, str(tmp_path / "b"))
    with pytest.raises(ScgbError, match=r"has no parameter\(s\) \['x'\]"):
        run(str(tiny_pert), None, "mean_baseline", {"x": 1}, TRAIN, 0, str(tmp_path / "c"))


def test_synthetic_ground_truth_is_learnable(tmp_path):
    """A small Transformer beats the mean baseline on unseen perturbations (pearson_delta):
    the effect is a function of the perturbed gene, which the mean cannot represent."""
    path = tmp_path / "learn.h5ad"
    make_prepared_perturbation(
        seed=1, n_genes=30, n_perturbations=16, cells_per_perturbation=24
    ).write_h5ad(path)
    train = {**TRAIN, "epochs": 6, "lr": 5e-3}
    model = run(
        str(path), None, "transformer", {**PARAMS, "d_model": 16}, train, 0, str(tmp_path / "tf")
    )
    mean = run(str(path), None, "mean_baseline", {}, train, 0, str(tmp_path / "mean"))
    assert model["pearson_delta"] > mean["pearson_delta"] + 0.2
    assert model["pearson_delta_de"] > mean["pearson_delta_de"]


def test_with_prepare_gears(tmp_path):
    """The data stage's real preparation of the synthetic source feeds the run path."""
    from scgraphbench.data.prepare import prepare_gears

    raw = synthetic_perturbation_adata(
        n_genes=30, n_perturbations=10, n_combos=6, cells_per_perturbation=12, n_control=100, seed=2
    )
    prepared = prepare_gears(
        raw, dataset="syn", seed=0, n_top_genes=None, source="synthetic_perturbation"
    )
    path = tmp_path / "syn.h5ad"
    prepared.write_h5ad(path)
    assert _cli(path, tmp_path / "run", "transformer", PARAMS, {**TRAIN, "epochs": 1}) == 0
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    gears_groups = {"combo_seen0", "combo_seen1", "combo_seen2", "unseen_single"}
    extra = m["subgroups"].pop("combo_singles_trained", None)
    assert set(m["subgroups"]) <= gears_groups
    assert sum(g["n_perturbations"] for g in m["subgroups"].values()) == m["n_test_perturbations"]
    if extra is not None:  # combinations whose singles both trained: a part of combo_seen2
        assert 0 < extra["n_perturbations"] <= m["subgroups"]["combo_seen2"]["n_perturbations"]
