"""File output: atomic writes with the user's umask, and storage failures as ScgbError.

Every writer goes to a temporary sibling, then renames, so nothing half-written is left.
Temporary files and folders are created as ``open()`` and ``mkdir`` create them (mode
0666/0777 less the umask), so on a shared cluster colleagues can read ``results/`` when the
umask allows it. A full disk, a read-only file system or a denied permission becomes one
:class:`ScgbError` naming the path, instead of a traceback from the library that was writing.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scgraphbench.errors import ScgbError

# errno -> what it means for the user; anything else is a bug and stays a traceback.
STORAGE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
}


def _human(n: int) -> str:
    """Bytes, with a binary-prefixed size beside them from 1 KiB on."""
    size, unit = float(n), "bytes"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{n} bytes" if unit == "bytes" else f"{n} bytes = {size:.1f} {unit}"


def _free_bytes(path: Path) -> int | None:
    for p in (path, *path.parents):
        if p.exists():
            with contextlib.suppress(OSError):
                return shutil.disk_usage(p).free
            return None
    return None


def storage_error(
    exc: OSError, path: str | os.PathLike | None, *, written: int | None = None,
    needed: int | None = None, note: str | None = None,
) -> ScgbError | None:
    """The user-facing error for a failed write to ``path``, or None when ``exc`` is not a
    storage failure (full, quota, read-only, permission).

    ``written``: bytes already written when the device filled (a lower bound of what the
    file needs); ``needed``: the file's full size, when the caller knows it; ``note``: what
    was left behind, appended to the message.
    """
    what = STORAGE_ERRNOS.get(exc.errno)
    if what is None:
        return None
    target = Path(path if path is not None else exc.filename or ".")
    tail = f"; {note}" if note else ""
    folder = target if target.is_dir() else target.parent
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        free = _free_bytes(folder)
        facts = []
        if needed is not None:
            facts.append(f"the file needs {_human(needed)}")
        elif written:
            facts.append(f"it needs more than {_human(written)}, its size when the device "
                         "filled")
        if free is not None:
            facts.append(f"{_human(free)} free there")
        detail = f" ({'; '.join(facts)})" if facts else ""
        return ScgbError(
            f"{what} writing {'here' if folder == target else 'this file'}{detail}{tail}",
            path=str(target),
            fix=f"free space on the file system holding {folder} (df -h "
            f"{folder}), or write the results elsewhere, then run again",
        )
    if exc.errno == errno.EROFS:
        return ScgbError(
            f"{what}: nothing can be written here{tail}",
            path=str(target),
            fix="run from a writable folder (snakemake --directory DIR), or give an output "
            "path on a writable file system",
        )
    return ScgbError(
        f"{what}: you may not write here{tail}",
        path=str(target),
        fix=f"make {folder} writable for you (ls -ld {folder}), or give an "
        "output path you own",
    )


def storage_cause(exc: BaseException) -> OSError | None:
    """The storage OSError behind ``exc``, if any: libraries often let a full disk surface
    as another error while cleaning up (torch.save's zip writer raises RuntimeError from its
    ``__exit__`` over the OSError, h5py wraps it)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError) and e.errno in STORAGE_ERRNOS:
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _is_storage_report(exc: BaseException | None) -> bool:
    """An exception caused by a full or read-only disk, also as h5py words it in a
    RuntimeError ("... errno = 28, error message = 'No space left on device' ...")."""
    if exc is None:
        return False
    return storage_cause(exc) is not None or any(
        f"errno = {code}," in str(exc) for code in STORAGE_ERRNOS
    )


@contextlib.contextmanager
def _muted_storage_reports() -> Iterator[None]:
    """Drop the 'Exception ignored' tracebacks that libraries print for a failing disk.

    h5py closes its objects when they are garbage-collected; on a full disk each close fails
    again and prints a traceback (dozens of them) before the one error that matters. Other
    reports still reach the original hooks.
    """
    import sys

    unraisable, excepthook = sys.unraisablehook, sys.excepthook

    def filtered_unraisable(report: Any) -> None:
        if not _is_storage_report(report.exc_value):
            unraisable(report)

    def filtered_excepthook(kind: Any, value: BaseException | None, tb: Any) -> None:
        if not _is_storage_report(value):
            excepthook(kind, value, tb)

    sys.unraisablehook, sys.excepthook = filtered_unraisable, filtered_excepthook
    try:
        yield
    finally:
        sys.unraisablehook, sys.excepthook = unraisable, excepthook


def _release(exc: BaseException) -> None:
    """Free what the failed writer's frames still hold, now, while reports are muted."""
    import gc
    import traceback

    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if e.__traceback__ is not None:
            traceback.clear_frames(e.__traceback__)
        e = e.__cause__ or e.__context__
    gc.collect()


def _raise_storage(exc: OSError, path: Path, **facts: Any) -> None:
    err = storage_error(exc, path, **facts)
    if err is not None:
        raise err from exc


def make_dirs(folder: str | os.PathLike) -> Path:
    """``mkdir -p`` whose storage failures are ScgbErrors naming the folder."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _raise_storage(e, Path(e.filename or folder))
        raise
    return folder


def _new_temp(parent: Path, prefix: str, suffix: str, *, folder: bool = False) -> Path:
    """A fresh, exclusively created file (or folder) in ``parent``, with the umask's mode."""
    for _ in range(100):
        p = parent / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            if folder:
                os.mkdir(p, 0o777)
            else:
                os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return p
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(parent))


def temp_dir_beside(dest: str | os.PathLike) -> Path:
    """A new temporary folder next to ``dest`` (to be renamed onto it), umask mode."""
    dest = Path(dest)
    make_dirs(dest.parent)
    try:
        return _new_temp(dest.parent, f".{dest.name}.", ".part", folder=True)
    except OSError as e:
        _raise_storage(e, dest)
        raise


def check_writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and prove a file can be made in it, before any work.

    Raises ScgbError for a read-only file system or a denied permission, so that a stage
    fails in its first second rather than after hours of work.
    """
    folder = make_dirs(folder)
    try:
        _new_temp(folder, ".scgb-write-check.", ".tmp").unlink()
    except OSError as e:
        _raise_storage(e, folder)
        raise
    return folder


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, suffix: str | None = None, size: int | None = None
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary name keeps the final suffix so that libraries which infer the
    format from the extension (h5ad, npz, png) keep working. The file is created with the
    umask's mode, as ``open()`` would. A full disk, a read-only file system or a denied
    permission inside the block becomes an ScgbError naming ``path`` (``size``, when known,
    is reported as the bytes needed); the temporary file is removed either way.
    """
    path = Path(path)
    make_dirs(path.parent)
    suffix = suffix if suffix is not None else "".join(path.suffixes) or ".tmp"
    try:
        tmp_path = _new_temp(path.parent, f".{path.stem}.", f".part{suffix}")
    except OSError as e:
        _raise_storage(e, path, needed=size)
        raise
    try:
        with _muted_storage_reports():
            try:
                yield tmp_path
                os.replace(tmp_path, path)
            except Exception as e:
                if storage_cause(e) is not None:
                    _release(e)
                raise
    except Exception as e:
        cause = storage_cause(e)
        if cause is not None:
            written = tmp_path.stat().st_size if tmp_path.exists() else None
            _raise_storage(cause, path, written=written, needed=size,
                           note="nothing half-written was kept")
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_table(df: Any, path: str | os.PathLike, markdown: str | None = None) -> None:
    """A DataFrame as CSV (and its Markdown beside it, ``.md``), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    if markdown is not None:
        write_text(path.with_suffix(".md"), markdown)
