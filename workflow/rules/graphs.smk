rule build_graph:
    input:
        "results/prepared/{dataset}.h5ad",
    output:
        graph="results/graphs/{dataset}/{graph}.npz",
        stats="results/graphs/{dataset}/{graph}.stats.json",
    params:
        spec=lambda wc: as_json(config["graphs"][wc.graph]),
    log:
        "logs/graphs/{dataset}/{graph}.log",
    benchmark:
        "benchmarks/graphs/{dataset}/{graph}.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "{SCGB} build-graph --prepared {input} --variant {wildcards.graph} "
        "--params '{params.spec}' --out {output.graph} --stats {output.stats} > {log} 2>&1"


rule graph_table:
    input:
        expand(
            "results/graphs/{dataset}/{graph}.stats.json",
            dataset=config["datasets"],
            graph=used_graphs(),
        ),
    output:
        report(
            "results/tables/graphs.csv",
            caption="../report/graphs.rst",
            category="Graphs",
        ),
    log:
        "logs/graphs/table.log",
    conda:
        "../../envs/scgraphbench.yaml"
    shell:
        "{SCGB} graph-table --stats {input} --out {output} > {log} 2>&1"
