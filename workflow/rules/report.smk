rule aggregate:
    input:
        run_metrics(),
    output:
        runs=report(
            "results/tables/runs.csv",
            caption="../report/runs.rst",
            category="Tables",
        ),
    log:
        "logs/report/aggregate.log",
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    group:
        "report"
    shell:
        "{SCGB} aggregate --metrics {input} --out {output.runs} > {log} 2>&1"


# one rule per study: its table (CSV + Markdown) and its figure (PNG + PDF), each with a caption
for _study in STUDIES + ["perturbation"]:

    rule:
        name:
            f"study_{_study}"
        input:
            runs="results/tables/runs.csv",
            scaling=lambda wc, s=_study: (
                ["results/benchmarks/scaling.csv"] if s == "scaling" else []
            ),
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
            config=lambda wc: as_json(report_settings()),
            extra=lambda wc, input: f"--scaling {input.scaling}" if input.scaling else "",
        log:
            f"logs/report/{_study}.log",
        conda:
            "../../envs/scgraphbench.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=15,
        group:
            "report"
        shell:
            "{SCGB} study --name {params.study} --runs {input.runs} {params.extra} "
            "--settings '{params.config}' --table {output.table} --figure {output.figure} "
            "> {log} 2>&1"


rule claims:
    input:
        "results/tables/runs.csv",
    output:
        report(
            "results/tables/claims.csv",
            caption="../report/claims.rst",
            category="Tables",
        ),
    params:
        config=lambda wc: as_json(report_settings()),
    log:
        "logs/report/claims.log",
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    group:
        "report"
    shell:
        "{SCGB} claims --runs {input} --settings '{params.config}' --out {output} > {log} 2>&1"
