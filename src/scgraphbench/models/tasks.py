"""Which tasks each family supports, importable without torch (Snakemake reads it while
parsing the workflow). Families not listed support both tasks; tests check that this table
agrees with the families' own ``tasks`` attributes."""

from __future__ import annotations

TASKS = ("annotation", "perturbation")

FAMILY_TASKS: dict[str, tuple[str, ...]] = {
    "logreg": ("annotation",),
    "mean_baseline": ("perturbation",),
    "control_baseline": ("perturbation",),
    "backbone_geneformer": ("annotation",),
}


def family_tasks(family: str) -> tuple[str, ...]:
    return FAMILY_TASKS.get(family, TASKS)
