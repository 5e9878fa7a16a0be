"""Cost of one attention layer on a gene graph: dense vs sparse, time and peak memory vs n.

One layer = QKV projection, attention core, output projection (``--core-only``: the core
alone, on leaf q, k, v), forward + backward, float32, batch B=32, d_model=64 split over H=4
heads (16 dimensions per head). Graphs: each gene attends to itself and k-1 genes drawn
uniformly at random (mean degree k, self-loop included).

Variants
  dense_sdpa      torch scaled_dot_product_attention, no mask (flash-style kernel on CPU)
  materialised    softmax(QK^T/sqrt(d)) V with the (B, H, n, n) matrix materialised
  masked_sdpa     SDPA with the graph as a boolean (n, n) mask
  pyg_transformer PyG TransformerConv(64, 16, heads=4) on the batch as B disjoint graphs
  pyg_gat         PyG GATConv(64, 16, heads=4) likewise (its own projections; additive scores)
  neighbour       scgraphbench.kernels.graph_attention, no diffusion, impl="auto": the
                  fused kernel (numba on CPU, Triton on CUDA)
  ppr             ... PPR diffusion, K=6, alpha=0.25
  heat            ... heat diffusion, K=6, t=5
  ppr_store       ... PPR keeping the diffusion states for the backward (checkpoint=False)
  neighbour_torch_sparse, ppr_torch_sparse, heat_torch_sparse
                  the same on the torch.sparse implementation (impl="torch_sparse", the
                  kernel before the fused ones; it keeps the states)
  ppr_checkpoint  torch.sparse PPR recomputing the states in the backward (off by default)

Each (variant, n, k) runs in a fresh subprocess: warm-up, then ``--reps`` timed steps
(median reported; fewer when a step is so slow that the reps would pass ``--time-cap-s``).
dense_sdpa and materialised do not read the graph, so they are measured at the first degree
only and their points are repeated for the others (``measured_at_degree``). Each point
records the load average before and after it (the machine may be shared). Peak memory: on CPU the peak RSS above the RSS after set-up (inputs,
weights, graph and output gradient allocated; the kernel's peak counter is reset through
/proc/self/clear_refs); on CUDA ``max_memory_allocated`` above the allocation after set-up.
Points predicted to exceed ``--mem-cap-mb`` or ``--time-cap-s`` (from the formula in
``predicted_mb`` and from the previous size's time) are recorded as skipped with the
reason; a worker that crosses the memory cap while running stops itself.

Outputs in --out-dir: attention_cost.json (settings, environment, every point, ratios,
slopes), attention_cost.csv (one row per point with ratios to dense SDPA and to materialised
attention), attention_cost_slopes.csv (log-log slope of time and memory vs n) and
attention_cost.png (log-log time and memory vs n, one column per degree).

    python benchmarks/attention_cost.py --quick --out-dir results/benchmarks/attention
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from scgraphbench.errors import ScgbError
from scgraphbench.io import atomic_path, write_json

# ours: variant -> (diffusion, impl, checkpoint); checkpoint None = the impl's default
OURS = {
    "neighbour": (None, "auto", None),
    "ppr": ("ppr", "auto", None),
    "heat": ("heat", "auto", None),
    "ppr_store": ("ppr", "auto", False),
    "neighbour_torch_sparse": (None, "torch_sparse", None),
    "ppr_torch_sparse": ("ppr", "torch_sparse", None),
    "heat_torch_sparse": ("heat", "torch_sparse", None),
    "ppr_checkpoint": ("ppr", "torch_sparse", True),
}
VARIANTS = ["dense_sdpa", "materialised", "masked_sdpa", "pyg_transformer", "pyg_gat", *OURS]
DEFAULT_VARIANTS = [v for v in VARIANTS if v != "ppr_checkpoint"]
PYG = {"pyg_transformer", "pyg_gat"}
GRAPH_FREE = {"dense_sdpa", "materialised"}  # the same cost at every degree
# how time grows with n at fixed degree, to predict the next size from the last one
TIME_EXPONENT = {"dense_sdpa": 2.0, "materialised": 2.0, "masked_sdpa": 2.0}
REFERENCE = "dense_sdpa"


# --------------------------------------------------------------------------- worker side


def random_graph(n: int, degree: int, seed: int):
    """CSR adjacency: each row holds itself and degree-1 distinct random other genes."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    others = min(degree - 1, n - 1)
    cols = np.empty((n, others), dtype=np.int64)
    for i in range(n):
        pick = rng.choice(n - 1, size=others, replace=False)
        cols[i] = pick + (pick >= i)  # skip the diagonal; the self-loop is added below
    rows = np.repeat(np.arange(n), others)
    A = sp.csr_matrix((np.ones(rows.size, dtype=np.float32), (rows, cols.ravel())), shape=(n, n))
    return (A + sp.identity(n, dtype=np.float32, format="csr")).tocsr()


