# Gene graphs: regulatory databases fetched once into resources/, then one build_graph job
# per (dataset, replicate, variant) some run uses: co-expression and kNN graphs are fit on
# the replicate's training cells, random controls draw a fresh seed per replicate.


rule fetch_database:
    input:
        database_local_input,
    output:
        table="resources/databases/{db}.csv.gz",
        info="resources/databases/{db}.json",
    params:
        spec=lambda wc: as_json(config["databases"][wc.db]),
    log:
        "logs/databases/{db}.log",
    benchmark:
        "results/benchmarks/rules/databases/{db}.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "python -m scgraphbench fetch-database --name {wildcards.db} --spec {params.spec:q} "
        "--out {output.table} --info {output.info} --cache resources/databases/raw > {log} 2>&1"


rule build_graph:
    input:
        unpack(graph_build_inputs),
    output:
        graph="results/graphs/{dataset}/rep{replicate}/{graph}.npz",
        stats="results/graphs/{dataset}/rep{replicate}/{graph}.stats.json",
    params:
        spec=lambda wc: as_json(graph_spec(wc)),
        extra=graph_build_args,
    log:
        "logs/graphs/{dataset}/rep{replicate}/{graph}.log",
    benchmark:
        "results/benchmarks/rules/graphs/{dataset}/rep{replicate}/{graph}.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000, per_input_mb=4),
        runtime=scaled(20, per_input_mb=0.05),
    group:
        "graphs"
    shell:
        "python -m scgraphbench build-graph --prepared {input.prepared} "
        "--variant {wildcards.graph} --params {params.spec:q} {params.extra} "
        "--out {output.graph} --stats {output.stats} > {log} 2>&1"


rule graph_table:
    input:
        stats=graph_files(".stats.json"),
        graphs=graph_files(".npz"),
    output:
        table=report(
            "results/tables/graphs.csv",
            caption="../report/graphs.rst",
            category="Graphs",
        ),
        overlap="results/tables/graph_overlap.csv",
    log:
        "logs/graphs/table.log",
    benchmark:
        "results/benchmarks/rules/graphs/table.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    group:
        "report"
    shell:
        "python -m scgraphbench graph-table --stats {input.stats} --graphs {input.graphs} "
        "--out {output.table} --overlap {output.overlap} > {log} 2>&1"
