"""Outputs: a full disk, a read-only or forbidden folder become one ScgbError naming the
path, up front where possible; files get the user's umask; nothing half-written is left.

Each failure is simulated by monkeypatching (runs anywhere); where this process may mount a
small tmpfs (root on Linux, as in CI), the same failures are also produced for real.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import make_prepared_annotation
from scgraphbench import io
from scgraphbench.cli import main
from scgraphbench.errors import ScgbError

pytestmark = pytest.mark.usefixtures("one_thread")

TRAIN_ARGS = ["--family", "transformer", "--seed", "0",
              "--params", json.dumps({"d_model": 8, "n_layers": 1, "n_heads": 2}),
              "--train", json.dumps({"epochs": 2, "batch_size": 32, "device": "cpu"})]


@pytest.fixture
def small_fs(tmp_path):
    """mount(size, readonly) -> a fresh tmpfs folder; skips where mounting is not allowed."""
    mounted: list[Path] = []

    def mount(size: str = "64k", readonly: bool = False) -> Path:
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a small tmpfs needs root; the monkeypatched tests cover this")
        target = tmp_path / f"fs{len(mounted)}"
        target.mkdir()
        opts = f"size={size}" + (",ro" if readonly else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(target)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); the monkeypatched "
                        "tests cover this")
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", str(target)], check=False)


def refuse_writes_under(monkeypatch, folder: Path, code: int) -> None:
    """os.open / os.mkdir under ``folder`` fail with ``code`` (EROFS, EACCES), as on a
    read-only mount; works as root too, where chmod does not stop writes."""
    real_open, real_mkdir = os.open, os.mkdir
    folder = str(folder)

    def guarded(real):
        def call(path, *args, **kwargs):
            if str(path).startswith(folder):
                raise OSError(code, os.strerror(code), str(path))
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "open", guarded(real_open))
    monkeypatch.setattr(os, "mkdir", guarded(real_mkdir))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".part" in p.name)


# -- umask -----------------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"),
                         [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700), (0o002, 0o664, 0o775)])
def test_outputs_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    before = os.umask(umask)
    try:
        io.write_json(tmp_path / "a.json", {"x": 1})
        with io.atomic_path(tmp_path / "b.npz") as tmp:
            np.savez(tmp, x=np.arange(3))
        folder = io.temp_dir_beside(tmp_path / "extracted")
        with open(tmp_path / "by_open.txt", "w") as fh:  # what a plain open() gives
            fh.write("x")
    finally:
        os.umask(before)
    for name in ("a.json", "b.npz", "by_open.txt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == file_mode, name
    assert folder.stat().st_mode & 0o777 == dir_mode


def test_prepared_h5ad_is_readable_by_the_group_under_umask_022(tmp_path):
    """Row 'every file is mode 0600': the prepare stage as Snakemake runs it."""
    before = os.umask(0o022)
    try:
        rc = main(["prepare", "--dataset", "pbmc", "--spec",
                   json.dumps({"source": "scanpy_pbmc68k_reduced"}),
                   "--out", str(tmp_path / "p.h5ad")])
    finally:
        os.umask(before)
    assert rc == 0
    assert (tmp_path / "p.h5ad").stat().st_mode & 0o777 == 0o644


# -- disk full ---------------------------------------------------------------------------


def test_disk_full_in_atomic_path_names_the_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "metrics.json"
    with pytest.raises(ScgbError) as e, io.atomic_path(target) as tmp:
        tmp.write_bytes(b"x" * 5000)
        raise OSError(errno.ENOSPC, "No space left on device")
    msg = str(e.value)
    assert msg.startswith(f"{target}: no space left on the device writing this file")
    assert "it needs more than 5000 bytes = 4.9 KiB, its size when the device filled" in msg
    assert "nothing half-written was kept" in msg and "df -h" in msg
    assert not target.exists() and leftovers(tmp_path) == []


def test_disk_full_behind_another_error_is_still_named(tmp_path):
    """torch.save's zip writer raises RuntimeError over the OSError while closing."""
    target = tmp_path / "ckpt.pt"
    with pytest.raises(ScgbError, match="no space left on the device"), \
            io.atomic_path(target) as tmp:
        tmp.write_bytes(b"PK")
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos") \
                from None
    assert leftovers(tmp_path) == []