def build_layer(variant: str, A, d_model: int, heads: int, core_only: bool, device, batch: int):
    """The variant's step (input -> output), its trainable parameters and its CSRGraph (ours
    only; its batched index arrays are built on first use, which is counted)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from scgraphbench.kernels import CSRGraph, graph_attention

    n = A.shape[0]
    dh = d_model // heads

    if variant in PYG:
        from torch_geometric.nn import GATConv, TransformerConv

        if variant == "pyg_transformer":
            conv = TransformerConv(d_model, dh, heads=heads)
        else:  # the graph already has self-loops
            conv = GATConv(d_model, dh, heads=heads, add_self_loops=False)
        conv = conv.to(device)
        coo = A.tocoo()
        # PyG messages flow source -> target: row i attends to col j means edge j -> i
        edge = torch.from_numpy(np.vstack([coo.col, coo.row]).astype(np.int64)).to(device)
        # the batch as B disjoint copies of the graph, built once (as a PyG DataLoader would)
        offsets = (torch.arange(batch, device=device) * n).repeat_interleave(edge.shape[1])
        batched = edge.repeat(1, batch) + offsets

        def pyg_step(x: torch.Tensor) -> torch.Tensor:
            return conv(x.reshape(batch * n, d_model), batched).view(batch, n, d_model)

        return pyg_step, list(conv.parameters()), None

    if variant == "masked_sdpa":
        mask = torch.zeros(n, n, dtype=torch.bool, device=device)
        coo = A.tocoo()
        mask[torch.from_numpy(coo.row).long(), torch.from_numpy(coo.col).long()] = True
    graph = CSRGraph.from_scipy(A, add_self_loops=True).to(device) if variant in OURS else None

    def core(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if variant == "dense_sdpa":
            return F.scaled_dot_product_attention(q, k, v)
        if variant == "masked_sdpa":
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        if variant == "materialised":
            scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
            return torch.softmax(scores, dim=-1) @ v
        diffusion, impl, checkpoint = OURS[variant]
        return graph_attention(
            q,
            k,
            v,
            graph,
            diffusion=diffusion,
            steps=6,
            alpha=0.25,
            t=5.0,
            checkpoint=checkpoint,
            impl=impl,
        )

    if core_only:
        return (lambda qkv: core(*qkv)), [], graph
    qkv_proj = nn.Linear(d_model, 3 * d_model).to(device)
    out_proj = nn.Linear(d_model, d_model).to(device)

    def layer_step(x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        qkv = qkv_proj(x).view(B, n, 3, heads, dh).permute(2, 0, 3, 1, 4)
        h = core(qkv[0], qkv[1], qkv[2])
        return out_proj(h.transpose(1, 2).reshape(B, n, d_model))

    return layer_step, [*qkv_proj.parameters(), *out_proj.parameters()], graph


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _fix_malloc() -> bool:
    """glibc only: fixed 64 KiB mmap threshold, eager trimming, free heap returned now."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 64 * 1024) == 1
        ok = ok and libc.mallopt(m_trim_threshold, 128 * 1024) == 1
        libc.malloc_trim(0)
        return ok
    except (OSError, AttributeError):
        return False


