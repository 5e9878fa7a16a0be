"""benchmarks/kernel_passes.py: each timed pass of the fused CPU loops is the right product."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import load_benchmark


def _module():
    return load_benchmark("kernel_passes")


@pytest.mark.parametrize("head_dim", [16, 12])  # 12: rows padded to the SIMD width
def test_every_pass_matches_scipy_in_float64(head_dim: int) -> None:
    errors = _module().check_passes(60, 7, head_dim=head_dim, seed=3)
    assert set(errors) == set(_module().PASSES)
    assert max(errors.values()) < 1e-12


def test_a_wrong_pass_is_refused_before_timing(monkeypatch) -> None:
    bench = _module()
    right = bench._horner

    def without_base(reps, n, crow, col, p, one, z, dst, dp, vs, theta):  # drops theta_k V
        right(reps, n, crow, col, p, one, z, dst, dp, vs, theta * 0)

    monkeypatch.setattr(bench, "_horner", without_base)
    with pytest.raises(AssertionError, match="horner"):
        bench.check_passes(40, 5)


def test_main_writes_rows_and_slopes(tmp_path: Path) -> None:
    out = tmp_path / "passes"
    assert _module().main(["--sizes", "40", "80", "--degree", "5", "--slices", "2", "--reps", "1",
                           "--out-dir", str(out)]) == 0
    table = pd.read_csv(out / "kernel_passes.csv")
    assert sorted(table["pass"].unique()) == sorted(_module().PASSES)
    assert set(table.n) == {40, 80} and (table.ns_per_edge > 0).all()
    assert np.allclose(table[table.n == 40].growth_vs_first, 1.0)
    summary = json.loads((out / "kernel_passes.json").read_text())
    assert set(summary["time_slope"]) == set(_module().PASSES)
    assert max(summary["float64_check_vs_scipy"].values()) < 1e-9


def test_sizes_not_above_the_degree_are_refused() -> None:
    with pytest.raises(SystemExit):
        _module().parse_args(["--sizes", "5", "--degree", "20"])
