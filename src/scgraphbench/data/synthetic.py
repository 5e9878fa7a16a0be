"""A synthetic Perturb-seq dataset in GEARS ``perturb_processed.h5ad`` layout, with a known
ground-truth perturbation effect carried by a sparse gene regulatory network (GRN).

Generative model (all draws from ``numpy.random.default_rng(seed)``):

1. **Genes.** ``n_genes`` genes with baseline log-abundance ``mu_g ~ N(0, 1)``; relative
   abundance ``pi = softmax(mu)``.
2. **GRN.** Every gene ``r`` regulates ``Poisson(mean_targets)`` other genes chosen
   uniformly (at least one for a perturbed gene), with weight ``w = s * U(0.5, 1)``, sign
   ``s = +1`` (activation) or ``-1`` (repression) with equal odds. ``W[t, r] = w``: row =
   target, column = regulator, the repository's convention (row i = the genes gene i
   receives messages from). Effects travel ``hops`` steps with decay ``hop_decay``:
   ``M = sum_{k=1..hops} hop_decay^(k-1) W^k``.
3. **Perturbation effect.** Perturbing a set of genes ``P`` (a CRISPRi knock-down) removes
   their activity, ``a = -sum_{p in P} e_p``. The shift of every gene's log expression is
   ``delta = max_shift * tanh(effect_size * M a / max_shift)`` (saturating, so the genes that
   two perturbations share respond sub-additively in a combination), and each perturbed gene
   itself is knocked down: ``delta_p = log(1 - knockdown)``. With ``combination="additive"``
   a combination's shift is instead the sum of its single perturbations' shifts, exactly
   (the null model of the additive baseline; knock-downs add up too).
4. **Cells.** Each cell has intrinsic activity fluctuations ``u ~ N(0, state_sd^2)`` per gene
   (zero at its perturbed genes) that also travel through the GRN:
   ``s = u + effect_size * M u``. This gives control cells GRN-shaped co-expression, so a
   co-expression graph built from them partly recovers the GRN.
5. **Counts.** ``rate_g = L * pi_g * exp(delta_g + s_g)`` with library size
   ``L = library_size * LogNormal(0, 0.25)``; counts are Gamma-Poisson (negative binomial)
   with dispersion ``dispersion``; ``X = log1p(normalize_total(counts, 1e4))`` as GEARS.

What a model can learn: a perturbation's effect is a function of the perturbed genes'
identity and their GRN neighbourhoods, the same for seen and unseen perturbations, so a
model that knows the graph (or the gene) can predict unseen perturbations, while the mean
of the perturbed training cells (the mean baseline) predicts the same shift for every
perturbation and cannot capture them.

Layout (as GEARS ``perturb_processed.h5ad``): ``X`` CSR log-normalised; ``layers['counts']``;
obs ``condition`` (``G007+ctrl``, ``G007+G042``, ``ctrl``), ``cell_type``, ``dose_val``,
``control`` (1 for control cells), ``condition_name`` (``{cell_type}_{condition}_{dose}``);
var index = gene ids (``SYN00007``), ``var['gene_name']`` = symbols (``G007``);
``uns['rank_genes_groups_cov_all']`` (DE gene ids per condition_name, scanpy t-test vs
control, ranked by |score|, as GEARS ``get_DE_genes``) and ``uns['top_non_dropout_de_20']``.
Ground truth: ``uns['grn']`` = {regulator, target, weight} (gene symbols; regulator -> target),
``uns['true_log_fc']`` = {condition: delta over genes}, ``uns['synthetic']`` = the parameters.
"""

from __future__ import annotations

import warnings
from itertools import combinations
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

from scgraphbench.errors import ScgbError

COMBINATIONS = ("saturating", "additive")


