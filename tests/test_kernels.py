"""The sparse graph-attention + diffusion kernel against dense references and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from scgraphbench.kernels import (
    CSRGraph,
    diffusion_coefficients,
    graph_attention,
    heat_mass,
    heat_steps_for_tolerance,
)
from scgraphbench.kernels.graph_attention import _dropout_mask
from scgraphbench.kernels.reference import (
    dense_attention_matrix,
    graph_attention_dense,
    graph_attention_gather,
)
from scgraphbench.models.token_graph import with_global_nodes

MODES = [None, "ppr", "heat"]
# the CPU implementations; every exactness test runs on each (triton: test_triton_kernel.py)
IMPLS = ["torch_sparse", "fused"]


def random_graph(n: int, seed: int = 0, cls: bool = False) -> CSRGraph:
    """Directed graph whose rows have very different degrees (0 to ~n/2 before self-loops)."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for i in range(n):
        deg = int(rng.integers(0, max(2, n // 2)))
        nb = rng.choice(n, size=deg, replace=False)
        rows += [i] * deg
        cols += list(nb)
    A = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, n))
    return CSRGraph.from_scipy(with_global_nodes(A, int(cls)), add_self_loops=True)


def qkv(B: int, H: int, n: int, d: int, seed: int = 0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(B, H, n, d, generator=gen, dtype=dtype, requires_grad=True) for _ in range(3)
    ]


def grads(out: torch.Tensor, inputs, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(out.shape, generator=gen, dtype=out.dtype)
    return torch.autograd.grad(out, inputs, g)


# --------------------------------------------------------------------------- graph


def test_csr_graph_structure_and_transpose() -> None:
    rows, cols = [0, 1, 1, 3, 3, 0], [1, 2, 3, 0, 3, 2]
    data = np.array([1, 1, 1, 1, 1, 0], dtype=np.float32)  # (0, 2): explicit zero, no edge
    A = sp.csr_matrix((data, (rows, cols)), shape=(4, 4))
    assert A.nnz == 6
    g = CSRGraph.from_scipy(A, add_self_loops=True)
    dense = np.zeros((4, 4), bool)
    dense[g.row.numpy(), g.col.numpy()] = True
    expected = (A.toarray() != 0) | np.eye(4, dtype=bool)
    assert (dense == expected).all()
    assert g.n_edges == int(expected.sum())
    # the transposed CSR lists A^T's edges, and perm maps them back to A's edge ids
    At = sp.csr_matrix(expected.T.astype(np.float32))
    assert torch.equal(g.crow_t, torch.from_numpy(At.indptr.astype(np.int64)))
    assert torch.equal(g.col_t, torch.from_numpy(At.indices.astype(np.int64)))
    assert torch.equal(g.row[g.perm], g.col_t)
    t_rows = torch.repeat_interleave(torch.arange(4), g.crow_t[1:] - g.crow_t[:-1])
    assert torch.equal(g.col[g.perm], t_rows)
    no_loops = CSRGraph.from_scipy(A, add_self_loops=False)
    assert no_loops.n_edges == int((A.toarray() != 0).sum())
    moved = g.to("cpu")
    assert torch.equal(moved.perm, g.perm) and moved.n == g.n


def test_block_diagonal_matches_scipy() -> None:
    g = random_graph(7, seed=3)
    crow, col, crow_t, col_t = g.block_diagonal(3)
    A = sp.csr_matrix((np.ones(g.n_edges), g.col.numpy(), g.crow.numpy()), shape=(7, 7))
    big = sp.block_diag([A] * 3, format="csr")
    assert np.array_equal(crow.numpy(), big.indptr) and np.array_equal(col.numpy(), big.indices)
    big_t = sp.csr_matrix(big.T)
    big_t.sort_indices()
    assert np.array_equal(crow_t.numpy(), big_t.indptr)
    assert np.array_equal(col_t.numpy(), big_t.indices)
    assert g.block_diagonal(3)[1] is col  # cached


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cls", [False, True])
def test_matches_dense_reference(mode: str | None, cls: bool, impl: str) -> None:
    g = random_graph(13, seed=1, cls=cls)
    q, k, v = qkv(2, 3, g.n, 4)
    out = graph_attention(q, k, v, g, diffusion=mode, steps=5, impl=impl)
    ref = graph_attention_dense(q, k, v, g, diffusion=mode, steps=5)
    assert torch.allclose(out, ref, rtol=0, atol=1e-9)
    for a, b in zip(grads(out, (q, k, v)), grads(ref, (q, k, v)), strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-9)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", MODES)
def test_gradcheck(mode: str | None, impl: str) -> None:
    g = random_graph(5, seed=2, cls=True)
    q, k, v = qkv(1, 2, g.n, 2)
    assert torch.autograd.gradcheck(
        lambda a, b, c: graph_attention(a, b, c, g, diffusion=mode, steps=3, impl=impl),
        (q, k, v),
    )
    # a larger case through gradcheck's random-projection mode (cheap per call)
    g = random_graph(12, seed=3, cls=True)
    q, k, v = qkv(2, 2, g.n, 4)
    assert torch.autograd.gradcheck(
        lambda a, b, c: graph_attention(a, b, c, g, diffusion=mode, steps=6, impl=impl),
        (q, k, v),
        fast_mode=True,
    )


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("checkpoint", [True, False])
@pytest.mark.parametrize("mode", ["ppr", "heat"])
def test_gradcheck_checkpointed_and_normalised(mode: str, checkpoint: bool, impl: str) -> None:
    g = random_graph(10, seed=4)
    q, k, v = qkv(2, 2, g.n, 3)
    assert torch.autograd.gradcheck(
        lambda a, b, c: graph_attention(
            a, b, c, g, diffusion=mode, steps=4, checkpoint=checkpoint, normalise_heat=True,
            impl=impl,
        ),
        (q, k, v),
        fast_mode=True,
    )


@pytest.mark.parametrize("impl", IMPLS)
def test_checkpoint_gives_identical_gradients(impl: str) -> None:
    g = random_graph(20, seed=5)
    q, k, v = qkv(2, 2, g.n, 8)
    kw = dict(diffusion="ppr", impl=impl)
    stored = grads(graph_attention(q, k, v, g, checkpoint=False, **kw), (q, k, v))
    recomputed = grads(graph_attention(q, k, v, g, checkpoint=True, **kw), (q, k, v))
    for a, b in zip(stored, recomputed, strict=True):
        if impl == "torch_sparse":  # the same products in the same order
            assert torch.equal(a, b)
        else:  # recomputed weights are exp(s - lse), the forward's exp(s - max) / sum
            assert torch.allclose(a, b, rtol=0, atol=1e-13)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mode", MODES)
def test_rows_without_edges(impl: str, mode: str | None) -> None:
    A = sp.csr_matrix(np.array([[0, 1, 1], [0, 0, 0], [1, 0, 0]], dtype=np.float32))
    g = CSRGraph.from_scipy(A, add_self_loops=False)  # row 1 has no neighbours
    q, k, v = qkv(2, 2, 3, 2)
    out = graph_attention(q, k, v, g, diffusion=mode, steps=3, impl=impl)
    ref = graph_attention_dense(q, k, v, g, diffusion=mode, steps=3)
    assert torch.isfinite(out).all() and torch.allclose(out, ref, rtol=0, atol=1e-12)
    if mode is None:  # a row of A that is zero gives a zero output row
        assert torch.equal(out[0, 0, 1], torch.zeros(2, dtype=out.dtype))
    for a, b in zip(grads(out, (q, k, v)), grads(ref, (q, k, v)), strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_agrees_with_gather_version_float32(impl: str) -> None:
    g = random_graph(60, seed=6, cls=True)
    q, k, v = qkv(3, 2, g.n, 8, dtype=torch.float32)
    for mode in MODES:
        out = graph_attention(q, k, v, g, diffusion=mode, impl=impl)
        old = graph_attention_gather(q, k, v, g, diffusion=mode)
        assert torch.allclose(out, old, atol=1e-5)
        for a, b in zip(grads(out, (q, k, v)), grads(old, (q, k, v)), strict=True):
            assert torch.allclose(a, b, atol=1e-4)


# --------------------------------------------------------------------------- closed forms


def test_ppr_converges_to_closed_form() -> None:
    g = random_graph(12, seed=7, cls=True)
    q, k, v = qkv(1, 2, g.n, 3)
    alpha = 0.25
    A = dense_attention_matrix(q, k, g).detach()
    eye = torch.eye(g.n, dtype=A.dtype)
    closed = alpha * torch.linalg.solve(eye - (1 - alpha) * A, v.detach())
    errors = [
        (graph_attention(q, k, v, g, diffusion="ppr", alpha=alpha, steps=s).detach() - closed)
        .abs()
        .max()
        .item()
        for s in (2, 10, 100)
    ]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-10
    # the truncated series bound: (1-alpha)^K * 2 ||V||_inf
    assert errors[1] <= 2 * 0.75**10 * v.abs().max().item()


def test_heat_converges_to_expm() -> None:
    g = random_graph(12, seed=8, cls=True)
    q, k, v = qkv(1, 2, g.n, 3)
    t = 5.0
    A = dense_attention_matrix(q, k, g).detach()
    closed = math.exp(-t) * torch.linalg.matrix_exp(t * A) @ v.detach()
    errors = [
        (graph_attention(q, k, v, g, diffusion="heat", t=t, steps=s).detach() - closed)
        .abs()
        .max()
        .item()
        for s in (6, 14, 40)
    ]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-10
    # the tolerance helper's guarantee: error <= tol * ||V||_inf
    for tol in (0.05, 1e-3):
        steps = heat_steps_for_tolerance(t, tol)
        out = graph_attention(q, k, v, g, diffusion="heat", t=t, steps=steps).detach()
        assert (out - closed).abs().max().item() <= tol * v.abs().max().item()


def test_heat_truncation_numbers() -> None:
    # t=5, K=6 keeps a Poisson(5) CDF at 5 of the weight: 61.6%, not all of it
    assert heat_mass(5.0, 6) == pytest.approx(0.6159607, abs=1e-6)
    assert heat_steps_for_tolerance(5.0, 0.01) == 12
    assert 1 - heat_mass(5.0, 11) > 0.01 >= 1 - heat_mass(5.0, 12)
    assert sum(diffusion_coefficients("heat", 6, t=5.0, normalise_heat=True)) == pytest.approx(1)
    assert sum(diffusion_coefficients("ppr", 6, alpha=0.3)) == pytest.approx(1)
    with pytest.raises(ValueError, match="tolerance"):
        heat_steps_for_tolerance(5.0, 0.0)


def test_normalise_heat() -> None:
    g = random_graph(10, seed=9)
    q, k, v = qkv(2, 2, g.n, 3)
    raw = graph_attention(q, k, v, g, diffusion="heat", steps=6)
    norm = graph_attention(q, k, v, g, diffusion="heat", steps=6, normalise_heat=True)
    assert torch.allclose(norm, raw / heat_mass(5.0, 6), atol=1e-12)
    ref = graph_attention_dense(q, k, v, g, diffusion="heat", steps=6, normalise_heat=True)
    assert torch.allclose(norm, ref, atol=1e-9)
    # A is row-stochastic, so a constant V passes through unchanged once normalised
    const = torch.ones(2, 2, g.n, 3, dtype=torch.float64) * torch.tensor(
        [1.0, -2.0, 3.0], dtype=torch.float64
    )
    out = graph_attention(q, k, const, g, diffusion="heat", normalise_heat=True)
    assert torch.allclose(out, const, atol=1e-12)


# --------------------------------------------------------------------------- dropout


def test_dropout_only_in_training() -> None:
    g = random_graph(15, seed=10)
    q, k, v = qkv(2, 2, g.n, 4)
    plain = graph_attention(q, k, v, g, diffusion="ppr")
    evaluated = graph_attention(q, k, v, g, diffusion="ppr", dropout_p=0.5, training=False)
    assert torch.equal(plain, evaluated)
    torch.manual_seed(0)
    trained = graph_attention(q, k, v, g, diffusion="ppr", dropout_p=0.5, training=True)
    torch.manual_seed(0)
    again = graph_attention(q, k, v, g, diffusion="ppr", dropout_p=0.5, training=True)
    assert torch.equal(trained, again) and not torch.allclose(trained, plain)


@pytest.mark.parametrize("mode", MODES)
def test_dropout_matches_reference_with_same_mask(mode: str | None) -> None:
    g = random_graph(11, seed=11, cls=True)
    q, k, v = qkv(2, 2, g.n, 4)
    p = 0.3
    torch.manual_seed(123)
    out = graph_attention(q, k, v, g, diffusion=mode, steps=4, dropout_p=p, training=True)
    torch.manual_seed(123)
    mask = _dropout_mask((4, g.n_edges), p, q)
    assert 0 < mask.mean().item() < 1
    ref = graph_attention_dense(q, k, v, g, diffusion=mode, steps=4, dropout_p=p, keep_mask=mask)
    assert torch.allclose(out, ref, rtol=0, atol=1e-9)
    for a, b in zip(grads(out, (q, k, v)), grads(ref, (q, k, v)), strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-9)


def test_dropout_gradcheck_fixed_seed() -> None:
    g = random_graph(10, seed=12)
    q, k, v = qkv(2, 2, g.n, 3)

    def fn(a, b, c):
        torch.manual_seed(7)  # the same mask at every call
        return graph_attention(a, b, c, g, diffusion="heat", steps=3, dropout_p=0.4, training=True)

    assert torch.autograd.gradcheck(fn, (q, k, v), fast_mode=True)


# --------------------------------------------------------------------------- input checks


def test_bad_inputs_raise() -> None:
    g = random_graph(5)
    q, k, v = qkv(1, 1, 5, 2)
    with pytest.raises(ValueError, match="unknown diffusion"):
        graph_attention(q, k, v, g, diffusion="pagerank")
    with pytest.raises(ValueError, match="graph has 5 nodes"):
        graph_attention(q[:, :, :4], k[:, :, :4], v[:, :, :4], g)
    with pytest.raises(ValueError, match="share one"):
        graph_attention(q, k[..., :1], v, g)
    with pytest.raises(ValueError, match="dropout_p"):
        graph_attention(q, k, v, g, dropout_p=1.0, training=True)
    with pytest.raises(ValueError, match="steps must be >= 1 for heat"):
        graph_attention(q, k, v, g, diffusion="heat", steps=0)


@pytest.mark.parametrize("impl", IMPLS)
def test_zero_and_one_step_edge_cases(impl: str) -> None:
    g = random_graph(7, seed=14)
    q, k, v = qkv(1, 2, g.n, 3)
    # PPR with no step is the identity on V; heat with one step is e^{-t} V
    assert torch.equal(graph_attention(q, k, v, g, diffusion="ppr", steps=0, impl=impl), v)
    heat1 = graph_attention(q, k, v, g, diffusion="heat", steps=1, t=2.0, impl=impl)
    assert torch.allclose(heat1, math.exp(-2.0) * v)
    for mode, steps in (("ppr", 1), ("heat", 2), ("ppr", 2), ("heat", 3)):
        out = graph_attention(q, k, v, g, diffusion=mode, steps=steps, impl=impl)
        ref = graph_attention_dense(q, k, v, g, diffusion=mode, steps=steps)
        assert torch.allclose(out, ref, atol=1e-9)
        for a, b in zip(grads(out, (q, k, v)), grads(ref, (q, k, v)), strict=True):
            assert torch.allclose(a, b, atol=1e-9)


@pytest.mark.parametrize("impl", IMPLS)
def test_no_grad_forward_matches(impl: str) -> None:
    g = random_graph(9, seed=13)
    q, k, v = qkv(1, 2, g.n, 3)
    with torch.no_grad():
        out = graph_attention(q, k, v, g, diffusion="heat", impl=impl)
    assert torch.allclose(out, graph_attention_dense(q, k, v, g, diffusion="heat"), atol=1e-9)


# --------------------------------------------------------------------------- model layer


@pytest.mark.parametrize("family", ["masked_attention", "genohoption_ppr", "genohoption_heat"])
def test_model_families_use_fast_kernel(family: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import scgraphbench.models.genohoption as gh
    from scgraphbench.models.registry import ModelContext

    calls = []
    real = gh.graph_attention

    def spy(*args, **kwargs):
        calls.append(kwargs.get("diffusion"))
        return real(*args, **kwargs)

    monkeypatch.setattr(gh, "graph_attention", spy)
    n_genes = 12
    A = sp.random(n_genes, n_genes, density=0.3, random_state=0, format="csr")
    ctx = ModelContext(
        task="annotation",
        n_genes=n_genes,
        gene_names=[f"G{i}" for i in range(n_genes)],
        n_classes=3,
        graph=A,
        extra={},
    )
    from scgraphbench.models.registry import build_family

    model = build_family(family, ctx, dict(d_model=16, n_layers=2, n_heads=2, dropout=0.0,
                                           pooling="cls"))
    x = torch.rand(4, n_genes)
    out = model(x)
    out["logits"].sum().backward()
    expected = {"masked_attention": None, "genohoption_ppr": "ppr", "genohoption_heat": "heat"}
    assert calls == [expected[family]] * 2
    # the layers share one graph object: one set of index arrays, whichever kernel runs
    first, second = (block.mixer.graph for block in model.blocks)
    assert first is second
    # the layer's core equals the dense reference on its own (CLS-augmented) graph
    mixer = model.blocks[0].mixer
    q, k, v = qkv(2, 2, n_genes + 1, 8, dtype=torch.float32)
    ref = graph_attention_dense(q, k, v, mixer.graph, diffusion=expected[family])
    assert torch.allclose(mixer.core(q, k, v), ref, atol=1e-5)


# --------------------------------------------------------------------------- benchmark script


def _benchmark_module():
    from conftest import load_benchmark

    return load_benchmark("attention_cost")


@pytest.mark.parametrize("variant", ["dense_sdpa", "ppr", "ppr_torch_sparse", "pyg_gat"])
def test_benchmark_point_runs_in_process(variant: str) -> None:
    bench = _benchmark_module()
    spec = {
        "variant": variant,
        "n": 40,
        "degree": 4,
        "batch": 2,
        "d_model": 16,
        "heads": 4,
        "core_only": False,
        "reps": 2,
        "seed": 0,
        "mem_cap_mb": 4000,
        "time_cap_s": 60,
        "threads": 0,
        "device": "cpu",
    }
    res = bench.run_point(spec)
    assert res["status"] == "ok" and len(res["times_s"]) == 2
    assert res["time_s"] > 0 and res["cpu_s"] > 0 and res["peak_mem_mb"] >= 0
    assert isinstance(res["minor_faults"], int) and res["minor_faults"] >= 0
    assert res["n_edges"] == 40 * 4 and res["mean_degree"] == 4
    # auto runs the fused kernel on CPU at every size
    expected = {"ppr": "fused", "ppr_torch_sparse": "torch_sparse"}.get(variant)
    assert res["impl"] == expected and res["reps_run"] == 2


def test_benchmark_ratios_and_slopes() -> None:
    bench = _benchmark_module()
    points = []
    for n in (500, 1000, 2000, 4000):
        points.append(
            {
                "variant": "dense_sdpa",
                "n": n,
                "degree": 20,
                "status": "ok",
                "time_s": 1e-6 * n**2,
                "cpu_s": 2e-6 * n**2,
                "peak_mem_mb": 0.1 * n,
            }
        )
        points.append(
            {
                "variant": "ppr",
                "n": n,
                "degree": 20,
                "status": "ok",
                "time_s": 1e-3 * n,
                "cpu_s": 2e-3 * n,
                "peak_mem_mb": 0.05 * n,
            }
        )
        points.append(
            {
                "variant": "materialised",
                "n": n,
                "degree": 20,
                "status": "ok" if n < 4000 else "skipped",
                "time_s": 1e-5 * n**2,
                "cpu_s": 1e-5 * n**2,
                "peak_mem_mb": 1e-3 * n**2,
            }
        )
    bench.add_ratios(points)
    ppr_2000 = next(p for p in points if p["variant"] == "ppr" and p["n"] == 2000)
    assert ppr_2000["speedup_vs_sdpa"] == pytest.approx(2.0)
    assert ppr_2000["mem_vs_sdpa"] == pytest.approx(0.5)
    assert ppr_2000["mem_vs_materialised"] == pytest.approx(0.05 / 2)
    ppr_4000 = next(p for p in points if p["variant"] == "ppr" and p["n"] == 4000)
    assert ppr_4000["mem_vs_materialised"] is None  # materialised was skipped there
    rows = {r["variant"]: r for r in bench.slopes(points)}
    assert rows["dense_sdpa"]["time_slope"] == pytest.approx(2.0)
    assert rows["ppr"]["time_slope"] == pytest.approx(1.0)
    assert rows["ppr"]["mem_slope"] == pytest.approx(1.0)
    assert rows["materialised"]["sizes"] == [500, 1000, 2000]
    # the slope over n >= 1000 only: a bend below 1000 does not count
    points[1]["time_s"] = 1.0  # ppr at n=500 made slow
    rows = {r["variant"]: r for r in bench.slopes(points, slope_from=1000)}
    assert rows["ppr"]["time_slope_from"] == pytest.approx(1.0)
    assert rows["ppr"]["time_slope"] < 0.9


def test_benchmark_rejects_bad_input(tmp_path, capsys) -> None:
    bench = _benchmark_module()
    out = tmp_path / "out"
    assert bench.main(["--variants", "flash", "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown variant" in err and "--variants" in err and "fix:" in err
    assert bench.main(["--sizes", "1", "--out-dir", str(out)]) == 2
    assert not out.exists()


def test_benchmark_skips_points_over_the_memory_cap(tmp_path) -> None:
    bench = _benchmark_module()
    argv = [
        "--sizes",
        "300",
        "600",
        "--degrees",
        "5",
        "--variants",
        "materialised",
        "ppr",
        "--mem-cap-mb",
        "0.5",
        "--out-dir",
        str(tmp_path),
    ]
    assert bench.main(argv) == 0
    import pandas as pd

    table = pd.read_csv(tmp_path / "attention_cost.csv")
    assert len(table) == 4 and set(table["status"]) == {"skipped"}
    assert table["reason"].str.contains("memory cap").all()
    assert (tmp_path / "attention_cost.png").stat().st_size > 0
    assert (tmp_path / "attention_cost_slopes.csv").exists()


def test_benchmark_end_to_end(tmp_path) -> None:
    """The script as the lead runs it, at toy size: three worker processes (about 15 s)."""
    bench = _benchmark_module()
    argv = ["--sizes", "48", "--degrees", "4", "5", "--reps", "1", "--batch", "2",
            "--variants", "dense_sdpa", "ppr", "--threads", "1", "--out-dir", str(tmp_path)]
    assert bench.main(argv) == 0
    import json

    result = json.loads((tmp_path / "attention_cost.json").read_text())
    points = {(p["variant"], p["degree"]): p for p in result["points"]}
    assert all(p["status"] == "ok" for p in points.values()), points
    assert all(len(p["load_avg_before"]) == 3 for p in points.values())
    # dense SDPA does not read the graph: measured once, repeated for the other degree
    assert points[("dense_sdpa", 5)]["measured_at_degree"] == 4
    assert points[("dense_sdpa", 5)]["time_s"] == points[("dense_sdpa", 4)]["time_s"]
    ppr = points[("ppr", 5)]
    assert ppr["impl"] == "fused" and ppr["threads"] == 1
    assert ppr["speedup_vs_sdpa"] == pytest.approx(
        points[("dense_sdpa", 5)]["time_s"] / ppr["time_s"]
    )
    assert result["settings"]["head_dim"] == 16
    assert (tmp_path / "attention_cost.png").stat().st_size > 0
    assert "time_slope_from" in (tmp_path / "attention_cost_slopes.csv").read_text()
