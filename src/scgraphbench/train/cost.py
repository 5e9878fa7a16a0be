"""Cost accounting measured the same way for every family.

Peak memory: CUDA ``max_memory_allocated`` on GPU; on CPU the process's peak resident
set size during training minus its size just before, sampled by a background thread
(``ru_maxrss`` alone cannot be reset between phases)."""

from __future__ import annotations

import platform
import threading
import time
from typing import Any

import psutil
import torch


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
            self._base = self._proc.memory_info().rss
            self._max = self._base
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._max = max(self._max, self._proc.memory_info().rss)
            time.sleep(self.interval_s)

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self._stop.set()
            self._thread.join()
            self._max = max(self._max, self._proc.memory_info().rss)
            peak = self._max - self._base
        self.peak_mb = max(peak, 0) / 2**20


def count_parameters(model: Any) -> int:
    if isinstance(model, torch.nn.Module):
        return int(sum(p.numel() for p in model.parameters() if p.requires_grad))
    return int(model.n_parameters())


def environment(device: torch.device) -> dict[str, Any]:
    import numpy
    import scanpy
    import sklearn
    import torch_geometric

    env = {"device": str(device), "python": platform.python_version(), "torch": torch.__version__,
           "torch_geometric": torch_geometric.__version__, "numpy": numpy.__version__,
           "scanpy": scanpy.__version__, "sklearn": sklearn.__version__,
           "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env