def _check(params: dict[str, Any]) -> None:
    def bad(field: str, why: str, fix: str) -> ScgbError:
        return ScgbError(f"synthetic_perturbation: {field} {why}", field=field, fix=fix)

    for key in ("n_genes", "cells_per_perturbation", "n_control"):
        if int(params[key]) < 2:
            raise bad(key, f"= {params[key]} is too small", "use at least 2")
    if not 1 <= int(params["n_perturbations"]) <= int(params["n_genes"]):
        raise bad(
            "n_perturbations",
            f"= {params['n_perturbations']} is not in 1..n_genes",
            "perturb at least one and at most n_genes genes",
        )
    max_combos = int(params["n_perturbations"]) * (int(params["n_perturbations"]) - 1) // 2
    if not 0 <= int(params["n_combos"]) <= max_combos:
        raise bad(
            "n_combos",
            f"= {params['n_combos']} is not in 0..{max_combos}",
            "ask for at most n_perturbations*(n_perturbations-1)/2 pairs",
        )
    if not 0.0 <= float(params["knockdown"]) < 1.0:
        raise bad(
            "knockdown",
            f"= {params['knockdown']} is not in [0, 1)",
            "give the fraction of expression removed, e.g. 0.9",
        )
    for key in ("effect_size", "state_sd", "mean_targets", "hop_decay"):
        if float(params[key]) < 0:
            raise bad(key, f"= {params[key]} is negative", "use a value >= 0")
    for key in ("max_shift", "library_size", "dispersion"):
        if float(params[key]) <= 0:
            raise bad(key, f"= {params[key]} is not positive", "use a value > 0")
    if int(params["hops"]) < 1:
        raise bad("hops", f"= {params['hops']} is below 1", "use 1 or more")
    if params["combination"] not in COMBINATIONS:
        raise bad("combination", f"= {params['combination']!r} is not known",
                  f"use one of {', '.join(COMBINATIONS)}")


def random_grn(
    n_genes: int, mean_targets: float, rng: np.random.Generator, must_regulate: np.ndarray
) -> sp.csr_matrix:
    """Sparse signed GRN, ``W[target, regulator]``; genes in ``must_regulate`` get >= 1 target."""
    rows, cols, vals = [], [], []
    out_degree = rng.poisson(mean_targets, size=n_genes)
    out_degree[must_regulate] = np.maximum(out_degree[must_regulate], 1)
    out_degree = np.minimum(out_degree, n_genes - 1)
    for r in range(n_genes):
        others = np.delete(np.arange(n_genes), r)
        targets = rng.choice(others, size=out_degree[r], replace=False)
        sign = rng.choice([-1.0, 1.0], size=len(targets))
        rows.extend(targets)
        cols.extend([r] * len(targets))
        vals.extend(sign * rng.uniform(0.5, 1.0, size=len(targets)))
    return sp.csr_matrix((np.asarray(vals), (rows, cols)), shape=(n_genes, n_genes))


def propagation_operator(W: sp.csr_matrix, hops: int, hop_decay: float) -> np.ndarray:
    """``M = sum_{k=1..hops} hop_decay^(k-1) W^k`` (dense: n_genes is small)."""
    Wd = W.toarray()
    M = np.zeros_like(Wd)
    power = np.eye(len(Wd))
    for k in range(1, hops + 1):
        power = Wd @ power
        M += hop_decay ** (k - 1) * power
    return M


def condition_effect(
    perturbed: list[int], M: np.ndarray, *, effect_size: float, max_shift: float, knockdown: float
) -> np.ndarray:
    """Ground-truth shift of log expression (n_genes,) for a set of perturbed genes."""
    a = np.zeros(len(M))
    a[perturbed] = -1.0
    delta = max_shift * np.tanh(effect_size * (M @ a) / max_shift)
    delta[perturbed] = np.log1p(-knockdown)
    return delta


