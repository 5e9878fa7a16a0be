"""scGPT's value binning (scgpt 0.2.4 ``preprocess.binning``, also
``Preprocessor(binning=n_bins)``), batched in torch.

Per cell, with m non-zero values: ``n_bins - 1`` edges ``np.quantile(nonzero,
np.linspace(0, 1, n_bins - 1))`` (linear interpolation); zeros get bin 0. A non-zero value
x lies between ``right = #edges < x`` and ``left = #edges <= x`` (``np.digitize`` with
``right=True`` / ``False``); scGPT's ``_digitize`` draws u ~ U[0, 1) and takes
``ceil(u * (right - left) + left)``, so a value equal to several edges lands uniformly at
random in one of the bins right+1..left. On count data most non-zero values tie (a cell has
many 1s and 2s), so this spreading decides most tokens: "ties take the left bin" puts 72-85%
of non-zero tokens in another bin, 6.5-11.9 bins higher on average (n_bins 51, two real 10x
count matrices; docs/backbones.md), an input distribution the pretrained model never saw.

The arithmetic copies numpy's step for step (the virtual index ``(m - 1) * q``, numpy's
two-sided ``_lerp`` with the difference taken in the input dtype, float64 edges), so that
with the same uniform draws the bins are identical to scGPT's; tests check it against
scGPT's own function.
"""

from __future__ import annotations

import numpy as np
import torch


def quantile_edges(x: torch.Tensor, n_bins: int) -> torch.Tensor:
    """(B, n) non-negative -> (B, n_bins - 1) float64 edges: ``np.quantile`` (method linear)
    of each row's non-zero values at ``np.linspace(0, 1, n_bins - 1)``; rows without a
    non-zero value get edges of 0 (unused)."""
    B, n = x.shape
    m = (x > 0).sum(1, keepdim=True)  # (B, 1)
    sorted_x = torch.sort(x, dim=1).values  # zeros first (x >= 0): non-zeros at n-m..n-1
    q = torch.from_numpy(np.linspace(0.0, 1.0, n_bins - 1)).to(x.device)
    virtual = (m - 1).clamp(min=0).double() * q[None, :]  # numpy: (n - 1) * quantiles
    below = virtual.floor()
    at_top = virtual >= (m - 1).double()  # numpy takes the last value for both neighbours
    lo = torch.where(at_top, m - 1, below.long()).clamp(min=0) + (n - m)
    hi = torch.where(at_top, m - 1, below.long() + 1).clamp(min=0) + (n - m)
    lo, hi = lo.clamp(max=n - 1), hi.clamp(max=n - 1)
    a, b = sorted_x.gather(1, lo), sorted_x.gather(1, hi)
    gamma = virtual - below  # at the top a == b: either branch below gives the last value
    diff = (b - a).double()  # numpy subtracts in the input dtype, then promotes
    edges = torch.where(gamma >= 0.5, b.double() - diff * (1 - gamma), a.double() + diff * gamma)
    return torch.where(m > 0, edges, torch.zeros_like(edges))


def scgpt_binning(
    x: torch.Tensor,
    n_bins: int,
    *,
    uniform: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """scGPT's bins of (B, n) non-negative values -> (B, n) int64 in 0..n_bins-1.

    ``uniform``: (B, n) float draws in [0, 1) that spread ties (only the entries of non-zero
    values are read: scGPT draws one per non-zero value, in gene order); None draws them
    with ``torch.rand`` from ``generator`` (None: torch's global generator).
    """
    if uniform is None:
        uniform = torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float64)
    edges = quantile_edges(x, n_bins)
    values = x.double().contiguous()
    left = torch.searchsorted(edges, values, right=True)  # np.digitize(x, edges)
    right = torch.searchsorted(edges, values, right=False)  # np.digitize(..., right=True)
    digits = torch.ceil(uniform.double() * (right - left).double() + left.double()).long()
    return torch.where(x > 0, digits, torch.zeros_like(digits))
