rule aggregate:
    input:
        run_metrics(),
    output:
        runs="results/tables/runs.csv",
        annotation=report(
            "results/tables/annotation.csv",
            caption="../report/annotation.rst",
            category="Tables",
        ),
    log:
        "logs/report/aggregate.log",
    conda:
        "../../envs/scgraphbench.yaml"
    shell:
        "{SCGB} aggregate --metrics {input} --out-dir results/tables > {log} 2>&1"


rule figures:
    input:
        "results/tables/runs.csv",
    output:
        f1=report(
            "results/figures/macro_f1_by_model.png",
            caption="../report/macro_f1_by_model.rst",
            category="Figures",
        ),
        cost=report(
            "results/figures/macro_f1_vs_cost.png",
            caption="../report/macro_f1_vs_cost.rst",
            category="Figures",
        ),
    log:
        "logs/report/figures.log",
    conda:
        "../../envs/scgraphbench.yaml"
    shell:
        "{SCGB} figures --runs {input} --out-dir results/figures > {log} 2>&1"
