"""The plan: a config expanded, once, into runs and the comparisons tables and claims make.

Torch-free and pure; Snakemake (``workflow/rules/common.smk``), ``validate-config`` and the
report stage read it. See :mod:`.build` (runs, checks), :mod:`.runs` (run and setting
records) and :mod:`.comparisons` (arms, hypotheses, Holm families).
"""

from scgraphbench.plan.build import Plan, build_plan, cached_plan
from scgraphbench.plan.comparisons import Arm, Comparison, comparison_from_dict
from scgraphbench.plan.runs import DEFAULT, NO_GRAPH, TUNED, Run, Setting

__all__ = ["DEFAULT", "NO_GRAPH", "TUNED", "Arm", "Comparison", "Plan", "Run", "Setting",
           "build_plan", "cached_plan", "comparison_from_dict"]
