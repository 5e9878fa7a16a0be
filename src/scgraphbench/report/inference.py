"""Paired inference behind the claims table: effects with CIs, one-sided and TOST tests,
Holm correction within a family, and four-valued verdicts.

A comparison pairs arm A with arm B over matched units, one unit per (dataset, replicate),
a replicate being one train/val/test split (the caller averages init seeds inside a
replicate first). The analysis works on the paired differences ``d = a - b``, or for
cost ratios on ``d = log(a / b)`` (reported back as the ratio A/B). Pairs with a
non-finite value in either arm are dropped; fewer than two pairs left means the
comparison is ``not testable``. Every test is a paired t-test on ``d`` (n - 1 degrees of
freedom), one-sided at level ``alpha``.

Each comparison gets two p-values, and each is Holm-adjusted within its family of
comparisons separately: ``p`` decides ``supported``, ``p_contra`` decides ``contradicted``.
``contradicted`` wins when both are significant (only possible for a claim with a stated
size: the effect is real but significantly smaller than claimed).

Decision rules, with Δ the mean of d (difference A - B, or log A/B) and "the claimed side"
given by ``direction`` (``greater``: A above B; ``less``: A below B):

superiority (and ratio, on the log scale)
    p: one-sided test of H0 "Δ is not on the claimed side of 0". Without a stated size,
    p_contra is the one-sided test the other way. With a stated size (``paper_value``;
    for a range the end nearest no effect: +0.0127; 0.5 of 0.25-0.5), p_contra tests
    H0 "Δ reaches the paper's size"; rejecting it says the effect is significantly
    smaller than the paper's (which includes going significantly the other way).
    Effects larger than the paper's size, or a ratio cheaper than the paper's range,
    count as consistent with the claim. So: supported = significant on the claimed side
    and not significantly short of the paper's size; contradicted = significantly short
    of it (or significantly the other way); inconclusive otherwise.
equivalence (TOST, margin δ)
    p = max of the two one-sided tests of H0 "Δ <= -δ" and H0 "Δ >= +δ" (supported: the
    effect lies within ±δ). p_contra: one-sided test of H0 "A is not worse than B by more
    than δ" (contradicted: A significantly worse than B by more than δ; on the inferior
    side given by ``direction``: for ``greater``, higher is better). An A significantly
    better than B by more than δ is not equivalent but not worse either: inconclusive.
non_inferiority (margin δ)
    p: H0 "A is worse than B by δ or more"; p_contra: H0 "A is not worse by more than δ".

Zero variance: when every unit gives the same difference (within 1e-6 of the values'
magnitude, i.e. float rounding, or exactly: identical arms, deterministic models on the
same splits, a deterministic cost), the replicates carry no estimate of their own error
and a t statistic would be 0/0 or ±inf. Such a comparison gets NaN p-values (it does not
count toward the family's m) and the verdict ``inconclusive`` with the reason; it is never
declared significant, since two equal values of a quantised metric can be a coincidence.
Pair a deterministic quantity over datasets instead of replicates.

MDE (the smallest effect the replicates could detect with 80% power at this n and the
observed SE; normal-shift approximation with t quantiles):
    one-sided tests: (t_{1-α,df} + t_{0.8,df}) · SE, signed on the claimed side (ratio
    kind: exp of it, a ratio); non-inferiority: the same, as the smallest margin that a
    true Δ = 0 would clear; TOST: (t_{1-α,df} + t_{0.9,df}) · SE, the smallest margin
    that a true Δ = 0 would be declared equivalent within.

Everything here is numpy/scipy on plain arrays; the claims layer builds the arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from scipy import stats

from scgraphbench.errors import ScgbError

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE = (
    "supported", "contradicted", "inconclusive", "not testable")
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE)

POWER = 0.8  # the power at which the MDE is stated
# Sample SD of the differences at or below this fraction of the values' magnitude is float
# rounding of a constant difference (float32 metrics round at ~1e-7), not sampling noise.
ZERO_VARIANCE_RTOL = 1e-6

Kind = Literal["superiority", "equivalence", "non_inferiority", "ratio"]
Direction = Literal["greater", "less"]
Scale = Literal["difference", "ratio"]
KINDS = ("superiority", "equivalence", "non_inferiority", "ratio")


@dataclass(frozen=True)
class Hypothesis:
    """What a claim asserts about A vs B, declared before any data is seen.

    ``direction``: the side A is claimed to lie on (superiority, ratio), or the side on
    which A is better (equivalence, non-inferiority: ``greater`` = higher is better).
    ``margin``: the equivalence / non-inferiority margin on the difference scale (> 0).
    ``paper_value``: the size the paper states, on the effect scale, a number or a
    (low, high) range on the claimed side of no effect (ratio kind: the ratio A/B itself,
    e.g. (0.25, 0.5) or 0.125).
    """

    kind: Kind
    direction: Direction = "greater"
    margin: float | None = None
    paper_value: float | tuple[float, float] | None = None
    alpha: float = 0.05

    def __post_init__(self) -> None:
        def bad(field: str, message: str, fix: str) -> ScgbError:
            return ScgbError(f"{message} (hypothesis {self.kind!r})", field=field, fix=fix)

        if self.kind not in KINDS:
            raise bad("kind", f"unknown kind {self.kind!r}", f"use one of {', '.join(KINDS)}")
        if self.direction not in ("greater", "less"):
            raise bad("direction", f"unknown direction {self.direction!r}",
                      "use 'greater' or 'less'")
        if not (isinstance(self.alpha, (int, float)) and 0 < self.alpha < 0.5):
            raise bad("alpha", f"alpha must lie in (0, 0.5), got {self.alpha!r}",
                      "use a significance level such as 0.05")
        if self.kind in ("equivalence", "non_inferiority"):
            if not (isinstance(self.margin, (int, float)) and math.isfinite(self.margin)
                    and self.margin > 0):
                raise bad("margin", f"needs a margin > 0, got {self.margin!r}",
                          "state the margin on the effect scale, e.g. margin=0.02")
            if self.paper_value is not None:
                raise bad("paper_value", "an equivalence / non-inferiority claim has no "
                          "stated size", "drop paper_value; the margin carries the claim")
            return
        if self.margin is not None:
            raise bad("margin", f"a {self.kind} claim takes no margin, got {self.margin!r}",
                      "drop margin, or state the size as paper_value")
        if self.paper_value is None:
            return
        values = self.paper_value if isinstance(self.paper_value, tuple) else (self.paper_value,)
        if len(values) not in (1, 2) or not all(
                isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise bad("paper_value", f"must be a number or a (low, high) pair, got "
                      f"{self.paper_value!r}", "e.g. paper_value=0.0127 or (0.25, 0.5)")
        if len(values) == 2 and values[0] > values[1]:
            raise bad("paper_value", f"range {self.paper_value!r} has low > high",
                      "write it as (low, high)")
        sign = 1 if self.direction == "greater" else -1
        if self.kind == "ratio":
            if min(values) <= 0:
                raise bad("paper_value", f"a ratio must be > 0, got {self.paper_value!r}",
                          "state the ratio A/B itself, e.g. 0.125 for 1/8")
            on_side = all(sign * math.log(v) > 0 for v in values)
            side = "above 1" if sign > 0 else "below 1"
        else:
            on_side = all(sign * v > 0 for v in values)
            side = "above 0" if sign > 0 else "below 0"
        if not on_side:
            raise bad("paper_value", f"{self.paper_value!r} is not on the claimed side "
                      f"(direction {self.direction!r} needs values {side})",
                      "flip direction or the sign of paper_value")

    @property
    def scale(self) -> Scale:
        return "ratio" if self.kind == "ratio" else "difference"

    @property
    def sign(self) -> int:
        return 1 if self.direction == "greater" else -1

    def paper_bound(self) -> float | None:
        """The paper's size on the analysis scale (log for ratios), at the end of a range
        nearest no effect: the least the claim asserts."""
        if self.paper_value is None:
            return None
        values = self.paper_value if isinstance(self.paper_value, tuple) else (self.paper_value,)
        if self.kind == "ratio":
            values = tuple(math.log(v) for v in values)
        return min(values) if self.sign > 0 else max(values)


@dataclass(frozen=True)
class Effect:
    """A paired effect: mean difference A - B (or ratio A/B) with its two-sided (1 - alpha) CI.

    For ``scale == "ratio"`` the estimate and CI are ratios (the geometric mean of a/b and
    its interval, computed on log(a/b)); ``se`` is then the SE of the mean log ratio.
    ``zero_variance``: every unit gave the same difference, so ``se`` is 0 and untestable.
    """

    n: int
    estimate: float
    se: float
    df: int
    ci_low: float
    ci_high: float
    scale: Scale
    zero_variance: bool = False

    @property
    def log_mean(self) -> float:
        """The mean on the analysis scale: the difference, or log of the ratio."""
        return math.log(self.estimate) if self.scale == "ratio" else self.estimate


@dataclass(frozen=True)
class TestResult:
    """The two tests of one comparison, before the family's Holm correction.

    ``p_value`` decides ``supported`` (one-sided on the claimed side; TOST p for
    equivalence); ``p_contra`` decides ``contradicted`` (one-sided the other way, or the
    test that the effect falls short of the paper's size, or of the margin). Both are NaN
    for a zero-variance comparison (``note`` says why). ``mde``: see the module docstring.
    """

    __test__ = False  # not a pytest class despite the name

    effect: Effect
    p_value: float
    p_contra: float
    mde: float
    rule: str
    hypothesis: Hypothesis
    note: str = ""
    test_ci: tuple[float, float] = (math.nan, math.nan)  # the (1 - 2 alpha) CI, see test()


@lru_cache(maxsize=512)
def _t_quantile(q: float, df: int) -> float:
    return float(stats.t.ppf(q, df))


def _analysis_values(a: Any, b: Any | None, scale: Scale) -> tuple[np.ndarray, float]:
    """The paired values d on the analysis scale (finite pairs only) and the magnitude
    against which their spread is judged to be rounding."""
    a = np.asarray(a, dtype=float).ravel()
    if b is None:
        keep = np.isfinite(a)
        first, second = a[keep], None
    else:
        b = np.asarray(b, dtype=float).ravel()
        if a.shape != b.shape:
            raise ScgbError(f"paired arms differ in length ({a.size} vs {b.size} units)",
                            field="a, b", fix="pass one value per matched (dataset, "
                            "replicate) unit in both arms, NaN where an arm has no run")
        keep = np.isfinite(a) & np.isfinite(b)
        first, second = a[keep], b[keep]
    if scale == "ratio":
        values = first if second is None else np.concatenate([first, second])
        if np.any(values <= 0):
            raise ScgbError(f"a ratio needs positive values, got {values[values <= 0][:3]}",
                            field="a, b", fix="pass the raw costs (seconds, MB) of each arm, "
                            "or their ratios a/b when b is None")
        d = np.log(first) if second is None else np.log(first) - np.log(second)
        return d, 1.0  # log values are compared to 1: relative rounding of the ratio
    d = first if second is None else first - second
    parts = [np.abs(first)] if second is None else [np.abs(first), np.abs(second)]
    magnitude = max((float(p.max()) for p in parts if p.size), default=0.0)
    return d, magnitude


def paired_effect(a: Any, b: Any | None = None, scale: Scale = "difference",
                  alpha: float = 0.05) -> Effect:
    """The paired effect of A over B with its two-sided (1 - alpha) t interval.

    ``a``, ``b``: equal-length arrays, one value per matched unit; pairs with a non-finite
    value are dropped. ``b=None``: ``a`` already holds the differences (``scale="ratio"``:
    the ratios a/b). Pass both arms when you have them: rounding of a - b is judged
    against their magnitude. Fewer than 2 pairs: se and the CI are NaN.
    """
    if scale not in ("difference", "ratio"):
        raise ScgbError(f"unknown scale {scale!r}", field="scale",
                        fix="use 'difference' or 'ratio'")
    d, magnitude = _analysis_values(a, b, scale)
    n = int(d.size)
    mean = float(d.mean()) if n else math.nan
    to_scale = math.exp if scale == "ratio" else float
    if n < 2:
        est = to_scale(mean) if n else math.nan
        return Effect(n, est, math.nan, max(n - 1, 0), math.nan, math.nan, scale)
    sd = float(d.std(ddof=1))
    df = n - 1
    if sd <= ZERO_VARIANCE_RTOL * magnitude:
        est = to_scale(mean)
        return Effect(n, est, 0.0, df, est, est, scale, zero_variance=True)
    se = sd / math.sqrt(n)
    half = _t_quantile(1 - alpha / 2, df) * se
    return Effect(n, to_scale(mean), se, df, to_scale(mean - half), to_scale(mean + half),
                  scale)


def _fmt(value: float, hyp: Hypothesis, signed: bool = True) -> str:
    if hyp.scale == "ratio":
        return f"{value:.3g}"
    return f"{value:+.3g}" if signed else f"{value:.3g}"


def _paper_text(hyp: Hypothesis) -> str:
    pv = hyp.paper_value
    if isinstance(pv, tuple):
        return f"{_fmt(pv[0], hyp)} to {_fmt(pv[1], hyp)}"
    return _fmt(float(pv), hyp)


@lru_cache(maxsize=256)
def rule_text(hyp: Hypothesis) -> str:
    """The decision rule of ``hyp`` in words, as the claims table shows it."""
    a = hyp.alpha
    holm = f"Holm-adjusted p < {a:g}"
    if hyp.kind in ("superiority", "ratio"):
        ratio = hyp.kind == "ratio"
        eff = "A/B" if ratio else "A − B"
        null = "1" if ratio else "0"
        rel, other = (">", "<") if hyp.sign > 0 else ("<", ">")
        test = "one-sided paired t-test on log(A/B)" if ratio else "one-sided paired t-test"
        text = f"supported if {eff} {rel} {null} ({test}, {holm})"
        bound = hyp.paper_bound()
        if bound is None:
            return (text + f"; contradicted if {eff} {other} {null} (the one-sided test the "
                    f"other way, {holm}); inconclusive otherwise")
        size = _fmt(math.exp(bound) if ratio else bound, hyp)
        of_range = ""
        if isinstance(hyp.paper_value, tuple):
            end = "upper" if (bound == math.log(hyp.paper_value[1]) if ratio
                              else bound == hyp.paper_value[1]) else "lower"
            of_range = f", the {end} end of its {_paper_text(hyp)}"
        short = "below" if hyp.sign > 0 else "above"
        beyond = "a ratio further from 1" if ratio else "an effect larger"
        geq = "≥" if hyp.sign > 0 else "≤"
        return (text + f" and {eff} is not significantly {short} the paper's {size}"
                f"{of_range} (one-sided test of H0 '{eff} {geq} {size}', Holm-adjusted "
                f"p ≥ {a:g}; {beyond} than the paper's counts as consistent); contradicted if "
                f"that test rejects ({holm}): {eff} is significantly {short} {size}, the "
                f"effect smaller than claimed or the other way; inconclusive otherwise")
    m = _fmt(hyp.margin, hyp, signed=False)
    worse = "A − B < −" + m if hyp.sign > 0 else "A − B > +" + m
    if hyp.kind == "equivalence":
        return (f"supported if |A − B| < {m} (TOST: both one-sided paired t-tests against "
                f"±{m} reject, {holm} on the larger p); contradicted if {worse} (A "
                f"significantly worse than B by more than the margin, one-sided, {holm}); "
                f"inconclusive otherwise, including A significantly better than B by more "
                f"than the margin")
    better = "A − B > −" + m if hyp.sign > 0 else "A − B < +" + m
    return (f"supported if {better} (one-sided paired t-test that A is not worse than B by "
            f"the margin {m}, {holm}); contradicted if {worse} (one-sided, {holm}); "
            f"inconclusive otherwise")


def test(a: Any, b: Any | None, hyp: Hypothesis) -> TestResult | None:
    """Both tests of one paired comparison of arm A with arm B under ``hyp``.

    ``a``, ``b`` as for ``paired_effect``. None when fewer than two finite pairs remain
    (the comparison is not testable). The p-values are raw: ``evaluate_family`` adjusts
    them within their family before ``decide``.

    ``effect`` carries the two-sided (1 - alpha) CI; ``test_ci`` is the two-sided
    (1 - 2 alpha) CI, the interval that matches these tests: its end on the claimed side
    is the one-sided (1 - alpha) bound (raw p < alpha exactly when it excludes 0), and TOST
    at alpha rejects exactly when it lies within ±margin.
    """
    eff = paired_effect(a, b, scale=hyp.scale, alpha=hyp.alpha)
    if eff.n < 2:
        return None
    matched = paired_effect(a, b, scale=hyp.scale, alpha=2 * hyp.alpha)
    test_ci = (matched.ci_low, matched.ci_high)
    rule = rule_text(hyp)
    if eff.zero_variance:
        identical = eff.log_mean == 0.0
        quantity = "ratio A/B" if hyp.kind == "ratio" else "difference A − B"
        what = ("A and B gave identical values on every unit" if identical else
                f"every unit gave the same {quantity} ({_fmt(eff.estimate, hyp)})")
        note = (f"zero variance: {what}, so the {eff.n} units carry no estimate of their "
                f"error and no test is possible; if the quantity is deterministic, pair it "
                f"over datasets rather than replicates")
        return TestResult(eff, math.nan, math.nan, math.nan, rule, hyp, note, test_ci)
    s, mean, se, df = hyp.sign, eff.log_mean, eff.se, eff.df
    power_q = _t_quantile(POWER, df)
    crit = _t_quantile(1 - hyp.alpha, df)
    if hyp.kind in ("superiority", "ratio"):
        bound = hyp.paper_bound()
        bound = 0.0 if bound is None else bound
        # p: H0 s·Δ <= 0; p_contra: H0 s·Δ >= s·bound (bound 0: the opposite direction)
        p_value, p_contra = stats.t.sf([s * mean / se, s * (bound - mean) / se], df)
        mde = s * (crit + power_q) * se
        if hyp.kind == "ratio":
            mde = math.exp(mde)
    else:
        delta = float(hyp.margin)
        if hyp.kind == "equivalence":
            p_low, p_high, p_contra = stats.t.sf(
                [(mean + delta) / se, (delta - mean) / se, -(s * mean + delta) / se], df)
            p_value = max(p_low, p_high)
            mde = (crit + _t_quantile(1 - (1 - POWER) / 2, df)) * se
        else:
            p_value, p_contra = stats.t.sf(
                [(s * mean + delta) / se, -(s * mean + delta) / se], df)
            mde = (crit + power_q) * se
    return TestResult(eff, float(p_value), float(p_contra), float(mde), rule, hyp,
                      test_ci=test_ci)


test.__test__ = False  # a library function named `test`; keep pytest from collecting it


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values, in the input order.

    The i-th smallest of m p-values becomes max over j <= i of min(1, (m - j + 1) p_(j)).
    NaN stays NaN and does not count toward m.
    """
    p = np.asarray(p_values, dtype=float).ravel()
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = p[order] * np.arange(m, 0, -1)
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def decide(result: TestResult | None, p_adj: float, p_contra_adj: float) -> str:
    """The verdict of one comparison from its family-adjusted p-values.

    contradicted if p_contra_adj < alpha (this wins: a claimed size significantly missed);
    else supported if p_adj < alpha; else inconclusive (also for NaN p: zero variance);
    not testable when there is no result.
    """
    if result is None:
        return NOT_TESTABLE
    alpha = result.hypothesis.alpha
    if p_contra_adj < alpha:
        return CONTRADICTED
    if p_adj < alpha:
        return SUPPORTED
    return INCONCLUSIVE


def explain(result: TestResult | None, verdict: str, p_adj: float) -> str:
    """Why one comparison got its verdict, in a sentence for the claims table."""
    if result is None:
        return "fewer than 2 matched units with a finite value in both arms"
    if result.note:
        return result.note
    hyp, eff = result.hypothesis, result.effect
    alpha = hyp.alpha
    unit = "ratio A/B" if hyp.kind == "ratio" else "A − B"
    if hyp.kind in ("superiority", "ratio"):
        bound = hyp.paper_bound()
        size = None if bound is None else _fmt(
            math.exp(bound) if hyp.kind == "ratio" else bound, hyp)
        if verdict == CONTRADICTED:
            if size is None:
                return f"significant in the other direction ({unit} = {_fmt(eff.estimate, hyp)})"
            if p_adj < alpha:
                return (f"the effect is real but significantly smaller than the paper's "
                        f"{size} ({unit} = {_fmt(eff.estimate, hyp)})")
            return (f"the effect is significantly smaller than the paper's {size} and not "
                    f"significant in the claimed direction ({unit} = {_fmt(eff.estimate, hyp)})")
        if verdict == SUPPORTED:
            tail = "" if size is None else f", not significantly short of the paper's {size}"
            return f"significant in the claimed direction (Holm p = {p_adj:.3g}){tail}"
        text = (f"neither test significant after Holm; the smallest effect these {eff.n} "
                f"units could detect at 80% power is {unit} = {_fmt(result.mde, hyp)}")
        if size is not None and hyp.sign * (
                (math.log(result.mde) if hyp.kind == "ratio" else result.mde) - bound) > 0:
            text += f", beyond the paper's {size}: too few replicates for the claimed size"
        return text
    m = _fmt(hyp.margin, hyp, signed=False)
    if verdict == CONTRADICTED:
        return f"A is significantly worse than B by more than the margin {m}"
    if verdict == SUPPORTED:
        return (f"within ±{m} (Holm p = {p_adj:.3g})" if hyp.kind == "equivalence"
                else f"not worse than B by {m} or more (Holm p = {p_adj:.3g})")
    low, high = result.test_ci
    if hyp.kind == "equivalence" and hyp.sign * (low if hyp.sign > 0 else high) > hyp.margin:
        return (f"A is better than B by more than the margin {m} ({1 - 2 * alpha:.0%} CI "
                f"[{_fmt(low, hyp)}, {_fmt(high, hyp)}]): not equivalent, "
                f"but not worse either")
    what = "margin for equivalence" if hyp.kind == "equivalence" else "non-inferiority margin"
    return (f"neither test significant after Holm; the smallest {what} these {eff.n} units "
            f"could establish at 80% power is {_fmt(result.mde, hyp, signed=False)}")


def evaluate_family(items: list[tuple[str, Any, Any, Hypothesis]]) -> list[dict[str, Any]]:
    """Test, Holm-correct and decide one family of comparisons.

    ``items``: (id, a, b, hypothesis) per comparison, all with the same alpha (one family,
    one level). ``p_value`` and ``p_contra`` are Holm-adjusted within the family,
    separately; ``m`` is the number of comparisons with a p-value (not-testable and
    zero-variance ones do not count). One row per item, in order, with: id, kind, scale,
    n, estimate, se, ci_low, ci_high, test_ci_low, test_ci_high (the CI matching the tests,
    see ``test``), p_raw, p_adj, p_contra_raw, p_contra_adj, m, mde,
    verdict, rule, reason.
    """
    alphas = {hyp.alpha for _, _, _, hyp in items}
    if len(alphas) > 1:
        raise ScgbError(f"one family mixes significance levels {sorted(alphas)}",
                        field="alpha", fix="use one alpha for every comparison of a family")
    results = [test(a, b, hyp) for _, a, b, hyp in items]
    p_raw = np.array([r.p_value if r else math.nan for r in results])
    pc_raw = np.array([r.p_contra if r else math.nan for r in results])
    p_adj, pc_adj = holm(p_raw), holm(pc_raw)
    m = int(np.count_nonzero(~np.isnan(p_raw)))
    rows = []
    for i, ((cid, a, b, hyp), res) in enumerate(zip(items, results, strict=True)):
        verdict = decide(res, p_adj[i], pc_adj[i])
        eff = res.effect if res else None
        rows.append({
            "id": cid, "kind": hyp.kind, "scale": hyp.scale,
            "n": eff.n if eff else paired_effect(a, b, hyp.scale).n,
            "estimate": eff.estimate if eff else math.nan,
            "se": eff.se if eff else math.nan,
            "ci_low": eff.ci_low if eff else math.nan,
            "ci_high": eff.ci_high if eff else math.nan,
            "test_ci_low": res.test_ci[0] if res else math.nan,
            "test_ci_high": res.test_ci[1] if res else math.nan,
            "p_raw": float(p_raw[i]), "p_adj": float(p_adj[i]),
            "p_contra_raw": float(pc_raw[i]), "p_contra_adj": float(pc_adj[i]),
            "m": m, "mde": res.mde if res else math.nan,
            "verdict": verdict,
            "rule": (res.rule if res else rule_text(hyp)) + f"; Holm over the family's m = {m}",
            "reason": explain(res, verdict, p_adj[i]),
        })
    return rows


def family_verdict(rows: list[dict[str, Any]]) -> str:
    """The headline verdict of one family, from its rows' verdicts.

    supported if at least one comparison is supported and none contradicted (an
    existential claim: "there are arms where it holds, and none where it fails"; Holm
    keeps the chance of a false 'supported' headline at or below alpha); contradicted if
    at least one is contradicted and none supported; not testable if every comparison is;
    inconclusive otherwise. A mixed family (some arms supported, some contradicted) is
    reported as inconclusive at the headline, and its rows show which arms go which way.
    A claim about the average over arms is a different hypothesis: declare it as one
    comparison on the per-unit mean over arms, not as this headline.
    """
    verdicts = [r["verdict"] for r in rows]
    if not verdicts or all(v == NOT_TESTABLE for v in verdicts):
        return NOT_TESTABLE
    supported, contradicted = SUPPORTED in verdicts, CONTRADICTED in verdicts
    if supported and not contradicted:
        return SUPPORTED
    if contradicted and not supported:
        return CONTRADICTED
    return INCONCLUSIVE


FAMILY_RULE = ("supported if at least one comparison is supported and none contradicted, "
               "contradicted if at least one is contradicted and none supported, "
               "otherwise inconclusive (mixed families included)")


@dataclass(frozen=True)
class TwoSided:
    """A descriptive two-sided paired comparison (the study tables' delta and p)."""

    n: int
    estimate: float
    p_value: float


def two_sided(a: Any, b: Any) -> TwoSided:
    """Mean paired difference a - b and its two-sided paired t-test p; p is NaN with fewer
    than two pairs or zero variance of the differences (never invented)."""
    effect = paired_effect(a, b)
    if effect.n < 2 or effect.zero_variance or not effect.se > 0:
        return TwoSided(effect.n, effect.estimate, math.nan)
    t = effect.estimate / effect.se
    return TwoSided(effect.n, effect.estimate, float(2 * stats.t.sf(abs(t), effect.df)))
