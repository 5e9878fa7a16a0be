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

import math
import warnings
from itertools import combinations
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
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
    import scanpy as sc  # here, not at module level: run() reads grn_adjacency from here

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
    import scanpy as sc

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


# ---------------------------------------------------------------------------------------
# Planted regulatory signal: cell types driven by TF modules (annotation task)
# ---------------------------------------------------------------------------------------

PLANTED_DEFAULTS: dict[str, Any] = dict(
    n_cells=725,
    n_genes=900,
    n_types=6,
    n_tfs=12,
    tfs_per_type=3,
    n_decoy_tfs=6,
    module_size=20,
    repression_fraction=0.2,
    program_strength=1.0,
    activity_sd=0.35,
    target_weight=0.6,
    tf_readout=0.3,
    gene_noise_sd=0.6,
    library_size=3000.0,
    dispersion=4.0,
    seed=0,
)
# parameters that shape the GRN; the others only shape the cells, so the GRN of a params
# set is the same whatever n_cells is (a database entry can rebuild it without the cells)
PLANTED_GRN_KEYS = ("n_genes", "n_types", "n_tfs", "tfs_per_type", "n_decoy_tfs",
                    "module_size", "repression_fraction", "seed")


def planted_params(**overrides: Any) -> dict[str, Any]:
    """:data:`PLANTED_DEFAULTS` overlaid by ``overrides``, checked."""
    unknown = sorted(set(overrides) - set(PLANTED_DEFAULTS))
    if unknown:
        raise ScgbError(
            f"synthetic_planted: unknown parameter(s) {unknown}",
            field="params",
            fix=f"use only: {', '.join(PLANTED_DEFAULTS)}",
        )
    p = {**PLANTED_DEFAULTS, **overrides}

    def bad(key: str, why: str, fix: str) -> ScgbError:
        return ScgbError(f"synthetic_planted: {key} = {p[key]!r} {why}", field=f"params.{key}",
                         fix=fix)

    for key in ("n_types", "n_tfs", "module_size", "tfs_per_type"):
        if int(p[key]) < (2 if key == "n_types" else 1):
            raise bad(key, "is too small", "use at least 2 types and 1 of the others")
    if int(p["tfs_per_type"]) >= int(p["n_tfs"]):
        raise bad("tfs_per_type", f"must be below n_tfs = {p['n_tfs']}",
                  "let each type switch on fewer TFs than there are")
    n_codes = math.comb(int(p["n_tfs"]), int(p["tfs_per_type"]))
    if n_codes < int(p["n_types"]):
        raise bad("n_types", f"exceeds the {n_codes} distinct TF programs",
                  "raise n_tfs or lower n_types")
    n_tfs_all = int(p["n_tfs"]) + int(p["n_decoy_tfs"])
    if int(p["n_genes"]) < n_tfs_all * (1 + int(p["module_size"])):
        raise bad("n_genes", f"cannot hold {n_tfs_all} TFs with {p['module_size']} targets each",
                  f"use n_genes >= {n_tfs_all * (1 + int(p['module_size']))}")
    if int(p["n_cells"]) < 10 * int(p["n_types"]):
        raise bad("n_cells", "is too few for a train/val/test split",
                  "use at least 10 cells per type")
    if not 0.0 <= float(p["repression_fraction"]) <= 1.0:
        raise bad("repression_fraction", "is not in [0, 1]", "give a fraction")
    for key in ("program_strength", "activity_sd", "target_weight", "tf_readout",
                "gene_noise_sd"):
        if float(p[key]) < 0:
            raise bad(key, "is negative", "use a value >= 0")
    for key in ("library_size", "dispersion"):
        if float(p[key]) <= 0:
            raise bad(key, "is not positive", "use a value > 0")
    return p


def planted_symbols(n_genes: int, n_tfs_all: int) -> np.ndarray:
    """``TF01..`` for the regulators, ``PG0001..`` for every other gene."""
    w_tf, w_g = len(str(n_tfs_all)), len(str(n_genes))
    return np.asarray([f"TF{i + 1:0{w_tf}d}" for i in range(n_tfs_all)]
                      + [f"PG{i + 1:0{w_g}d}" for i in range(n_genes - n_tfs_all)])


