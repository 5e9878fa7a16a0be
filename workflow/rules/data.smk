# Datasets: registry datasets are downloaded once into resources/ (checksummed, resumable);
# each replicate r of a dataset is then prepared into results/prepared/{dataset}/rep{r}.h5ad
# (its own split, HVGs fit on its own training cells), the only file later stages read.
# Offline sources (built-in, synthetic, local paths) never need the download.


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
        "python -m scgraphbench download --dataset {wildcards.dataset} --spec '{params.spec}' "
        "--root resources/datasets > {log} 2>&1"


rule prepare_dataset:
    input:
        dataset_inputs,
    output:
        "results/prepared/{dataset}/rep{replicate}.h5ad",
    params:
        spec=lambda wc: as_json(dataset_spec(wc.dataset)),
    log:
        "logs/prepare/{dataset}/rep{replicate}.log",
    benchmark:
        "results/benchmarks/rules/prepare/{dataset}/rep{replicate}.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=scaled(8000),
        runtime=scaled(60),
    shell:
        "python -m scgraphbench prepare --dataset {wildcards.dataset} --spec '{params.spec}' "
        "--replicate {wildcards.replicate} --inputs {input} --out {output} > {log} 2>&1"
