"""The common trainer on the annotation task: determinism, exact resume, bad inputs, cost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_prepared_annotation
from scgraphbench.cli import main
from scgraphbench.errors import ScgbError
from scgraphbench.train.cost import PeakMemory, attention_flops
from scgraphbench.train.data import stratified_fraction
from scgraphbench.train.run import run
from scgraphbench.train.trainer import TrainConfig

PARAMS = {"d_model": 8, "n_layers": 1, "n_heads": 2, "dropout": 0.2}
TRAIN = {"epochs": 3, "patience": 5, "lr": 3e-3, "batch_size": 32, "device": "cpu"}
# measurements of time and memory legitimately differ between runs
VOLATILE = {
    "time_per_step_s",
    "epoch_time_s",
    "train_time_s",
    "inference_cells_per_s",
    "inference_time_s",
    "peak_memory_mb",
    "environment",
    "resumed_from_epoch",
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _stable(m: dict) -> dict:
    return {k: v for k, v in m.items() if k not in VOLATILE}


@pytest.fixture(scope="module")
def tiny_ann(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ann") / "tiny.h5ad"
    make_prepared_annotation(n_cells=160, n_genes=16).write_h5ad(path)
    return path


def _run(prepared: Path, out: Path, **kw) -> dict | None:
    return run(str(prepared), None, "transformer", PARAMS, TRAIN, 0, str(out), **kw)


def test_same_seed_same_metrics_on_cpu(tiny_ann, tmp_path):
    a, b = _run(tiny_ann, tmp_path / "a"), _run(tiny_ann, tmp_path / "b")
    assert _stable(a) == _stable(b)
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    c = run(str(tiny_ann), None, "transformer", PARAMS, TRAIN, 1, str(tmp_path / "c"))
    assert c["history"][0]["train_loss"] != a["history"][0]["train_loss"]


def test_resume_after_kill_equals_uninterrupted(tiny_ann, tmp_path):
    full = _run(tiny_ann, tmp_path / "full")
    out = tmp_path / "killed"
    assert _run(tiny_ann, out, stop_after_epoch=0) is None  # "killed" after epoch 0
    assert (out / "checkpoint.pt").exists() and not (out / "metrics.json").exists()
    resumed = _run(tiny_ann, out)
    assert resumed["resumed_from_epoch"] == 1
    assert _stable(resumed) == _stable(full)
    assert np.array_equal(
        np.load(out / "embeddings.npy"), np.load(tmp_path / "full" / "embeddings.npy")
    )


def test_checkpoint_of_other_settings_is_not_resumed(tiny_ann, tmp_path):
    out = tmp_path / "run"
    _run(tiny_ann, out, stop_after_epoch=0)
    other = run(str(tiny_ann), None, "transformer", {**PARAMS, "dropout": 0.0}, TRAIN, 0, str(out))
    assert other["resumed_from_epoch"] is None and other["epochs_run"] == 3
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")  # unreadable: start afresh
    fresh = _run(tiny_ann, out)
    assert fresh["resumed_from_epoch"] is None and fresh["epochs_run"] == 3


def test_annotation_outputs_and_metrics_keys(tiny_ann, tmp_path, capsys):
    rc = main(
        [
            "train",
            "--prepared",
            str(tiny_ann),
            "--family",
            "transformer",
            "--params",
            json.dumps(PARAMS),
            "--train",
            json.dumps(TRAIN),
            "--seed",
            "0",
            "--meta",
            json.dumps({"dataset": "tiny", "model": "tf", "graph": "none"}),
            "--out-dir",
            str(tmp_path),
        ]
    )
    assert rc == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    for key in (
        "accuracy",
        "macro_f1",
        "per_class",
        "leiden_ari",
        "leiden_nmi",
        "silhouette_label",
        "n_parameters",
        "time_per_step_s",
        "epoch_time_s",
        "train_time_s",
        "inference_cells_per_s",
        "peak_memory_mb",
        "attention_flops_per_cell",
        "environment",
        "history",
        "dataset",
        "model",
    ):
        assert key in m, key
    assert m["environment"]["device"] == "cpu" and "torch" in m["environment"]
    assert set(m["per_class"]) == {"type0", "type1", "type2"}
    confusion = (tmp_path / "confusion.csv").read_text().splitlines()
    assert confusion[0] == "true,type0,type1,type2" and len(confusion) == 4
    assert len((tmp_path / "predictions.csv").read_text().splitlines()) == m["n_test"] + 1
    assert np.load(tmp_path / "embeddings.npy").shape == (m["n_test"], PARAMS["d_model"])
    # progress: one tqdm status line per epoch in a log (not a terminal), no \r refreshes
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("epochs")]
    assert len(lines) == 3 and "\r" not in err and "loss=" in lines[-1] and "3/3" in lines[-1]


def test_logreg_baseline_runs_through_the_cli(tiny_ann, tmp_path):
    assert (
        main(
            ["train", "--prepared", str(tiny_ann), "--family", "logreg", "--out-dir", str(tmp_path)]
        )
        == 0
    )
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["accuracy"] > 0.8 and m["attention_flops_per_cell"] is None


def _write(adata, path: Path) -> Path:
    adata.write_h5ad(path)
    return path


def test_label_seen_only_in_test_is_a_clear_error(tmp_path):
    a = make_prepared_annotation(n_cells=80, n_genes=10)
    a.obs["label"] = a.obs["label"].cat.add_categories(["ghost"])
    a.obs.loc[a.obs_names[a.obs["split"] == "test"][0], "label"] = "ghost"
    path = _write(a, tmp_path / "ghost.h5ad")
    with pytest.raises(ScgbError, match="ghost.*never in train") as e:
        run(str(path), None, "logreg", {}, TRAIN, 0, str(tmp_path / "out"))
    assert e.value.field == "label" and e.value.fix
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_empty_validation_split_is_a_clear_error(tmp_path, capsys):
    a = make_prepared_annotation(n_cells=80, n_genes=10)
    a.obs.loc[a.obs["split"] == "val", "split"] = "train"
    path = _write(a, tmp_path / "noval.h5ad")
    rc = main(
        [
            "train",
            "--prepared",
            str(path),
            "--family",
            "transformer",
            "--params",
            json.dumps(PARAMS),
            "--out-dir",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "'val' split is empty" in err and "fix:" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_bad_train_settings_are_clear_errors():
    with pytest.raises(ScgbError, match="train_fraction"):
        TrainConfig.from_dict({"train_fraction": 0.0})
    with pytest.raises(ScgbError, match="precision"):
        TrainConfig.from_dict({"precision": "fp8"})


def test_few_shot_fraction_is_stratified_and_seeded():
    labels = np.array(["a"] * 40 + ["b"] * 10 + ["c"] * 1)
    keep = stratified_fraction(labels, 0.2, seed=0)
    kept = labels[keep]
    assert (kept == "a").sum() == 8 and (kept == "b").sum() == 2 and (kept == "c").sum() == 1
    assert np.array_equal(keep, stratified_fraction(labels, 0.2, seed=0))
    assert not np.array_equal(keep, stratified_fraction(labels, 0.2, seed=1))


def test_few_shot_run_trains_on_fewer_cells(tiny_ann, tmp_path):
    m = run(str(tiny_ann), None, "logreg", {}, {**TRAIN, "train_fraction": 0.25}, 0, str(tmp_path))
    full = make_prepared_annotation(n_cells=160, n_genes=16)
    n_train = int((full.obs["split"] == "train").sum())
    assert m["n_train"] < n_train / 2 and m["train"]["train_fraction"] == 0.25


def test_peak_memory_sees_an_allocation():
    with PeakMemory(torch.device("cpu")) as mem:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB
        block += 1
    assert mem.peak_mb > 40
    with PeakMemory(torch.device("cpu")) as idle:
        pass
    assert idle.peak_mb < 20


def test_attention_flops_by_formula():
    import scipy.sparse as sp

    from scgraphbench.models.registry import ModelContext, build_family

    n, d, layers = 10, 8, 2
    ctx = ModelContext(
        task="annotation", n_genes=n, gene_names=[str(i) for i in range(n)], n_classes=2
    )
    dense = build_family("transformer", ctx, dict(d_model=d, n_layers=layers, n_heads=2, pooling="cls"))
    L = n + 1  # CLS token
    assert attention_flops(dense, n) == layers * (8 * L * d * d + 4 * L * L * d)
    chain = sp.csr_matrix((np.ones(n - 1), (np.arange(n - 1), np.arange(1, n))), shape=(n, n))
    ctx.graph = chain
    masked = build_family("masked_attention", ctx, dict(d_model=d, n_layers=layers, n_heads=2, pooling="cls"))
    E = masked.mixers()[0].graph.n_edges
    assert attention_flops(masked, n) == layers * (8 * L * d * d + 4 * E * d)
    assert attention_flops(masked, n) < attention_flops(dense, n)
    assert attention_flops(object(), n) is None  # not a torch family
    assert attention_flops(build_family("logreg", ctx, {}), n) is None

    from scgraphbench.models.contract import FamilyModule

    class OwnLayers(FamilyModule):  # a family built from other layers reports its own count
        def attention_flops(self, n_genes: int) -> int:
            return 7 * n_genes

    assert attention_flops(OwnLayers(), n) == 70


def test_class_weights_by_hand():
    from scgraphbench.train.data import class_weights

    # sklearn's 'balanced': n / (n_classes * count); an absent class gets 0
    w = class_weights(np.array([0, 0, 1, 2]), 4)
    np.testing.assert_allclose(w, [4 / 8, 4 / 4, 4 / 4, 0.0])


def test_one_class_weight_setting_for_every_family(tiny_ann, tmp_path):
    """train.class_weight reaches the torch loss and logistic regression alike."""
    from scgraphbench.models.registry import ModelContext, build_family

    def go(family, params, class_weight, out):
        return run(
            str(tiny_ann),
            None,
            family,
            params,
            {**TRAIN, "class_weight": class_weight},
            0,
            str(tmp_path / out),
        )

    plain = go("transformer", PARAMS, None, "plain")
    weighted = go("transformer", PARAMS, "balanced", "w")
    assert weighted["history"][0]["train_loss"] != plain["history"][0]["train_loss"]
    assert weighted["train"]["class_weight"] == "balanced"
    for setting in ("balanced", None):
        ctx = ModelContext("annotation", 3, ["a", "b", "c"], n_classes=2, class_weight=setting)
        model = build_family("logreg", ctx, {})
        assert model.pipeline[-1].class_weight == setting
    with pytest.raises(ScgbError, match="class_weight"):
        TrainConfig.from_dict({"class_weight": "inverse"})


def test_device_and_precision_rules():
    from scgraphbench.train.trainer import autocast_dtype, resolve_device

    assert autocast_dtype("bf16", torch.device("cpu")) is None  # CPU stays fp32
    assert autocast_dtype("auto", torch.device("cpu")) is None
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ScgbError, match="no GPU"):
            resolve_device("cuda")