def test_other_errors_pass_through(tmp_path):
    with pytest.raises(OSError, match="Input/output error"), \
            io.atomic_path(tmp_path / "x.json"):
        raise OSError(errno.EIO, "Input/output error")
    with pytest.raises(ValueError), io.atomic_path(tmp_path / "y.json"):
        raise ValueError("a bug stays a bug")


def _fill_checkpoint(monkeypatch):
    import torch

    from scgraphbench.train import trainer

    def full_disk_save(obj, f, *args, **kwargs):
        f.write(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(trainer.torch, "save", full_disk_save)
    return torch


def test_disk_full_while_training_is_one_clear_error(tmp_path, capsys, monkeypatch):
    """Row 'disk full in a run folder': was torch's `RuntimeError: enforce fail at
    inline_container.cc:672`."""
    prepared = tmp_path / "tiny.h5ad"
    make_prepared_annotation(n_cells=80, n_genes=12).write_h5ad(prepared)
    _fill_checkpoint(monkeypatch)
    out = tmp_path / "run"
    rc = main(["train", "--prepared", str(prepared), "--out-dir", str(out), *TRAIN_ARGS])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"scgraphbench train: error: {out}/checkpoint.pt: no space left on the device" in err
    assert "nothing half-written was kept" in err
    assert leftovers(out) == []


def test_disk_full_for_real_while_training(tmp_path, capsys, small_fs):
    prepared = tmp_path / "tiny.h5ad"
    make_prepared_annotation(n_cells=80, n_genes=12).write_h5ad(prepared)
    out = small_fs("48k") / "run"
    rc = main(["train", "--prepared", str(prepared), "--out-dir", str(out), *TRAIN_ARGS])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "no space left on the device writing this file" in err
    assert "bytes free there" in err
    assert leftovers(out) == []


class Closes:
    """Raises ``error`` when garbage-collected, as h5py's objects do on a full disk."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __del__(self) -> None:
        raise self.error


def test_cleanup_reports_of_a_full_disk_are_muted_others_kept(tmp_path, monkeypatch):
    import sys

    reports: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda r: reports.append(str(r.exc_value)))
    with pytest.raises(ScgbError), io.atomic_path(tmp_path / "p.h5ad"):
        Closes(RuntimeError("Can't decrement id ref count (file write failed: errno = 28, "
                            "error message = 'No space left on device')"))
        Closes(ValueError("an unrelated bug"))
        raise OSError(errno.ENOSPC, "No space left on device")
    assert reports == ["an unrelated bug"]


def test_disk_full_for_real_writing_h5ad_and_figures(small_fs, capfd):
    import anndata as ad
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fs = small_fs("64k")
    adata = ad.AnnData(np.random.default_rng(0).random((300, 100), dtype=np.float32))
    with pytest.raises(ScgbError, match=f"{fs}/p.h5ad: no space left"), \
            io.atomic_path(fs / "p.h5ad") as tmp:
        adata.write_h5ad(tmp)
    fig = plt.figure(figsize=(12, 12))
    plt.imshow(np.random.default_rng(0).random((600, 600)))
    with pytest.raises(ScgbError, match=f"{fs}/f.png: no space left"), \
            io.atomic_path(fs / "f.png") as tmp:
        fig.savefig(tmp, dpi=150)
    plt.close(fig)
    assert sorted(p.name for p in fs.iterdir()) == []
    # h5py's 'Exception ignored in ObjectID.__dealloc__' tracebacks are not shown
    assert "Traceback" not in capfd.readouterr().err


def test_disk_full_during_download_keeps_the_partial_for_resume(tmp_path, monkeypatch):
    from scgraphbench.data import download as dl

    src = tmp_path / "src.bin"
    src.write_bytes(b"y" * 10_000)
    real_copy = shutil.copyfile

    def full_copy(a, b, *args, **kwargs):
        real_copy(a, b)
        raise OSError(errno.ENOSPC, "No space left on device", str(b))

    monkeypatch.setattr(dl.shutil, "copyfile", full_copy)
    with pytest.raises(ScgbError) as e:
        dl.download(str(src), tmp_path / "out" / "data.bin", size=10_000)
    assert "the file needs 10000 bytes = 9.8 KiB" in str(e.value)
    assert not (tmp_path / "out" / "data.bin").exists()


# -- read-only and forbidden folders -------------------------------------------------------


def test_read_only_output_folder_fails_before_the_work(tmp_path, capsys, monkeypatch):
    """Row 'read-only output folder': was a raw OSError [Errno 30] after all the work."""
    import scgraphbench.data.datasets as datasets

    calls: list[str] = []
    monkeypatch.setattr(datasets, "prepare_dataset", lambda *a, **k: calls.append("work"))
    results = tmp_path / "results"
    refuse_writes_under(monkeypatch, results, errno.EROFS)
    rc = main(["prepare", "--dataset", "pbmc", "--spec", "{}",
               "--out", str(results / "prepared" / "pbmc.h5ad")])
    err = capsys.readouterr().err
    assert rc == 2 and calls == []
    assert f"scgraphbench prepare: error: {results}/prepared: the file system is read-only: " \
           "nothing can be written here" in err
    assert "snakemake --directory" in err


def test_forbidden_output_folder_fails_before_the_work(tmp_path, capsys, monkeypatch):
    import scgraphbench.train.run as run

    calls: list[str] = []
    monkeypatch.setattr(run, "run", lambda *a, **k: calls.append("work"))
    out = tmp_path / "runs" / "r0"
    out.mkdir(parents=True)
    refuse_writes_under(monkeypatch, out, errno.EACCES)
    rc = main(["train", "--prepared", "x.h5ad", "--out-dir", str(out), *TRAIN_ARGS])
    err = capsys.readouterr().err
    assert rc == 2 and calls == []
    assert f"{out}: permission denied: you may not write here" in err
    assert f"ls -ld {out}" in err


def test_read_only_mount_for_real(tmp_path, capsys, small_fs):
    fs = small_fs(readonly=True)
    rc = main(["aggregate", "--metrics", str(tmp_path / "m.json"),
               "--out", str(fs / "tables" / "runs.csv")])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"{fs}/tables: the file system is read-only" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a chmod 0500 folder anyway; "
                    "test_forbidden_output_folder_fails_before_the_work covers it")
def test_chmod_read_only_folder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    try:
        with pytest.raises(ScgbError, match="permission denied"):
            io.check_writable(folder)
    finally:
        folder.chmod(0o700)


def test_storage_error_outside_io_writers_is_caught_by_the_cli(tmp_path, capsys, monkeypatch):
    import scgraphbench.report.aggregate as aggregate

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "log.txt"))

    monkeypatch.setattr(aggregate, "aggregate", full)
    rc = main(["aggregate", "--metrics", "m.json", "--out", str(tmp_path / "runs.csv")])
    assert rc == 2
    assert f"{tmp_path}/log.txt: no space left on the device" in capsys.readouterr().err


def test_writable_check_touches_outputs_only(tmp_path):
    """graph-table's --stats are inputs (a list); build-graph's --stats is an output."""
    from scgraphbench.cli import build_parser, check_outputs_writable

    args = build_parser().parse_args(["graph-table", "--stats", "a.json", "b.json",
                                      "--out", str(tmp_path / "tables" / "graphs.csv")])
    check_outputs_writable(args)
    assert (tmp_path / "tables").is_dir()
    args = build_parser().parse_args(["build-graph", "--prepared", "p.h5ad", "--variant", "v",
                                      "--out", str(tmp_path / "g" / "v.npz"),
                                      "--stats", str(tmp_path / "s" / "v.json")])
    check_outputs_writable(args)
    assert (tmp_path / "g").is_dir() and (tmp_path / "s").is_dir()
