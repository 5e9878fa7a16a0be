# Pretrained backbones (scGPT, Geneformer): a model of family backbone_* loads a checkpoint
# folder, given by params.checkpoint or backbones.<key>.checkpoint, or fetched once from
# backbones.<key>.files into resources/checkpoints/<key>/ (checksummed where the config pins
# a sha256; MANIFEST.json records every file's sha256 as downloaded so that it can be pinned).
# <key> is the model's params.backbone, else "scgpt" / "geneformer" by family.
import os

# Plain Python on purpose: the package's backbone code imports torch, which every
# `snakemake -n` would then pay for.
BACKBONE_FAMILIES = {"backbone_scgpt": "scgpt", "backbone_geneformer": "geneformer"}
CHECKPOINT_ROOT = "resources/checkpoints"


def model_backbone(model):
    """(key, folder, fetch) of a backbone model, None for other families.

    folder, in order of precedence: params.checkpoint, backbones.<key>.checkpoint, the folder
    fetched from backbones.<key>.files; None when nothing is configured. fetch: whether the
    workflow downloads it. key: params.backbone, else the family's default.
    """
    spec = model_spec(model)
    if spec["family"] not in BACKBONE_FAMILIES:
        return None
    params = spec["params"]
    key = params.get("backbone") or BACKBONE_FAMILIES[spec["family"]]
    entry = (config.get("backbones") or {}).get(key) or {}
    if params.get("checkpoint"):
        return key, str(params["checkpoint"]), False
    if entry.get("checkpoint"):
        return key, str(entry["checkpoint"]), False
    if entry.get("files"):
        return key, f"{CHECKPOINT_ROOT}/{key}", True
    return key, None, False


def backbone_skip_reason(model):
    """A message when a backbone model has no checkpoint configured (skip it), else None."""
    source = model_backbone(model)
    if source is None or source[1] is not None:
        return None
    key = source[0]
    return (
        f"model '{model}' skipped: no checkpoint for backbone '{key}'; set "
        f"backbones.{key}.checkpoint to a local folder, or backbones.{key}.files to fetch "
        "one (docs/backbones.md)"
    )


def backbone_input(wildcards):
    """Train-rule input: the fetched checkpoint's manifest when the workflow downloads it."""
    source = model_backbone(wildcards.model)
    if source and source[2]:
        return [f"{CHECKPOINT_ROOT}/{source[0]}/MANIFEST.json"]
    return []


def backbone_params(model, params):
    """A model's params with params.checkpoint set to its resolved checkpoint folder."""
    source = model_backbone(model)
    if source is None or source[1] is None:
        return params
    return {**params, "checkpoint": source[1]}


rule fetch_checkpoint:
    output:
        f"{CHECKPOINT_ROOT}/{{backbone}}/MANIFEST.json",
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
        "{SCGB} fetch-checkpoint --name {wildcards.backbone} --spec '{params.spec}' "
        "--out {params.folder} > {log} 2>&1"