def gears_de_genes(adata: ad.AnnData) -> None:
    """``uns['rank_genes_groups_cov_all']`` and ``uns['top_non_dropout_de_20']`` as GEARS
    computes them (``get_DE_genes`` / ``get_dropout_non_zero_genes``), per cell type."""
    de: dict[str, list[str]] = {}
    for cov in adata.obs["cell_type"].unique():
        sub = adata[adata.obs["cell_type"] == cov].copy()
        with warnings.catch_warnings():  # pandas fragmentation notices from inside scanpy
            warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
            sc.tl.rank_genes_groups(
                sub,
                groupby="condition_name",
                reference=f"{cov}_ctrl_1",
                rankby_abs=True,
                n_genes=sub.n_vars,
                use_raw=False,
            )
        names = pd.DataFrame(sub.uns["rank_genes_groups"]["names"])
        de.update({g: names[g].astype(str).tolist() for g in names.columns})
    adata.uns["rank_genes_groups_cov_all"] = {k: np.asarray(v) for k, v in de.items()}
    # GEARS: drop DE genes that are zero in the condition's mean but not in the control mean
    X = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
    ctrl_mean = X[adata.obs["condition"].to_numpy() == "ctrl"].mean(0)
    name2cond = dict(zip(adata.obs["condition_name"], adata.obs["condition"], strict=False))
    gene_idx = {g: i for i, g in enumerate(adata.var_names)}
    top = {}
    for name, genes in de.items():
        mean = X[adata.obs["condition"].to_numpy() == name2cond[name]].mean(0)
        dropout = (mean == 0) & (ctrl_mean != 0)
        top[name] = np.asarray([g for g in genes if not dropout[gene_idx[g]]][:20])
    adata.uns["top_non_dropout_de_20"] = top


