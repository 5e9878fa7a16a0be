"""GEARS' perturbation conventions: condition names, the 'simulation' split, the top-20 DE genes.

Re-implemented from snap-stanford/GEARS (gears/data_utils.py: ``DataSplitter.get_simulation_split``
and ``get_DE_genes``) rather than imported, because cell-gears pulls a GO-graph download and
torch-geometric data loaders into a step that needs neither. The random draws follow GEARS'
order (a legacy ``RandomState(seed)`` re-seeded before the combo draw, as its
``np.random.seed`` calls do), so the same perturbation set and seed give GEARS' split.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd

CTRL = "ctrl"
SUBGROUPS = ("combo_seen0", "combo_seen1", "combo_seen2", "unseen_single")


def genes_of(condition: str) -> list[str]:
    """Perturbed genes of a GEARS condition: 'A+ctrl' -> [A], 'A+B' -> [A, B], 'ctrl' -> []."""
    return [g for g in str(condition).split("+") if g and g != CTRL]


def gears_subgroup(condition: str, seen_genes: set[str]) -> str:
    """GEARS simulation-split subgroup of a held-out condition, given the genes whose
    perturbations were seen in training: unseen_single or combo_seen0/1/2."""
    genes = genes_of(condition)
    if len(genes) <= 1:
        return "unseen_single" if not set(genes) <= seen_genes else "seen_single"
    return f"combo_seen{sum(g in seen_genes for g in genes)}"


def is_single(condition: str) -> bool:
    return condition != CTRL and CTRL in condition.split("+")


def is_combo(condition: str) -> bool:
    return condition != CTRL and CTRL not in condition.split("+")


def _perts_with_genes(genes: np.ndarray, perts: list[str], single: bool) -> list[str]:
    gene_set = set(genes.tolist())
    pick = is_single if single else is_combo
    return [p for p in perts if pick(p) and gene_set.intersection(genes_of(p))]


@dataclass
class SimulationSplit:
    train: list[str]
    test: list[str]
    subgroup: dict[str, list[str]]


def simulation_split(
    perts: list[str], train_fraction: float, seed: int, combo_seen2_train_frac: float = 0.75
) -> SimulationSplit:
    """GEARS ``get_simulation_split``: hold out unseen genes, then some seen-gene combos.

    - ``train_fraction`` of the perturbed genes are drawn as seen (GEARS
      ``train_gene_set_size``);
    - singles of seen genes train; singles of unseen genes are ``unseen_single`` (test);
    - combos with one seen gene are ``combo_seen1``, with none ``combo_seen0`` (test);
    - combos with two seen genes: ``combo_seen2_train_frac`` of them train, the rest
      ``combo_seen2``. A parameter of its own in GEARS, 0.75 whatever the gene share is.
    """
    genes = np.unique([g for p in np.unique(perts) for g in genes_of(p)])
    rs = np.random.RandomState(seed)
    seen = rs.choice(genes, int(len(genes) * train_fraction), replace=False)
    unseen = np.setdiff1d(genes, seen)
    seen_set = set(seen.tolist())

    single_train = _perts_with_genes(seen, perts, single=True)
    combos = _perts_with_genes(seen, perts, single=False)
    combo_seen1 = [p for p in combos if sum(g in seen_set for g in genes_of(p)) == 1]
    both_seen = np.setdiff1d(combos, combo_seen1)
    rs = np.random.RandomState(seed)  # GEARS re-seeds before this draw
    combo_train = rs.choice(both_seen, int(len(both_seen) * combo_seen2_train_frac), replace=False)
    combo_seen2 = np.setdiff1d(both_seen, combo_train).tolist()
    unseen_single = _perts_with_genes(unseen, perts, single=True)
    combo_seen0 = [
        p
        for p in _perts_with_genes(unseen, perts, single=False)
        if not seen_set.intersection(genes_of(p))
    ]
    train = single_train + [str(p) for p in combo_train]
    test = combo_seen1 + combo_seen2 + unseen_single + combo_seen0
    return SimulationSplit(
        train=train,
        test=test,
        subgroup={
            "combo_seen0": combo_seen0,
            "combo_seen1": combo_seen1,
            "combo_seen2": combo_seen2,
            "unseen_single": unseen_single,
        },
    )


def gears_split(
    conditions: pd.Series, train_fraction: float, seed: int, combo_seen2_train_frac: float = 0.75
) -> tuple[dict[str, str], dict[str, str]]:
    """Condition -> split (GEARS 'simulation'), and test condition -> subgroup.

    As GEARS ``PertData.prepare_split('simulation', seed, train_gene_set_size=train_fraction,
    combo_seen2_train_frac)`` (``DataSplitter.split_data``): test from the full set, then
    validation from the training perturbations with 0.9 for both fractions, same seed.
    'ctrl' is left out.
    """
    perts = [c for c in pd.unique(conditions.astype(str)) if c != CTRL]
    first = simulation_split(perts, train_fraction, seed, combo_seen2_train_frac)
    second = simulation_split(first.train, 0.9, seed, combo_seen2_train_frac=0.9)
    split = {p: "train" for p in second.train}
    split.update({p: "val" for p in second.test})
    split.update({p: "test" for p in first.test})
    subgroup = {p: name for name, members in first.subgroup.items() for p in members}
    return split, subgroup


def top_de_genes(adata: ad.AnnData, n_genes: int = 20) -> dict[str, list[str]]:
    """Top ``n_genes`` DE genes per condition as GEARS ranks them.

    scanpy ``rank_genes_groups`` of each condition against 'ctrl' on ``X`` (log-normalised),
    t-test, ``rankby_abs=True`` (GEARS ``get_DE_genes``; with one cell type its per-cell-type
    grouping is this one call).
    """
    import scanpy as sc

    work = ad.AnnData(
        X=adata.X,
        obs=pd.DataFrame(
            {"condition": adata.obs["condition"].astype(str).to_numpy()}, index=adata.obs_names
        ),
        var=pd.DataFrame(index=adata.var_names),
    )
    groups = [c for c in pd.unique(work.obs["condition"]) if c != CTRL]
    with warnings.catch_warnings():
        # a one-cell condition has no variance: scanpy still ranks it, with a warning
        warnings.simplefilter("ignore")
        sc.tl.rank_genes_groups(
            work,
            groupby="condition",
            groups=groups,
            reference=CTRL,
            method="t-test",
            rankby_abs=True,
            n_genes=n_genes,
            use_raw=False,
        )
    names = work.uns["rank_genes_groups"]["names"]
    return {g: [str(x) for x in names[g]] for g in names.dtype.names}
