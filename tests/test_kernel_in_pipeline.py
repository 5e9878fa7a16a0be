"""benchmarks/kernel_in_pipeline.py: the kernel implementations compared in training runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import load_benchmark


def _module():
    return load_benchmark("kernel_in_pipeline")


def _run(impl: str, seed: int, step: float, f1: float, losses: list, preds: list) -> dict:
    return {"genes": 128, "family": "genohoption_ppr", "graph": "coexpr", "impl": impl,
            "seed": seed, "impl_ran": f"{impl}:4", "time_per_step_s": step,
            "train_time_s": 1.0, "wall_s": 1.0, "epochs_run": len(losses),
            "val_macro_f1": f1, "macro_f1": f1, "accuracy": f1,
            "train_losses": json.dumps(losses), "predictions": json.dumps(preds)}


def test_compare_pairs_each_run_with_the_reference_of_its_seed() -> None:
    bench = _module()
    runs = pd.DataFrame([
        _run("torch_sparse", 0, 0.04, 0.60, [2.0, 1.0], ["a", "b", "c", "d"]),
        _run("fused", 0, 0.02, 0.62, [2.0, 1.1], ["a", "b", "c", "a"]),
        _run("torch_sparse", 1, 0.05, 0.70, [1.0], ["a"]),
        _run("fused", 2, 0.01, 0.70, [1.0], ["a"]),  # no reference run: left out
    ])
    table = bench.compare(runs)
    assert len(table) == 1
    row = table.iloc[0]
    assert row.speedup_vs_reference == pytest.approx(2.0)
    assert row.d_macro_f1 == pytest.approx(0.02)
    assert row.loss_rel_diff_epoch1 == 0.0
    assert row.loss_rel_diff_max == pytest.approx(0.1)
    assert row.same_test_labels == 0.75
    assert row.reference_ran == "torch_sparse:4"


def test_benchmark_runs_both_kernels_in_training(tmp_path: Path) -> None:
    bench = _module()
    out = tmp_path / "out"
    code = bench.main(["--families", "genohoption_ppr", "--impls", "torch_sparse", "fused",
                       "torch_sparse_ulp",
                       "--seeds", "0", "--train", '{"epochs": 1}', "--work", str(tmp_path),
                       "--out-dir", str(out)])
    assert code == 0
    runs = pd.read_csv(out / "runs.csv").set_index("impl")
    # every kernel call of a run went to the implementation the run asked for
    assert runs.loc["torch_sparse", "impl_ran"].startswith("torch_sparse:")
    assert runs.loc["fused", "impl_ran"].startswith("fused:")
    assert ";" not in runs.loc["fused", "impl_ran"]
    assert runs.loc["torch_sparse_ulp", "impl_ran"].startswith("torch_sparse:")
    table = pd.read_csv(out / "comparison.csv").set_index("impl")
    assert len(table) == 2
    # after one epoch the fused kernel's run is apart by round-off only; the nudged weights
    # move a run further (training amplifies them from the first step, while the attention
    # branches start at LayerScale 0), but they do move it
    assert 0 < table.loc["fused", "loss_rel_diff_epoch1"] < 1e-5
    assert 0 < table.loc["torch_sparse_ulp", "loss_rel_diff_epoch1"] < 1e-2
    steps = pd.read_csv(out / "step_check.csv")
    assert len(steps) == 1 and steps.logits_rel_diff.iloc[0] < 1e-5
    assert steps.grad_rel_diff.iloc[0] < 1e-4
    assert not list(tmp_path.rglob("checkpoint.pt"))  # the reference's too, once read
    assert table.loc["fused", "speedup_vs_reference"] > 0
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["settings"]["reference"] == "torch_sparse"
    assert (out / "summary.csv").exists()