def planted_grn(**params: Any) -> pd.DataFrame:
    """The planted GRN of :func:`planted_regulatory_adata` for these parameters, as a TRRUST
    table: columns ``tf, target, mode`` (Activation/Repression), one row per edge.

    Genes 0..n_tfs-1 are the type-driving TFs, the next ``n_decoy_tfs`` regulate modules whose
    activity is independent of cell type (real GRNs are mostly irrelevant to any one label);
    each TF has ``module_size`` targets, drawn without overlap from the non-TF genes."""
    p = planted_params(**params)
    n_tfs_all = int(p["n_tfs"]) + int(p["n_decoy_tfs"])
    symbols = planted_symbols(int(p["n_genes"]), n_tfs_all)
    rng = np.random.default_rng([int(p["seed"]), 0])  # the GRN's own stream (see above)
    targets = rng.permutation(np.arange(n_tfs_all, int(p["n_genes"])))
    rows = []
    for k in range(n_tfs_all):
        module = targets[k * int(p["module_size"]) : (k + 1) * int(p["module_size"])]
        repress = rng.random(len(module)) < float(p["repression_fraction"])
        rows += [(symbols[k], symbols[g], "Repression" if r else "Activation")
                 for g, r in zip(module, repress, strict=True)]
    return pd.DataFrame(rows, columns=["tf", "target", "mode"])


def _type_programs(p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """(n_types, n_tfs) 0/1: which TFs each type switches on; distinct rows, every TF used
    by some type when there are enough types."""
    n_types, n_tfs, k = int(p["n_types"]), int(p["n_tfs"]), int(p["tfs_per_type"])
    codes: list[tuple[int, ...]] = []
    while len(codes) < n_types:
        # prefer the TFs used least so far, so that modules are shared evenly between types
        use = np.zeros(n_tfs)
        for c in codes:
            use[list(c)] += 1
        order = np.lexsort((rng.random(n_tfs), use))
        code = tuple(sorted(order[:k].tolist()))
        if code in codes:  # the least-used set is taken: any unused set
            code = tuple(sorted(rng.choice(n_tfs, size=k, replace=False).tolist()))
        if code not in codes:
            codes.append(code)
    P = np.zeros((n_types, n_tfs))
    for t, c in enumerate(codes):
        P[t, list(c)] = 1.0
    return P


def planted_regulatory_adata(**params: Any) -> ad.AnnData:
    """A bring-your-own-style annotation dataset whose cell types are written into TF
    modules (parameters: :data:`PLANTED_DEFAULTS`).

    Generative model:

    1. **GRN** (:func:`planted_grn`): ``n_tfs`` type-driving TFs and ``n_decoy_tfs`` decoy
       TFs, each with ``module_size`` targets (a share ``repression_fraction`` repressed).
    2. **Types.** Type t switches on ``tfs_per_type`` of the driving TFs (distinct
       combinations, modules shared between types). A cell's TF activity is
       ``a_k = program_strength * P[t, k] + N(0, activity_sd^2)`` (decoys: noise only, at the
       same spread as the driving TFs' spread across cells).
    3. **Expression.** A target of TF k has log-rate shift ``±target_weight * a_k``; the TF's
       own mRNA reads its activity weakly (``tf_readout * a_k``, TF activity is mostly
       post-translational); every gene of every cell has independent noise
       ``N(0, gene_noise_sd^2)``. Baseline abundance ``pi = softmax(N(0, 1))``; counts are
       Gamma-Poisson with mean ``L * pi * exp(shift)``, ``L = library_size * LogNormal(0, 0.3)``.

    With the defaults a single target gene separates types weakly (its shift is small next
    to its noise and to Poisson sampling), while the mean over a module's 20 targets
    recovers the TF activity: the label is carried by coordinated module activity, which a
    model can find by aggregating over the true regulons.

    Returns raw integer counts in ``X``, ``obs['cell_type']``, gene symbols as var_names,
    ``uns['grn']`` (regulator, target, weight: the same edges as :func:`planted_grn`),
    ``uns['planted']`` (parameters and the type programs).
    """
    p = planted_params(**params)
    grn = planted_grn(**{k: p[k] for k in PLANTED_GRN_KEYS})
    n_genes, n_tfs = int(p["n_genes"]), int(p["n_tfs"])
    n_tfs_all = n_tfs + int(p["n_decoy_tfs"])
    symbols = planted_symbols(n_genes, n_tfs_all)
    index = {g: i for i, g in enumerate(symbols)}
    W = np.zeros((n_genes, n_tfs_all))  # W[g, k]: shift of gene g per unit activity of TF k
    sign = np.where(grn["mode"].to_numpy() == "Repression", -1.0, 1.0)
    W[grn["target"].map(index).to_numpy(), grn["tf"].map(index).to_numpy()] = (
        sign * float(p["target_weight"])
    )
    W[np.arange(n_tfs_all), np.arange(n_tfs_all)] = float(p["tf_readout"])

    rng = np.random.default_rng([int(p["seed"]), 1])  # the cells' stream
    programs = _type_programs(p, np.random.default_rng([int(p["seed"]), 2]))
    n_cells, n_types = int(p["n_cells"]), int(p["n_types"])
    types = rng.permutation(np.arange(n_cells) % n_types)  # balanced types
    strength, sd = float(p["program_strength"]), float(p["activity_sd"])
    activity = np.empty((n_cells, n_tfs_all))
    activity[:, :n_tfs] = strength * programs[types] + rng.normal(0.0, sd, (n_cells, n_tfs))
    # decoys vary as much across cells as a driving TF does, but independently of type
    on = int(p["tfs_per_type"]) / n_tfs
    decoy_sd = math.sqrt(sd**2 + strength**2 * on * (1 - on))
    activity[:, n_tfs:] = rng.normal(strength * on, decoy_sd, (n_cells, n_tfs_all - n_tfs))
    mu = rng.normal(0.0, 1.0, n_genes)
    pi = np.exp(mu - mu.max())
    pi /= pi.sum()
    shift = activity @ W.T + rng.normal(0.0, float(p["gene_noise_sd"]), (n_cells, n_genes))
    lib = float(p["library_size"]) * rng.lognormal(0.0, 0.3, (n_cells, 1))
    rate = lib * pi * np.exp(shift)
    disp = float(p["dispersion"])
    counts = rng.poisson(rng.gamma(shape=disp, scale=rate / disp)).astype(np.float32)

    type_names = np.asarray([f"type{t + 1}" for t in range(n_types)])
    obs = pd.DataFrame({"cell_type": pd.Categorical(type_names[types])},
                       index=[f"cell{i:05d}" for i in range(n_cells)])
    adata = ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=symbols))
    adata.uns["grn"] = {
        "regulator": grn["tf"].to_numpy(dtype=str),
        "target": grn["target"].to_numpy(dtype=str),
        "weight": (sign * float(p["target_weight"])).astype(np.float32),
    }
    adata.uns["planted"] = {
        "params": p,
        "driving_tfs": symbols[:n_tfs].tolist(),
        "decoy_tfs": symbols[n_tfs:n_tfs_all].tolist(),
        "programs": {type_names[t]: symbols[np.flatnonzero(programs[t])].tolist()
                     for t in range(n_types)},
    }
    return adata