def synthetic_perturbation_adata(
    n_genes: int = 200,
    n_perturbations: int = 30,
    n_combos: int = 0,
    cells_per_perturbation: int = 50,
    n_control: int = 500,
    seed: int = 0,
    effect_size: float = 1.0,
    knockdown: float = 0.9,
    mean_targets: float = 4.0,
    hops: int = 2,
    hop_decay: float = 0.5,
    max_shift: float = 2.5,
    state_sd: float = 0.3,
    library_size: float = 5000.0,
    dispersion: float = 5.0,
    cell_type: str = "synthetic",
    de_genes: bool = True,
    combination: str = "saturating",
) -> ad.AnnData:
    """Generate the dataset described in the module docstring (GEARS layout, ground truth in
    ``uns``). ``n_combos`` two-gene combinations are drawn among the perturbed genes, whose
    single perturbations are all present too. ``combination`` is ``"saturating"`` (one tanh
    over the summed activity) or ``"additive"`` (the sum of the singles' shifts).
    ``de_genes=False`` skips the DE ranking."""
    params = dict(
        n_genes=n_genes,
        n_perturbations=n_perturbations,
        n_combos=n_combos,
        cells_per_perturbation=cells_per_perturbation,
        n_control=n_control,
        seed=seed,
        effect_size=effect_size,
        knockdown=knockdown,
        mean_targets=mean_targets,
        hops=hops,
        hop_decay=hop_decay,
        max_shift=max_shift,
        state_sd=state_sd,
        library_size=library_size,
        dispersion=dispersion,
        cell_type=cell_type,
        combination=combination,
    )
    _check(params)
    rng = np.random.default_rng(seed)
    width = len(str(n_genes - 1))
    symbols = np.asarray([f"G{i:0{width}d}" for i in range(n_genes)])
    ids = np.asarray([f"SYN{i:05d}" for i in range(n_genes)])

    mu = rng.normal(0.0, 1.0, n_genes)
    pi = np.exp(mu - mu.max())
    pi /= pi.sum()
    perturbed_genes = np.sort(rng.choice(n_genes, size=n_perturbations, replace=False))
    W = random_grn(n_genes, mean_targets, rng, perturbed_genes)
    M = propagation_operator(W, hops, hop_decay)

    conditions: list[tuple[str, list[int]]] = [("ctrl", [])]
    conditions += [(f"{symbols[g]}+ctrl", [int(g)]) for g in perturbed_genes]
    pairs = list(combinations(perturbed_genes.tolist(), 2))
    for i in np.sort(rng.choice(len(pairs), size=n_combos, replace=False)) if n_combos else []:
        a, b = pairs[i]
        conditions.append((f"{symbols[a]}+{symbols[b]}", [a, b]))

    effects, counts, cond_of_cell = {}, [], []
    for name, genes in conditions:
        effect = dict(effect_size=effect_size, max_shift=max_shift, knockdown=knockdown)
        if combination == "additive":
            delta = sum((condition_effect([g], M, **effect) for g in genes), np.zeros(n_genes))
        else:
            delta = condition_effect(genes, M, **effect)
        effects[name] = delta
        n_cells = n_control if name == "ctrl" else cells_per_perturbation
        u = rng.normal(0.0, state_sd, size=(n_cells, n_genes))
        u[:, genes] = 0.0
        state = u + effect_size * u @ M.T
        lib = library_size * rng.lognormal(0.0, 0.25, size=(n_cells, 1))
        rate = lib * pi * np.exp(delta + state)
        lam = rng.gamma(shape=dispersion, scale=rate / dispersion)
        counts.append(rng.poisson(lam).astype(np.float32))
        cond_of_cell += [name] * n_cells

    counts_m = np.vstack(counts)
    cond = np.asarray(cond_of_cell)
    obs = pd.DataFrame(index=[f"cell{i:06d}" for i in range(len(cond))])
    obs["condition"] = pd.Categorical(cond)
    obs["cell_type"] = pd.Categorical([cell_type] * len(cond))
    dose = np.where(cond == "ctrl", "1", "1+1")
    obs["dose_val"] = pd.Categorical(dose)
    obs["control"] = (cond == "ctrl").astype(np.int64)
    obs["condition_name"] = pd.Categorical(
        [f"{cell_type}_{c}_{d}" for c, d in zip(cond, dose, strict=True)]
    )
    var = pd.DataFrame({"gene_name": symbols}, index=pd.Index(ids))
    adata = ad.AnnData(X=sp.csr_matrix(counts_m), obs=obs, var=var)
    adata.layers["counts"] = sp.csr_matrix(counts_m)
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    adata.uns.pop("log1p", None)

    Wc = W.tocoo()
    adata.uns["grn"] = {
        "regulator": symbols[Wc.col],
        "target": symbols[Wc.row],
        "weight": Wc.data.astype(np.float32),
    }
    adata.uns["true_log_fc"] = {name: d.astype(np.float32) for name, d in effects.items()}
    adata.uns["synthetic"] = params
    if de_genes:
        gears_de_genes(adata)
    return adata


def grn_adjacency(adata: ad.AnnData, genes: list[str] | None = None) -> sp.csr_matrix:
    """The ground-truth GRN of a synthetic dataset as a binary adjacency over ``genes``
    (default ``var['gene_name']``), row = target, column = regulator; edges whose genes are
    not in ``genes`` are dropped."""
    if "grn" not in adata.uns:
        raise ScgbError(
            "this dataset has no ground-truth GRN (uns['grn'])",
            field="grn",
            fix="use a dataset made by the synthetic_perturbation source",
        )
    if genes is None:
        genes = (
            adata.var["gene_name"].astype(str).tolist()
            if "gene_name" in adata.var
            else list(adata.var_names)
        )
    index = {g: i for i, g in enumerate(genes)}
    grn = adata.uns["grn"]
    pairs = [
        (index[t], index[r])
        for r, t in zip(
            np.asarray(grn["regulator"]).astype(str),
            np.asarray(grn["target"]).astype(str),
            strict=True,
        )
        if r in index and t in index
    ]
    n = len(genes)
    if not pairs:
        return sp.csr_matrix((n, n), dtype=np.float32)
    rows, cols = zip(*pairs, strict=True)
    A = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, n))
    A.data[:] = 1.0
    return A
