# The report stage: the plan (what was compared, declared before any run) and every run's
# metrics.json -> runs.csv -> one table and figure per study, the claims table with its
# verdicts, and the summary the report opens with.


rule plan:
    output:
        "results/plan.json",
    params:
        config=lambda wc: as_json(config),
    log:
        "logs/report/plan.log",
    benchmark:
        "results/benchmarks/rules/report/plan.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    group:
        "report"
    shell:
        "python -m scgraphbench plan --config {params.config:q} --out {output} > {log} 2>&1"


rule aggregate:
    input:
        plan="results/plan.json",
        metrics=run_metrics(),
    output:
        runs=report(
            "results/tables/runs.csv",
            caption="../report/runs.rst",
            category="Tables",
        ),
    log:
        "logs/report/aggregate.log",
    benchmark:
        "results/benchmarks/rules/report/aggregate.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    group:
        "report"
    shell:
        "python -m scgraphbench aggregate --plan {input.plan} --metrics {input.metrics} "
        "--out {output.runs} > {log} 2>&1"


rule study:
    input:
        plan="results/plan.json",
        runs="results/tables/runs.csv",
        scaling=lambda wc: (
            ["results/benchmarks/scaling.csv"] if wc.study == "scaling" else []
        ),
    output:
        table=report(
            "results/tables/{study}.csv",
            caption="../report/{study}.rst",
            category="Tables",
        ),
        figure=report(
            "results/figures/{study}.png",
            caption="../report/{study}.rst",
            category="Figures",
        ),
    params:
        extra=lambda wc, input: f"--scaling {input.scaling}" if input.scaling else "",
    wildcard_constraints:
        study=names_pattern(REPORT_STUDIES),
    log:
        "logs/report/{study}.log",
    benchmark:
        "results/benchmarks/rules/report/{study}.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    group:
        "report"
    shell:
        "python -m scgraphbench study --name {wildcards.study} --plan {input.plan} "
        "--runs {input.runs} {params.extra} --table {output.table} --figure {output.figure} "
        "> {log} 2>&1"


rule claims:
    input:
        plan="results/plan.json",
        runs="results/tables/runs.csv",
    output:
        report(
            "results/tables/claims.csv",
            caption="../report/claims.rst",
            category="Tables",
        ),
    log:
        "logs/report/claims.log",
    benchmark:
        "results/benchmarks/rules/report/claims.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    group:
        "report"
    shell:
        "python -m scgraphbench claims --plan {input.plan} --runs {input.runs} "
        "--out {output} > {log} 2>&1"


rule summary:
    input:
        plan="results/plan.json",
        claims="results/tables/claims.csv",
        runs="results/tables/runs.csv",
    output:
        report(
            "results/summary.md",
            caption="../report/summary.rst",
            category="0. Summary",
        ),
    log:
        "logs/report/summary.log",
    benchmark:
        "results/benchmarks/rules/report/summary.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    group:
        "report"
    shell:
        "python -m scgraphbench summary --plan {input.plan} --claims {input.claims} "
        "--runs {input.runs} --out {output} > {log} 2>&1"
