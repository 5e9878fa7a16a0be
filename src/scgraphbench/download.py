"""Robust file downloads: streamed, checksummed, resumable, atomic. Shared by every stage
that fetches a file (datasets, regulatory databases, backbone checkpoints).

``download(url, dest)`` streams into ``<dest>.part`` beside the destination, resumes a kept
``.part`` with an HTTP Range request, retries transient failures (5xx, 408/429, timeouts,
dropped connections) with exponential backoff, verifies size and sha256, and only then
renames the file onto ``dest``. After any failure the destination folder holds either
nothing new or a ``<dest>.part`` that the next call resumes; a file that fails its checksum
is deleted. ``file:`` URLs and plain local paths are copied the same way (offline overrides).

Hand-written because no maintained library combines resume, checksum and atomic rename
(pooch resumes nothing and re-downloads from scratch; requests/urllib3 retries cover only the
connection, not a body cut off half way).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import requests

from scgraphbench.errors import ScgbError
from scgraphbench.io import make_dirs, storage_error

log = logging.getLogger(__name__)

# Small enough that a connection cut mid-body loses at most this much of what arrived
# (a chunk that is still being filled when the read fails is never handed to us).
CHUNK = 1 << 16
# Statuses worth another try: the server or a proxy is overloaded, not the request wrong.
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
PART_SUFFIX = ".part"


class _Transient(Exception):
    """A failure that a later attempt may not see (kept internal; never escapes download)."""


def part_path(dest: str | os.PathLike) -> Path:
    """Where the partial download of ``dest`` is kept between attempts."""
    dest = Path(dest)
    return dest.with_name(dest.name + PART_SUFFIX)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks (any size)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def check_sha256(
    path: str | os.PathLike, expected: str | None, *, source: str, field: str, fix: str
) -> str:
    """The file's sha256; raises ScgbError naming ``source`` (a URL or a path), the expected
    and the actual value when ``expected`` is given and differs."""
    actual = sha256_file(path)
    if expected and actual != expected.lower():
        raise ScgbError(
            f"checksum mismatch for {source}: expected sha256 {expected.lower()}, got {actual}",
            path=source,
            field=field,
            fix=fix,
        )
    return actual


def _local_source(url: str) -> Path | None:
    """The local file behind a ``file:`` URL or a plain path; None for network URLs."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "":
        return Path(url).expanduser()
    return None


def _verify(tmp: Path, url: str, sha256: str | None, size: int | None) -> None:
    """Size and checksum of a finished temp file; deletes it and raises on a mismatch."""
    actual_size = tmp.stat().st_size
    if size is not None and actual_size != size:
        tmp.unlink(missing_ok=True)
        raise ScgbError(
            f"download of {url} has {actual_size} bytes, expected {size}",
            path=url,
            field="size",
            fix="retry; if it persists the remote file changed: check the source "
            "and update the registry's size and sha256",
        )
    if sha256 is None:
        log.info("%s: no sha256 pinned; actual sha256 is %s", url, sha256_file(tmp))
        return
    try:
        check_sha256(
            tmp,
            sha256,
            source=url,
            field="sha256",
            fix="retry; if it persists the remote file changed: check "
            "the source and update the registry's sha256 (or give a local copy via 'path')",
        )
    except ScgbError:
        tmp.unlink(missing_ok=True)
        raise


def _already_there(dest: Path, sha256: str | None, size: int | None) -> bool:
    if not dest.is_file():
        return False
    if size is not None and dest.stat().st_size != size:
        return False
    return sha256 is None or sha256_file(dest) == sha256.lower()


def _copy_local(src: Path, dest: Path, url: str, sha256: str | None, size: int | None) -> Path:
    if not src.is_file():
        raise ScgbError(
            f"local file {src} does not exist",
            path=str(src),
            field="path",
            fix="point 'path' at an existing file, or remove it to download",
        )
    tmp = part_path(dest)
    try:
        shutil.copyfile(src, tmp)
        _verify(tmp, url, sha256, size)
        os.replace(tmp, dest)
    except OSError as e:
        full = storage_error(e, dest, needed=src.stat().st_size,
                             note="nothing half-written was kept")
        if full is None:
            raise
        raise full from e
    finally:
        tmp.unlink(missing_ok=True)  # a local copy is cheap to redo: never keep a partial
    return dest


