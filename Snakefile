# scgraphbench: gene-graph models vs dense Transformers on single-cell data.
# Thin entry point: every stage lives in workflow/rules/, every step calls the package CLI.
import os

from snakemake.utils import min_version

min_version("9.0")


# A config given with --configfile replaces the default rather than extending it.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# `snakemake --report` opens with the answer once the run has written it
report: os.path.abspath("results/summary.rst") if os.path.exists("results/summary.rst") else "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


# every wildcard matches only what the plan declares (replicates and seeds are integers)
wildcard_constraints:
    dataset=names_pattern(PLAN.datasets),
    model=names_pattern(PLAN.models),
    graph=names_pattern([*PLAN.graphs, NO_GRAPH]),
    setting=names_pattern({name for _, name in PLAN.settings}),
    replicate=r"\d+",
    seed=r"\d+",
    db=names_pattern(config.get("databases") or {}),
    backbone=names_pattern(config.get("backbones") or {}),


include: "workflow/rules/data.smk"
include: "workflow/rules/backbones.smk"
include: "workflow/rules/graphs.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/bench.smk"


print_compute_estimate()


onstart:
    start_forkserver()


onsuccess:
    stop_forkserver()


onerror:
    stop_forkserver()


rule all:
    input:
        final_outputs(),
