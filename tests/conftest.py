"""Shared fixtures: tiny prepared datasets made here, and the real files of ../shared/data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Triton's interpreter must be on before anything imports triton (torch and the kernel
# modules may): without a GPU, tests/test_triton_kernel.py runs the Triton kernels on CPU
# tensors through it. Kernels on CPU tensors never choose Triton otherwise.
if "triton" not in sys.modules and not os.path.exists("/dev/nvidia0"):
    os.environ.setdefault("TRITON_INTERPRET", "1")

import anndata as ad
import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"
SHARED_DATA = Path(os.environ.get("SCGB_SHARED_DATA", REPO.parent / "shared" / "data"))


def load_benchmark(name: str):
    """benchmarks/<name>.py as a module, loaded once and registered under its name (process
    pools pickle its workers by module name)."""
    import importlib.util

    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def one_thread():
    """Tiny models on a shared 2-core machine: extra intra-op threads only spin-wait and slow
    runs down 10-50x. Modules opt in with ``pytestmark = pytest.mark.usefixtures(...)``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public files in ../shared/data; tests using them skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real reference files not available ({SHARED_DATA} is absent)")
    return SHARED_DATA


def make_prepared_annotation(n_cells: int = 240, n_genes: int = 40, n_classes: int = 3,
                             seed: int = 0) -> ad.AnnData:
    """A prepared-layout annotation AnnData whose label is carried by a few marker genes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n_cells)
    counts = rng.poisson(1.0, size=(n_cells, n_genes)).astype(np.float32)
    for c in range(n_classes):
        counts[labels == c, c * 3:(c + 1) * 3] += rng.poisson(6.0, size=((labels == c).sum(), 3))
    X = np.log1p(counts / np.maximum(counts.sum(1, keepdims=True), 1) * 1e4).astype(np.float32)
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(n_cells)])
    obs["label"] = pd.Categorical([f"type{c}" for c in labels])
    split = np.array(["train"] * n_cells, dtype=object)
    order = rng.permutation(n_cells)
    split[order[: n_cells // 5]] = "test"
    split[order[n_cells // 5: n_cells // 5 + n_cells // 6]] = "val"
    obs["split"] = pd.Categorical(split, categories=["train", "val", "test"])
    var = pd.DataFrame(index=[f"G{i}" for i in range(n_genes)])
    var["gene_name"] = var.index
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.layers["counts"] = counts
    adata.uns["scgraphbench"] = {"dataset": "tiny", "task": "annotation", "seed": seed,
                                 "n_top_genes": n_genes, "source": "tests"}
    return adata


@pytest.fixture
def tiny_annotation(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.h5ad"
    make_prepared_annotation().write_h5ad(path)
    return path


def snakemake(workdir: Path, *args: str, configfile: Path = TINY) -> subprocess.CompletedProcess:
    """The workflow in ``workdir`` on ``configfile`` (2 cores), as a user would run it."""
    env = dict(os.environ)
    # rules call `python -m scgraphbench`: the interpreter running the tests must be first
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile",
           str(configfile), "--cores", "2", *args]
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished run of the whole workflow on tests/configs/tiny.yaml, shared by every
    test that reads its results (the slowest thing the suite does: run it once)."""
    wd = tmp_path_factory.mktemp("pipeline")
    res = snakemake(wd)
    assert res.returncode == 0, res.stderr[-4000:]
    return wd


@pytest.fixture(scope="session")
def tiny_report(tiny_run: Path) -> Path:
    """``snakemake --report`` of the tiny run: one self-contained HTML file."""
    res = snakemake(tiny_run, "--report", "results/report.html")
    assert res.returncode == 0, res.stderr[-3000:]
    return tiny_run / "results" / "report.html"