def _minor_faults() -> int:
    """This process's minor page faults so far: pages mapped without a disk read, here
    mostly fresh (zero-filled) pages of new large buffers."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _trim_malloc() -> None:
    """glibc only: give free heap pages back to the kernel (malloc_trim)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def run_point(spec: dict[str, Any]) -> dict[str, Any]:
    """Time and peak memory of one (variant, n, degree) in this (fresh) process."""
    import torch

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    cuda = device.type == "cuda"
    torch.manual_seed(spec["seed"])
    B, n, D, H = spec["batch"], spec["n"], spec["d_model"], spec["heads"]
    # one step on a small instance first (full batch, so that ops run multi-threaded):
    # library code pages, thread pools and lazy initialisation would otherwise count as
    # the layer's memory (~35 MB on CPU)
    n_small = min(n, 128)
    small = random_graph(n_small, spec["degree"], spec["seed"])
    small_fn, _, _ = build_layer(spec["variant"], small, D, H, spec["core_only"], device, B)
    if spec["core_only"] and spec["variant"] not in PYG:
        small_in: Any = [
            torch.randn(B, H, n_small, D // H, device=device, requires_grad=True) for _ in range(3)
        ]
    else:
        small_in = torch.randn(B, n_small, D, device=device, requires_grad=True)
    small_out = small_fn(small_in)
    small_out.backward(torch.randn_like(small_out))  # as the timed steps (not .sum())
    del small_fn, small_in, small_out
    A = random_graph(n, spec["degree"], spec["seed"])
    step_fn, params, graph = build_layer(spec["variant"], A, D, H, spec["core_only"], device, B)
    if spec["core_only"] and spec["variant"] not in PYG:
        inputs = [torch.randn(B, H, n, D // H, device=device, requires_grad=True) for _ in range(3)]
        arg: Any = inputs
    else:
        inputs = [torch.randn(B, n, D, device=device, requires_grad=True)]
        arg = inputs[0]
    grad_out = torch.randn(B, n, D, device=device)
    if spec["core_only"] and spec["variant"] not in PYG:
        grad_out = grad_out.view(B, n, H, D // H).transpose(1, 2).contiguous()

    def step() -> None:
        for t in [*inputs, *params]:
            t.grad = None  # as optimizer.zero_grad(set_to_none=True)
        out = step_fn(arg)
        out.backward(grad_out)
        if cuda:
            torch.cuda.synchronize(device)

    # memory baseline: everything above is set-up, the rest is the layer's own memory
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base_kb = _status_kb("VmRSS")
        _reset_peak_rss()  # for a point skipped after its warm-up step
        cap_kb = base_kb + spec["mem_cap_mb"] * 1024
        stop = threading.Event()

        def guard() -> None:  # stop before the machine runs out of memory
            while not stop.wait(0.005):
                if _status_kb("VmRSS") > cap_kb:
                    print(
                        json.dumps(
                            {
                                "status": "skipped",
                                "reason": (
                                    f"exceeded the memory cap of {spec['mem_cap_mb']} MB while running"
                                ),
                            }
                        )
                    )
                    sys.stdout.flush()
                    os._exit(3)

        watcher = threading.Thread(target=guard, daemon=True)
        watcher.start()
    times: list[float] = []
    cpu_times: list[float] = []  # all threads; robust to other processes sharing the cores
    faults: list[int] = []  # minor page faults: fresh pages the allocator maps per step
    t0 = time.perf_counter()
    step()  # warm-up (lazy initialisation, caches)
    first = time.perf_counter() - t0
    # slow steps (seconds each) get one more warm-up, memory step and rep less, and
    # fewer reps, so that the point fits the time cap
    slow = first >= 5.0
    overhead = 1 + (1 if slow else 3)  # the warm-ups and memory steps
    reps = min(spec["reps"], int(spec["time_cap_s"] / first) - overhead)
    if reps < 1:
        status, reason = (
            "skipped",
            (
                f"one step took {first:.1f} s; the warm-up, one rep and the memory step "
                f"would exceed the time cap of {spec['time_cap_s']} s"
            ),
        )
    else:
        status, reason = "ok", ""
        if not slow:
            step()  # second warm-up
        for _ in range(reps):
            f0 = _minor_faults()
            t0, c0 = time.perf_counter(), time.process_time()
            step()
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
            faults.append(_minor_faults() - f0)
    extra: dict[str, Any] = {}
    # memory: steps on their own, from a clean state
    for t in [*inputs, *params]:
        t.grad = None
    if graph is not None:
        graph._blocks.clear()  # count building the batched index arrays
    if cuda:
        if status == "ok":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            step()
        peak_mb = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        mem_method = "cuda max_memory_allocated above set-up"
    else:
        mem_method = "peak RSS (VmHWM) above the RSS before the step"
        if status == "ok":
            # glibc keeps freed heap memory and grows its mmap threshold up to 32 MB, so
            # RSS would follow the allocator's history; a fixed 64 KiB threshold makes
            # every large tensor its own mapping, returned on free: RSS tracks live memory
            if _fix_malloc():
                mem_method += " (glibc mmap threshold fixed at 64 KiB)"
            # the smaller of two steps: what the allocator keeps only ever adds (+-5%)
            peaks = []
            for _ in range(1 if slow else 2):
                for t in [*inputs, *params]:
                    t.grad = None
                if graph is not None:
                    graph._blocks.clear()
                _trim_malloc()  # freed heap pages would be reused without showing in RSS
                # reset first, then read the base: the peak since the reset can never be
                # below an RSS read after it (read before, a page freed in between made
                # the difference negative)
                if not _reset_peak_rss():
                    mem_method += " (peak not resettable: may include earlier steps)"
                base_kb = _status_kb("VmRSS")
                step()
                # the kernel's RSS counters lag by up to 64 pages per thread, so a step that
                # allocates almost nothing can read a little below its base: that is 0
                peaks.append(max(0.0, (_status_kb("VmHWM") - base_kb) / 1024))
            peak_mb = min(peaks)
            mem_method += ", smaller of two steps" if len(peaks) == 2 else ", one step"
            extra["peak_mem_steps_mb"] = peaks
        else:
            mem_method += " (the warm-up step)"
            peak_mb = (_status_kb("VmHWM") - base_kb) / 1024
        stop.set()
    return {
        "status": status,
        "reason": reason,
        "time_s": statistics.median(times) if times else None,
        "times_s": times,
        "cpu_s": statistics.median(cpu_times) if cpu_times else None,
        "first_step_s": first,
        "minor_faults": int(statistics.median(faults)) if faults else None,
        "peak_mem_mb": peak_mb,
        "memory_method": mem_method,
        "n_edges": int(A.nnz),
        "mean_degree": A.nnz / A.shape[0],
        "threads": torch.get_num_threads(),
        "reps_run": len(times),
        "impl": _impl_used(spec["variant"], inputs[0]),
        **extra,
    }


def _impl_used(variant: str, like) -> str | None:
    """Which graph_attention implementation a variant of ours ran (None for the others)."""
    if variant not in OURS:
        return None
    from scgraphbench.kernels.graph_attention import choose_impl

    _, impl, _ = OURS[variant]
    return choose_impl(impl, like, dropout=False)


# --------------------------------------------------------------------------- driver side


def predicted_mb(variant: str, n: int, degree: int, batch: int, d_model: int, heads: int) -> float:
    """Rough peak memory of a point (what autograd keeps), to skip hopeless points early."""
    E = n * degree
    act = batch * n * d_model * 4 / 2**20  # one (B, n, d_model) float32 tensor, MB
    if variant == "materialised":
        return 3 * batch * heads * n * n * 4 / 2**20 + 10 * act
    if variant == "masked_sdpa":
        return n * n / 2**20 + 12 * act
    if variant in PYG:
        return 8 * batch * E * d_model * 4 / 2**20 + 10 * act
    if variant in OURS:
        diffusion, impl, checkpoint = OURS[variant]
        if impl != "torch_sparse" and checkpoint is None:  # fused: per-row statistics only
            return 12 * act
        steps = 1 if diffusion is None else 6
        return (2 * steps + 10) * act + 6 * batch * heads * E * 4 / 2**20
    return 12 * act


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run_worker(spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """One point in a fresh process, with the machine's load average before and after."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    load = {"load_avg_before": _load_average()}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"status": "skipped", "reason": f"ran past the time cap ({timeout_s:.0f} s)",
                **load, "load_avg_after": _load_average()}
    load["load_avg_after"] = _load_average()
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if lines:
        return {**json.loads(lines[-1]), **load}
    tail = (proc.stderr or "").strip().splitlines()[-3:]
    return {"status": "failed", "reason": f"worker exited {proc.returncode}: {' | '.join(tail)}",
            **load}


def loglog_slope(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 2:
        return None
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def add_ratios(points: list[dict[str, Any]]) -> None:
    ref = {
        (p["n"], p["degree"]): p
        for p in points
        if p["variant"] == REFERENCE and p["status"] == "ok"
    }
    mat = {
        (p["n"], p["degree"]): p
        for p in points
        if p["variant"] == "materialised" and p["status"] == "ok"
    }
    for p in points:
        r, m = ref.get((p["n"], p["degree"])), mat.get((p["n"], p["degree"]))
        ok = p["status"] == "ok"
        p["time_vs_sdpa"] = p["time_s"] / r["time_s"] if ok and r else None
        p["cpu_vs_sdpa"] = p["cpu_s"] / r["cpu_s"] if ok and r and r.get("cpu_s") else None
        p["speedup_vs_sdpa"] = r["time_s"] / p["time_s"] if ok and r else None
        p["mem_vs_sdpa"] = (
            p["peak_mem_mb"] / r["peak_mem_mb"] if ok and r and r["peak_mem_mb"] > 0 else None
        )
        p["mem_vs_materialised"] = (
            p["peak_mem_mb"] / m["peak_mem_mb"] if ok and m and m["peak_mem_mb"] > 0 else None
        )


def slopes(points: list[dict[str, Any]], slope_from: int = 1000) -> list[dict[str, Any]]:
    """Per (variant, degree): log-log slopes of time and memory against n over all sizes,
    over the upper half of them, and over the sizes from ``slope_from`` on."""
    rows = []
    for variant in dict.fromkeys(p["variant"] for p in points):
        for degree in dict.fromkeys(p["degree"] for p in points):
            ok = sorted(
                (
                    p
                    for p in points
                    if p["variant"] == variant and p["degree"] == degree and p["status"] == "ok"
                ),
                key=lambda p: p["n"],
            )
            ns = [p["n"] for p in ok]
            upper = ok[len(ok) // 2 :] if len(ok) >= 4 else ok[-2:]
            tail = [p for p in ok if p["n"] >= slope_from]
            rows.append(
                {
                    "variant": variant,
                    "degree": degree,
                    "sizes": ns,
                    "time_slope": loglog_slope(ns, [p["time_s"] for p in ok]),
                    "time_slope_upper": loglog_slope(
                        [p["n"] for p in upper], [p["time_s"] for p in upper]
                    ),
                    "mem_slope": loglog_slope(ns, [max(p["peak_mem_mb"], 1e-3) for p in ok]),
                    "slope_from": slope_from,
                    "time_slope_from": loglog_slope(
                        [p["n"] for p in tail], [p["time_s"] for p in tail]
                    ),
                    "mem_slope_from": loglog_slope(
                        [p["n"] for p in tail], [max(p["peak_mem_mb"], 1e-3) for p in tail]
                    ),
                }
            )
    return rows


def write_figure(points: list[dict[str, Any]], slope_rows: list[dict[str, Any]], path: Path) -> None:
    """Time and memory against n, log-log, one column per degree; each column's legend
    gives every variant's log-log slopes of time and memory from ``slope_from`` on (over all
    sizes when fewer than two are that large)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import seaborn as sns

    ok = [p for p in points if p["status"] == "ok"]
    degrees = sorted({p["degree"] for p in points})
    sizes = sorted({p["n"] for p in points})
    order = [v for v in VARIANTS if any(p["variant"] == v for p in ok)]
    colours = dict(zip(order, sns.color_palette("tab20", len(order)), strict=False))
    slope = {(r["variant"], r["degree"]): r for r in slope_rows}

    def slope_of(variant: str, degree: int, key: str) -> str:
        row = slope.get((variant, degree), {})
        value = row.get(f"{key}_slope_from")
        value = row.get(f"{key}_slope") if value is None else value
        return "-" if value is None else f"{value:.2f}"

    fig, axes = plt.subplots(
        2, len(degrees), figsize=(5.0 * len(degrees), 8.0), squeeze=False, sharex=True
    )
    for j, degree in enumerate(degrees):
        for i, (col, label) in enumerate(
            [("time_s", "forward + backward time (s)"), ("peak_mem_mb", "peak memory (MB)")]
        ):
            ax = axes[i, j]
            for variant in order:
                line = sorted(
                    (p for p in ok if p["variant"] == variant and p["degree"] == degree),
                    key=lambda p: p["n"],
                )
                if not line:
                    continue
                # ours solid, the torch.sparse kernel dashed, the baselines dotted
                style = "-" if variant in OURS else ":"
                if variant.endswith("torch_sparse") or variant == "ppr_checkpoint":
                    style = "--"
                slopes_txt = (
                    f"time {slope_of(variant, degree, 'time')}, "
                    f"memory {slope_of(variant, degree, 'mem')}"
                )
                ax.plot(
                    [p["n"] for p in line],
                    [max(p[col], 1e-3) for p in line],
                    style,
                    marker="o",
                    markersize=3,
                    color=colours[variant],
                    label=f"{variant} ({slopes_txt})",
                )
            ax.set(
                xscale="log",
                yscale="log",
                xlabel="genes (n)",
                ylabel=label,
                title=f"mean degree {degree}" if i == 0 else "",
            )
            ax.set_xticks(sizes, [str(n) for n in sizes])
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        if axes[1, j].lines:
            from_n = slope_rows[0]["slope_from"] if slope_rows else None
            axes[1, j].legend(
                fontsize=7,
                frameon=False,
                loc="upper center",
                bbox_to_anchor=(0.5, -0.15),
                title=f"variant (log-log slope from n={from_n})",
                title_fontsize=7,
            )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150, bbox_inches="tight")
    plt.close(fig)


CSV_COLUMNS = [
    "variant",
    "n",
    "degree",
    "mean_degree",
    "status",
    "reason",
    "time_s",
    "cpu_s",
    "peak_mem_mb",
    "time_vs_sdpa",
    "speedup_vs_sdpa",
    "cpu_vs_sdpa",
    "mem_vs_sdpa",
    "mem_vs_materialised",
    "first_step_s",
    "minor_faults",
    "threads",
    "device",
    "core_only",
    "impl",
    "reps_run",
    "measured_at_degree",
    "load_avg_before",
    "load_avg_after",
]


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ScgbError(
            "CUDA was asked for but torch sees no GPU",
            field="--device",
            fix="use --device cpu or --device auto",
        )
    if not (name == "cpu" or name.startswith("cuda")):
        raise ScgbError(
            f"unknown device '{name}'", field="--device", fix="use auto, cpu, cuda or cuda:N"
        )
    return name


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[500, 1000, 2000, 4000, 8000],
        help="numbers of genes n",
    )
    ap.add_argument(
        "--degrees",
        type=int,
        nargs="+",
        default=[13, 20, 33],
        help="mean graph degrees k (self-loop included)",
    )
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions per point (median)")
    ap.add_argument("--out-dir", default="results/benchmarks/attention")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="small grid for development: n in {250, 500, 1000}, k=20",
    )
    ap.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, help=", ".join(VARIANTS))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument(
        "--core-only",
        action="store_true",
        help="time the attention core alone (no QKV/output projections)",
    )
    ap.add_argument(
        "--mem-cap-mb",
        type=float,
        default=8000,
        help="skip points predicted (or seen) to need more memory than this",
    )
    ap.add_argument(
        "--time-cap-s",
        type=float,
        default=300,
        help="skip points whose warm-up plus reps would take longer than this",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--slope-from",
        type=int,
        default=1000,
        help="the *_slope_from columns fit log-log slopes over sizes from this n on",
    )
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.quick:
        a.sizes, a.degrees = [250, 500, 1000], [20]
    return a