def _attempt(session: requests.Session, url: str, tmp: Path, timeout: float) -> bool:
    """One HTTP attempt, appending to ``tmp`` when the server honours Range.

    Returns whether it resumed. Raises ``_Transient`` for failures worth retrying and
    ``ScgbError`` for the rest.
    """
    have = tmp.stat().st_size if tmp.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with session.get(
            url, stream=True, timeout=timeout, headers=headers, allow_redirects=True
        ) as resp:
            if resp.status_code == 416 and have:
                # Our partial is as long as (or longer than) the remote file: start again.
                tmp.unlink(missing_ok=True)
                raise _Transient(f"HTTP 416 resuming at byte {have}; restarting from scratch")
            if resp.status_code in RETRY_STATUS:
                raise _Transient(f"HTTP {resp.status_code} {resp.reason}")
            if resp.status_code >= 400:
                raise ScgbError(
                    f"HTTP {resp.status_code} {resp.reason} for {url}",
                    path=url,
                    field="url",
                    fix="check the URL, or download the file by hand and set the dataset's "
                    "'path' to it",
                )
            resumed = resp.status_code == 206 and have > 0
            if resumed:
                start = resp.headers.get("Content-Range", "").removeprefix("bytes ").split("-")[0]
                if start != str(have):
                    tmp.unlink(missing_ok=True)
                    raise _Transient(f"server resumed at {start!r}, not byte {have}; restarting")
            with open(tmp, "ab" if resumed else "wb") as fh:
                for chunk in resp.iter_content(CHUNK):
                    fh.write(chunk)
            return resumed
    except (
        requests.Timeout,
        requests.ConnectionError,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
    ) as e:
        raise _Transient(f"{type(e).__name__}: {e}") from e


def download(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    retries: int = 4,
    timeout: float = 60.0,
    backoff: float = 0.5,
) -> Path:
    """Fetch ``url`` to ``dest`` and return ``dest``.

    - ``sha256`` / ``size``: verified before ``dest`` appears; a mismatch deletes the temp file
      and raises ``ScgbError`` naming the URL, the expected and the actual value. With no
      ``sha256`` the actual one is logged so that it can be pinned.
    - An existing ``dest`` that passes the checks is kept without touching the network.
    - ``retries``: further attempts after the first on 5xx/408/429, timeouts and dropped
      connections, sleeping ``backoff * 2**k`` seconds; 4xx such as 404 fail at once.
    - A body cut off mid-way leaves ``<dest>.part``; the next attempt (or the next call)
      resumes it with ``Range: bytes=<have>-``. A server that ignores Range restarts it.
    - ``url`` may be ``file:///abs/path`` or a local path (copied, same checks).
    """
    dest = Path(dest)
    make_dirs(dest.parent)
    if _already_there(dest, sha256, size):
        log.info("%s already present and verified", dest)
        return dest
    local = _local_source(url)
    if local is not None:
        return _copy_local(local, dest, url, sha256, size)

    tmp = part_path(dest)
    errors: list[str] = []
    restarted_after_mismatch = False
    with requests.Session() as session:
        attempt = 0
        while True:
            try:
                resumed = _attempt(session, url, tmp, timeout)
            except _Transient as e:
                errors.append(str(e))
                if attempt >= retries:
                    kept = tmp.exists() and tmp.stat().st_size > 0
                    if tmp.exists() and not kept:
                        tmp.unlink()
                    raise ScgbError(
                        f"download of {url} failed after {attempt + 1} attempts: {errors[-1]}",
                        path=url,
                        field="url",
                        fix=("rerun to resume from " + str(tmp))
                        if kept
                        else "check the network or download the file by hand and set 'path'",
                    ) from None
                wait = backoff * 2**attempt
                log.warning("%s: %s; retry %d/%d in %.1fs", url, e, attempt + 1, retries, wait)
                time.sleep(wait)
                attempt += 1
                continue
            except BaseException as e:
                # Non-retryable (404, KeyboardInterrupt): an empty temp is not worth keeping.
                have = tmp.stat().st_size if tmp.exists() else 0
                if tmp.exists() and have == 0:
                    tmp.unlink()
                full = isinstance(e, OSError) and storage_error(
                    e, dest, written=have, needed=size,
                    note=f"the partial download {tmp} is kept and the next run resumes it"
                    if have else None,
                )
                if full:
                    raise full from e
                raise
            try:
                _verify(tmp, url, sha256, size)
            except ScgbError:
                # A stale partial from another version of the file can poison a resume:
                # one clean download from byte 0 settles whether the remote file changed.
                if resumed and not restarted_after_mismatch:
                    restarted_after_mismatch = True
                    log.warning("%s: checksum failed after resuming; downloading afresh", url)
                    continue
                raise
            os.replace(tmp, dest)
            log.info("downloaded %s -> %s (%d bytes)", url, dest, dest.stat().st_size)
            return dest
