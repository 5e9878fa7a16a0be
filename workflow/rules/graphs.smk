# Gene graphs: regulatory databases fetched once into resources/, then one build_graph rule
# for every variant named in config["graphs"] (kinds: coexpr, grn, both, knn, random).
import re

from scgraphbench.graphs.spec import check_graphs, variant_dependencies

check_graphs(config["graphs"], config.get("databases", {}))


def _names_pattern(names):
    return "|".join(re.escape(n) for n in names) or "(?!)"


def database_table(db):
    return f"resources/databases/{db}.csv.gz"


def database_local_input(wildcards):
    """A database's local override file, so that editing it reruns the fetch."""
    path = (config.get("databases", {}).get(wildcards.db) or {}).get("path")
    return [path] if path else []


def graph_build_inputs(wildcards):
    """The prepared dataset, plus the database tables (grn, both) or the base graph (random)."""
    dbs, base = variant_dependencies(wildcards.graph, config["graphs"][wildcards.graph])
    inputs = {"prepared": f"results/prepared/{wildcards.dataset}.h5ad"}
    if dbs:
        inputs["databases"] = [database_table(db) for db in dbs]
    if base:
        inputs["base"] = f"results/graphs/{wildcards.dataset}/{base}.npz"
    return inputs


def graph_build_args(wildcards):
    dbs, base = variant_dependencies(wildcards.graph, config["graphs"][wildcards.graph])
    args = []
    if dbs:
        args.append("--databases " + " ".join(database_table(db) for db in dbs))
    if base:
        args.append(f"--base results/graphs/{wildcards.dataset}/{base}.npz")
    return " ".join(args)


def all_graph_stats_files():
    """The variants some run uses, on the datasets it uses them on: a variant may not fit
    every dataset (a regulatory database shares no gene with synthetic data)."""
    return sorted(set(graph_stats_files()))


rule fetch_database:
    input:
        database_local_input,
    output:
        table="resources/databases/{db}.csv.gz",
        info="resources/databases/{db}.json",
    params:
        spec=lambda wc: as_json(config["databases"][wc.db]),
    wildcard_constraints:
        db=_names_pattern(config.get("databases", {})),
    log:
        "logs/databases/{db}.log",
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "{SCGB} fetch-database --name {wildcards.db} --spec {params.spec:q} "
        "--out {output.table} --info {output.info} --cache resources/databases/raw > {log} 2>&1"


rule build_graph:
    input:
        unpack(graph_build_inputs),
    output:
        graph="results/graphs/{dataset}/{graph}.npz",
        stats="results/graphs/{dataset}/{graph}.stats.json",
    params:
        spec=lambda wc: as_json(config["graphs"][wc.graph]),
        extra=graph_build_args,
    wildcard_constraints:
        graph=_names_pattern(config["graphs"]),
    log:
        "logs/graphs/{dataset}/{graph}.log",
    benchmark:
        "results/benchmarks/rules/graphs/{dataset}/{graph}.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000, per_input_mb=4),
        runtime=scaled(20, per_input_mb=0.05),
    group:
        "graphs"
    shell:
        "{SCGB} build-graph --prepared {input.prepared} --variant {wildcards.graph} "
        "--params {params.spec:q} {params.extra} --out {output.graph} --stats {output.stats} "
        "> {log} 2>&1"


rule graph_table:
    input:
        stats=all_graph_stats_files(),
        graphs=[p.replace(".stats.json", ".npz") for p in all_graph_stats_files()],
    output:
        table=report(
            "results/tables/graphs.csv",
            caption="../report/graphs.rst",
            category="Graphs",
        ),
        overlap="results/tables/graph_overlap.csv",
    log:
        "logs/graphs/table.log",
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    group:
        "report"
    shell:
        "{SCGB} graph-table --stats {input.stats} --graphs {input.graphs} "
        "--out {output.table} --overlap {output.overlap} > {log} 2>&1"
