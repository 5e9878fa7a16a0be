"""Cost accounting measured the same way for every family.

Peak memory: CUDA ``max_memory_allocated`` on GPU; on CPU the process's peak anonymous
resident memory (RSS minus its file-backed part: heap, tensors) during training minus its
size just before, sampled by a background thread. Code pages of shared libraries are left
out: they are not the model's memory, and a job forked from the workflow's fork server
faults them in again when it runs (they would add 7-14 MB to every run). ``ru_maxrss``
(which cannot be reset between phases) is used too when the phase sets a new lifetime
peak, which catches spikes shorter than the sampling interval.

FLOPs of the token-mixing (attention) layers, forward pass, per cell, summed over layers,
with L tokens (genes, +1 with a CLS token), width d, E edges of the graph a layer uses
(self-loops and CLS edges included) and a multiply-add counted as 2 FLOPs:

- projections: 2 L x (elements of the layer's weight matrices); 8 L d^2 for Q, K, V, O;
- dense attention: + 4 L^2 d (Q K^T and attention x V);
- graph attention: + 4 E d (scores on edges and weighted sum), + 2 E d per diffusion step;
- GNN layer: + 2 E d (one sparse aggregation; GCN adds L self-loop edges).

Softmax, normalisation and bias terms are ignored (O(L d) or O(E)); a training step costs
about 3x the forward pass.
"""

from __future__ import annotations

import platform
import resource
import sys
import threading
import time
from typing import Any

import psutil
import torch
from threadpoolctl import threadpool_info

from scgraphbench.forkserver import in_forked_child
from scgraphbench.models.contract import FamilyModule


class PeakMemory:
    """Context manager: ``.peak_mb`` is the peak memory above the baseline at entry."""

    def __init__(self, device: torch.device, interval_s: float = 0.005) -> None:
        self.device, self.interval_s = device, interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._proc = psutil.Process()
            self._base = self._anon()
            self._max = self._base
            self._lifetime_peak = _ru_maxrss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _anon(self) -> int:
        info = self._proc.memory_info()
        return info.rss - _file_backed(info)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._max = max(self._max, self._anon())
            time.sleep(self.interval_s)

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self._stop.set()
            self._thread.join()
            self._max = max(self._max, self._anon())
            lifetime_peak = _ru_maxrss_bytes()
            if lifetime_peak > self._lifetime_peak:  # a new peak was set inside the phase
                self._max = max(self._max,
                                lifetime_peak - _file_backed(self._proc.memory_info()))
            peak = self._max - self._base
        self.peak_mb = max(peak, 0) / 2**20


def _file_backed(info: Any) -> int:
    """Resident file-backed bytes of a psutil memory_info (Linux statm's ``shared``; 0 where
    the platform does not report it)."""
    return getattr(info, "shared", 0)


def _ru_maxrss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # bytes on macOS, KiB on Linux


def count_parameters(model: Any) -> int:
    """Trainable parameters of a torch family; an array estimator's own count."""
    if isinstance(model, torch.nn.Module):
        return int(sum(p.numel() for p in model.parameters() if p.requires_grad))
    return int(model.n_parameters())


def attention_flops(model: Any, n_genes: int) -> int | None:
    """Forward FLOPs per cell of a family's token mixers (formula in the module docstring),
    as the family reports them (:meth:`FamilyModule.attention_flops`); None for array
    estimators and families without token mixing."""
    if isinstance(model, FamilyModule):
        flops = model.attention_flops(n_genes)
        return None if flops is None else int(flops)
    return None


def environment(device: torch.device) -> dict[str, Any]:
    from importlib.metadata import version

    env: dict[str, Any] = {"device": str(device), "python": platform.python_version()}
    for package in (
        "torch",
        "torch_geometric",
        "numpy",
        "scipy",
        "anndata",
        "scanpy",
        "scikit-learn",
        "igraph",  # the Leiden clusters of the embedding scores
    ):
        env[package.replace("-", "_")] = version(package)
    blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    env.update(
        {
            "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "blas_threads": max(blas) if blas else None,
            "forked_from_server": in_forked_child(),  # docs/ARCHITECTURE.md
        }
    )
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env
