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


# one rule per study (a report caption cannot take a wildcard): its table (CSV + Markdown)
# and its figure (PNG + PDF), each with a caption
for _study in REPORT_STUDIES:

    rule:
        name:
            f"study_{_study}"
        input:
            plan="results/plan.json",
            runs="results/tables/runs.csv",
            scaling=["results/benchmarks/scaling.csv"] if _study == "scaling" else [],
        output:
            table=report(
                f"results/tables/{_study}.csv",
                caption=f"../report/{_study}.rst",
                category="Tables",
            ),
            figure=report(
                f"results/figures/{_study}.png",
                caption=f"../report/{_study}.rst",
                category="Figures",
            ),
        params:
            study=_study,
            extra=lambda wc, input: f"--scaling {input.scaling}" if input.scaling else "",
        log:
            f"logs/report/{_study}.log",
        benchmark:
            f"results/benchmarks/rules/report/{_study}.tsv"
        conda:
            "../../envs/scgraphbench.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=15,
        group:
            "report"
        shell:
            "python -m scgraphbench study --name {params.study} --plan {input.plan} "
            "--runs {input.runs} {params.extra} --table {output.table} "
            "--figure {output.figure} > {log} 2>&1"


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


rule figures:
    input:
        plan="results/plan.json",
        runs="results/tables/runs.csv",
        claims="results/tables/claims.csv",
        scaling=lambda wc: ["results/benchmarks/scaling.csv"] if "scaling" in enabled_studies()
        else [],
        kernel=lambda wc: ["results/benchmarks/attention_cost.csv"]
        if bench_setting("enabled", False)
        else [],
    output:
        frontier=report(
            "results/figures/frontier.png",
            caption="../report/frontier.rst",
            category="0. Summary",
        ),
        crossover=report(
            "results/figures/crossover.png",
            caption="../report/crossover.rst",
            category="0. Summary",
        ),
        verdicts=report(
            "results/figures/verdicts.png",
            caption="../report/verdicts.rst",
            category="0. Summary",
        ),
        table="results/tables/crossover.csv",
    params:
        extra=lambda wc, input: " ".join(
            [f"--scaling {input.scaling}"] * bool(input.scaling)
            + [f"--kernel {input.kernel}"] * bool(input.kernel)
        ),
    log:
        "logs/report/figures.log",
    benchmark:
        "results/benchmarks/rules/report/figures.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    group:
        "report"
    shell:
        "python -m scgraphbench figures --plan {input.plan} --runs {input.runs} "
        "--claims {input.claims} {params.extra} --out-dir results/figures "
        "--crossover {output.table} > {log} 2>&1"


rule summary:
    input:
        plan="results/plan.json",
        claims="results/tables/claims.csv",
        runs="results/tables/runs.csv",
        crossover="results/tables/crossover.csv",
        intro=os.path.join(workflow.basedir, "workflow/report/workflow.rst"),
    output:
        md=report(
            "results/summary.md",
            caption="../report/summary.rst",
            category="0. Summary",
        ),
        rst="results/summary.rst",
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
        "--runs {input.runs} --crossover {input.crossover} --out {output.md} "
        "--rst {output.rst} --intro {input.intro} > {log} 2>&1"
