# Pretrained backbones (scGPT, Geneformer): a model of family backbone_* loads a checkpoint
# folder, given by params.checkpoint or backbones.<key>.checkpoint, or fetched once from
# backbones.<key>.files into resources/checkpoints/<key>/ (checksummed where the config pins
# a sha256; MANIFEST.json records every file's sha256 as downloaded so that it can be pinned).
# <key> is the model's params.backbone, else "scgpt" / "geneformer" by family; the plan
# resolves it (scgraphbench.plan.build.model_backbone) and skips models with none.


rule fetch_checkpoint:
    output:
        "resources/checkpoints/{backbone}/MANIFEST.json",
    params:
        spec=lambda wc: as_json(config["backbones"][wc.backbone]),
        folder=lambda wc, output: os.path.dirname(output[0]),
    log:
        "logs/checkpoints/{backbone}.log",
    benchmark:
        "results/benchmarks/rules/checkpoints/{backbone}.tsv"
    conda:
        "../../envs/scgraphbench.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=240,
    shell:
        "python -m scgraphbench fetch-checkpoint --name {wildcards.backbone} "
        "--spec '{params.spec}' --out {params.folder} > {log} 2>&1"
