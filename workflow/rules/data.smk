rule prepare_dataset:
    output:
        "results/prepared/{dataset}.h5ad",
    params:
        spec=lambda wc: as_json(dataset_spec(wc.dataset)),
    log:
        "logs/prepare/{dataset}.log",
    benchmark:
        "benchmarks/prepare/{dataset}.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "{SCGB} prepare --dataset {wildcards.dataset} --spec '{params.spec}' "
        "--out {output} > {log} 2>&1"
