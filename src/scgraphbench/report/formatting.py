"""Number formatting shared by the report's Markdown tables."""

from __future__ import annotations

import math


def format_mean_std(mean: float, std: float, digits: int = 4) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    std = 0.0 if std is None or (isinstance(std, float) and math.isnan(std)) else std
    return f"{mean:.{digits}g} ± {std:.2g}"


def format_p(p: float) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    return f"{p:.3g}"