def shuffled_grn(grn: pd.DataFrame, seed: int = 0, swaps_per_edge: int = 10) -> pd.DataFrame:
    """A degree-matched random control of a TF -> target table: repeated double edge swaps
    ``(a->b, c->d) -> (a->d, c->b)`` keep every gene's out-degree (as TF) and in-degree (as
    target) and every edge's mode, while the targets move across genes; swaps that would
    make a self-edge or a duplicate are skipped."""
    tf = grn["tf"].astype(str).to_numpy().copy()
    target = grn["target"].astype(str).to_numpy().copy()
    edges = set(zip(tf, target, strict=True))
    rng = np.random.default_rng(seed)
    n = len(tf)
    for _ in range(swaps_per_edge * n if n > 1 else 0):
        i, j = rng.integers(0, n, 2)
        a, b, c, d = tf[i], target[i], tf[j], target[j]
        if i == j or a == d or c == b or (a, d) in edges or (c, b) in edges:
            continue
        edges -= {(a, b), (c, d)}
        edges |= {(a, d), (c, b)}
        target[i], target[j] = d, b
    out = grn.copy()
    out["target"] = target
    return out


def write_trrust(grn: pd.DataFrame, path: str | Path, pmid: str = "planted") -> Path:
    """Write a ``tf, target, mode`` table in TRRUST's raw layout: headerless TSV, columns TF,
    target, mode, PMIDs (``pmid`` in every row: these edges come from no paper)."""
    from scgraphbench.io import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = grn[["tf", "target", "mode"]].assign(pmids=pmid)
    with atomic_path(path, suffix=".tsv") as tmp:
        table.to_csv(tmp, sep="\t", header=False, index=False)
    return path