def validate(a: argparse.Namespace) -> None:
    bad = [v for v in a.variants if v not in VARIANTS]
    if bad:
        raise ScgbError(
            f"unknown variant(s) {bad}",
            field="--variants",
            fix=f"choose from {', '.join(VARIANTS)}",
        )
    if min(a.sizes) < 2:
        raise ScgbError(
            f"sizes must be >= 2, got {a.sizes}",
            field="--sizes",
            fix="give gene counts such as 500 1000 2000",
        )
    if min(a.degrees) < 1:
        raise ScgbError(
            f"degrees must be >= 1, got {a.degrees}",
            field="--degrees",
            fix="give mean degrees such as 13 20 33",
        )
    if a.reps < 1:
        raise ScgbError(f"reps must be >= 1, got {a.reps}", field="--reps", fix="use --reps 5")
    if a.d_model % a.heads:
        raise ScgbError(
            f"d_model {a.d_model} is not divisible by heads {a.heads}",
            field="--heads",
            fix="pick heads dividing d_model",
        )
    if a.mem_cap_mb <= 0 or a.time_cap_s <= 0:
        raise ScgbError(
            "caps must be positive",
            field="--mem-cap-mb/--time-cap-s",
            fix="e.g. --mem-cap-mb 8000 --time-cap-s 300",
        )


