"""Fetch a registry dataset: download its archive, check it, extract the files it needs.

Layout under ``root`` (``resources/datasets`` in the workflow)::

    _archives/<archive name>          the download, kept so a re-extraction needs no network
    <dataset>/<file or folder>        the extracted members the preparation reads
    <dataset>/manifest.json           role -> path, written last (the download rule's output)

Archives shared by several datasets (scGPT's figshare zip) are downloaded once; a lock file
beside the archive keeps two parallel jobs from downloading it at the same time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

from scgraphbench.data.registry import Archive, DatasetInfo, Member, get_dataset
from scgraphbench.download import check_sha256, download, sha256_file
from scgraphbench.errors import ScgbError
from scgraphbench.io import atomic_path, read_json, temp_dir_beside, write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (a no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: Snakemake runs one download per archive anyway
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def check_archive(path: Path, archive: Archive, url: str) -> None:
    """The file must open as its format; an HTML page (a bot challenge) is named as such."""
    ok = (
        zipfile.is_zipfile(path)
        if archive.kind == "zip"
        else tarfile.is_tarfile(path)
        if archive.kind == "tar.gz"
        else True
    )
    if ok:
        return
    with open(path, "rb") as fh:
        head = fh.read(512).lstrip().lower()
    looks_html = head.startswith(b"<!doctype html") or head.startswith(b"<html")
    raise ScgbError(
        f"{path} is not a {archive.kind} archive"
        + (
            " but an HTML page (the server may have answered with a login or bot-check page)"
            if looks_html
            else ""
        ),
        path=url,
        field="url",
        fix=f"download {url} in a browser and set the dataset's 'path' to the file",
    )


def _member_names(names: list[str], basename: str) -> list[str]:
    hits = [n for n in names if PurePosixPath(n).name == basename and not n.startswith("__MACOSX/")]
    return sorted(hits, key=lambda n: (n.count("/"), n))


def _copy_stream(src: IO[bytes], dest: Path) -> None:
    """Stream to a temp sibling, then rename: a failed extraction leaves nothing behind."""
    with atomic_path(dest, suffix=".part") as tmp, open(tmp, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)


def _find_in_zip(zf: zipfile.ZipFile, basename: str, dest: Path, hint: str, depth: int = 0) -> bool:
    """Extract the member named ``basename`` (searched in nested zips too) to ``dest``."""
    names = zf.namelist()
    hits = _member_names(names, basename)
    if hits:
        if len(hits) > 1:
            log.warning("%d members named %s; using %s", len(hits), basename, hits[0])
        with zf.open(hits[0]) as src:
            _copy_stream(src, dest)
        return True
    if depth >= 3:
        return False
    nested = [n for n in names if n.lower().endswith(".zip")]
    nested.sort(key=lambda n: (hint.lower() not in n.lower(), n))
    for name in nested:
        # a nested zip is read through a temp file: ZipFile needs cheap seeks
        with tempfile.TemporaryDirectory(dir=dest.parent) as tmpdir:
            inner = Path(tmpdir) / "inner.zip"
            with zf.open(name) as src:
                _copy_stream(src, inner)
            if not zipfile.is_zipfile(inner):
                continue
            with zipfile.ZipFile(inner) as izf:
                if _find_in_zip(izf, basename, dest, hint, depth + 1):
                    return True
    return False


def _extract_tar_dir(path: Path, prefix: str, dest: Path) -> None:
    """Extract the members under ``prefix`` into ``dest`` (atomic: temp folder, then rename)."""
    tmp = temp_dir_beside(dest)
    try:
        with tarfile.open(path, "r:*") as tf:
            members = [
                m for m in tf.getmembers() if m.isfile() and m.name.lstrip("./").startswith(prefix)
            ]
            if not members:
                raise ScgbError(
                    f"no files under '{prefix}' in {path}",
                    path=str(path),
                    field="archive",
                    fix="check the archive is the one registered",
                )
            for m in members:
                rel = m.name.lstrip("./")[len(prefix) :].lstrip("/")
                src = tf.extractfile(m)
                assert src is not None  # m.isfile()
                with src:
                    _copy_stream(src, tmp / rel)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def extract_member(archive_path: Path, archive: Archive, member: Member, dest: Path) -> Path:
    if archive.kind == "file":
        return archive_path
    dest.parent.mkdir(parents=True, exist_ok=True)
    if archive.kind == "tar.gz":
        _extract_tar_dir(archive_path, member.member, dest)
        return dest
    with zipfile.ZipFile(archive_path) as zf:
        if member.search:
            found = _find_in_zip(zf, member.member, dest, hint=member.hint or dest.parent.name)
        else:
            found = member.member in zf.namelist()
            if found:
                with zf.open(member.member) as src:
                    _copy_stream(src, dest)
    if not found:
        raise ScgbError(
            f"'{member.member}' not found in {archive_path}",
            path=str(archive_path),
            field="archive",
            fix="check the archive is the one registered",
        )
    return dest


def _local_target(info: DatasetInfo, member: Member, root: Path) -> Path:
    name = member.local_name or PurePosixPath(member.member.rstrip("/")).name
    return root / info.name / name


def fetch_dataset(
    name: str,
    root: str | Path = "resources/datasets",
    *,
    url: str | None = None,
    sha256: str | None = None,
    archive_path: str | Path | None = None,
    retries: int = 4,
    timeout: float = 60.0,
    backoff: float = 0.5,
    manifest_name: str | None = None,
) -> dict[str, Path]:
    """Download (or take ``archive_path``), check and extract dataset ``name``; role -> path.

    ``url``/``sha256`` override the registry's (every registered dataset has one archive).
    ``archive_path`` is a local copy of the archive: no network, used in place.
    Writes ``<root>/<manifest_name or name>/manifest.json`` last (the config may call the
    dataset something else) and returns the same mapping.
    """
    info = get_dataset(name)
    root = Path(root)
    (archive,) = {m.archive.name: m.archive for m in info.files}.values()
    src_url = url or archive.url
    want_sha = sha256 or archive.sha256
    if archive_path is not None:
        local = Path(archive_path)
        if not local.is_file():
            raise ScgbError(
                f"{local} does not exist",
                path=str(local),
                field="path",
                fix="point 'path' at the downloaded archive",
            )
        actual = check_sha256(
            local,
            want_sha,
            source=str(local),
            field="sha256",
            fix="use the registered archive or drop the sha256 override",
        )
    else:
        local = root / "_archives" / archive.name
        with _locked(local.with_name(f".{archive.name}.lock")):
            download(
                src_url,
                local,
                sha256=want_sha,
                size=None if url else archive.size,
                retries=retries,
                timeout=timeout,
                backoff=backoff,
            )
            actual = sha256_file(local)
    try:
        check_archive(local, archive, src_url)
    except ScgbError:
        if archive_path is None:  # our own download is useless: the next run fetches again
            local.unlink(missing_ok=True)
        raise
    with _locked(local.with_name(f".{archive.name}.lock")):
        files = {
            m.role: extract_member(local, archive, m, _local_target(info, m, root))
            for m in info.files
        }
    manifest: dict[str, Any] = {
        "dataset": name,
        "files": {role: str(p) for role, p in files.items()},
        "archive": {
            "name": archive.name,
            "url": src_url,
            "path": str(local),
            "sha256": actual,
            "pinned_sha256": want_sha,
            "unpinned_reason": None if want_sha else archive.unpinned,
        },
    }
    write_json(root / (manifest_name or name) / MANIFEST, manifest)
    log.info("fetched %s: %s (archive sha256 %s)", name, manifest["files"], actual)
    return files


def read_manifest(path: str | Path) -> dict[str, Path]:
    path = Path(path)
    if not path.is_file():
        raise ScgbError(
            f"manifest {path} does not exist",
            path=str(path),
            field="inputs",
            fix="run `scgraphbench download` for this dataset first",
        )
    return {role: Path(p) for role, p in read_json(path)["files"].items()}
