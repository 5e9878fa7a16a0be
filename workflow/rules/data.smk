# Datasets: registry datasets are downloaded once into resources/ (checksummed, resumable);
# every source is then prepared into results/prepared/{dataset}.h5ad, the only file later
# stages read. Offline sources (built-in, synthetic, local paths) never need the download.


rule download_dataset:
    output:
        "resources/datasets/{dataset}/manifest.json",
    params:
        spec=lambda wc: as_json(dataset_spec(wc.dataset)),
    log:
        "logs/download/{dataset}.log",
    benchmark:
        "results/benchmarks/rules/download/{dataset}.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=240,
    shell:
        "{SCGB} download --dataset {wildcards.dataset} --spec '{params.spec}' "
        "--root resources/datasets > {log} 2>&1"


rule prepare_dataset:
    input:
        dataset_inputs,
    output:
        "results/prepared/{dataset}.h5ad",
    params:
        spec=lambda wc: as_json(dataset_spec(wc.dataset)),
    log:
        "logs/prepare/{dataset}.log",
    benchmark:
        "results/benchmarks/rules/prepare/{dataset}.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=scaled(8000),
        runtime=scaled(60),
    shell:
        "{SCGB} prepare --dataset {wildcards.dataset} --spec '{params.spec}' "
        "--inputs {input} --out {output} > {log} 2>&1"