def environment(device: str) -> dict[str, Any]:
    import torch
    import torch_geometric

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES"),  # e.g. a raised mmap threshold
    }
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    try:
        env["load_avg_at_start"] = os.getloadavg()
    except OSError:
        pass
    return env


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.worker is not None:
        print(json.dumps(run_point(json.loads(a.worker))))
        return 0
    try:
        validate(a)
        device = resolve_device(a.device)
        out_dir = Path(a.out_dir)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ScgbError(
                f"cannot create the output folder ({e})",
                path=str(out_dir),
                field="--out-dir",
                fix="pick a writable folder",
            ) from None
    except ScgbError as e:
        print(f"attention_cost: error: {e}", file=sys.stderr)
        return 2
    settings = {
        k: getattr(a, k)
        for k in (
            "sizes",
            "degrees",
            "reps",
            "variants",
            "batch",
            "d_model",
            "heads",
            "core_only",
            "mem_cap_mb",
            "time_cap_s",
            "threads",
            "seed",
            "quick",
            "slope_from",
        )
    }
    settings["device"] = device
    settings["head_dim"] = a.d_model // a.heads
    settings["layer"] = (
        "attention core only, on leaf q, k, v"
        if a.core_only
        else "QKV projection + attention core + output projection (PyG convs: "
        "their own projections)"
    )
    env = environment(device)
    points: list[dict[str, Any]] = []
    graph_free: dict[tuple[str, int], dict[str, Any]] = {}  # (variant, n) -> its point
    for degree in a.degrees:
        for variant in a.variants:
            last: dict[str, Any] | None = None
            for n in sorted(a.sizes):
                if (variant, n) in graph_free:  # does not read the graph: measured once
                    point = {**graph_free[(variant, n)], "degree": degree}
                    points.append(point)
                    last = point
                    continue
                base = {
                    "variant": variant,
                    "n": n,
                    "degree": degree,
                    "device": device,
                    "core_only": a.core_only,
                }
                pred = predicted_mb(variant, n, degree, a.batch, a.d_model, a.heads)
                reason = ""
                if pred > a.mem_cap_mb:
                    reason = f"predicted {pred:.0f} MB > memory cap {a.mem_cap_mb:.0f} MB"
                elif last is not None and last["status"] != "ok":
                    reason = f"skipped at n={last['n']}: {last['reason']}"
                elif last is not None:
                    # the worker fits its reps to the cap; the least it runs is 3 steps
                    grow = (n / last["n"]) ** TIME_EXPONENT.get(variant, 1.0)
                    expect = last["time_s"] * grow * 3
                    if expect > a.time_cap_s:
                        reason = (
                            f"predicted {expect:.0f} s for three steps (from n={last['n']}) "
                            f"> time cap {a.time_cap_s:.0f} s"
                        )
                if reason:
                    res = {"status": "skipped", "reason": reason}
                else:
                    spec = {
                        **base,
                        "batch": a.batch,
                        "d_model": a.d_model,
                        "heads": a.heads,
                        "reps": a.reps,
                        "seed": a.seed,
                        "mem_cap_mb": a.mem_cap_mb,
                        "time_cap_s": a.time_cap_s,
                        "threads": a.threads,
                    }
                    res = run_worker(spec, timeout_s=a.time_cap_s + 120)
                point = {
                    **base,
                    "predicted_mem_mb": pred,
                    "time_s": None,
                    "cpu_s": None,
                    "peak_mem_mb": None,
                    **res,
                }
                points.append(point)
                last = point
                if variant in GRAPH_FREE:
                    graph_free[(variant, n)] = {**point, "measured_at_degree": degree}
                print(
                    f"k={degree:>3} n={n:>6} {variant:<16} {point['status']:<8} "
                    + (
                        f"{point['time_s']:.4f} s  {point['peak_mem_mb']:.0f} MB"
                        if point["status"] == "ok"
                        else point["reason"]
                    ),
                    file=sys.stderr,
                    flush=True,
                )
    add_ratios(points)
    slope_rows = slopes(points, a.slope_from)
    write_json(
        out_dir / "attention_cost.json",
        {"settings": settings, "environment": env, "points": points, "slopes": slope_rows},
    )
    import pandas as pd

    df = pd.DataFrame(points)
    for col in CSV_COLUMNS:
        if col not in df:
            df[col] = None
    with atomic_path(out_dir / "attention_cost.csv") as tmp:
        df[CSV_COLUMNS].to_csv(tmp, index=False)
    with atomic_path(out_dir / "attention_cost_slopes.csv") as tmp:
        pd.DataFrame(slope_rows).to_csv(tmp, index=False)
    write_figure(points, slope_rows, out_dir / "attention_cost.png")
    print(f"wrote {out_dir}/attention_cost.{{json,csv,png}}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
