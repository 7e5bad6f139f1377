"""Where dataset files live, and downloads of them that cannot go wrong (stdlib only).

* **Where**: ``load_data(path=DIR)`` reads the files in ``DIR``; otherwise in
  ``$UNIDL_DATA_DIR/<dataset>/``, or ``~/.unidl/datasets/<dataset>/`` when the variable is
  unset. Downloads are saved in that same directory.
* **From where**: ``load_data(origin=URL)`` fetches ``URL/<file>``; otherwise
  ``$UNIDL_DATASETS_MIRROR/<dataset>/<file>`` (a mirror is laid out like a data directory, so
  ``python -m http.server`` in a filled ``$UNIDL_DATA_DIR`` is one); otherwise the public copy.
* **Checked**: every download must match the SHA-256 pinned for its file (each dataset module
  has a ``SHA256`` table; ``load_data(sha256={file: hex})`` overrides entries). A mismatch
  raises :class:`ChecksumError` and nothing is kept.
* **Resumable**: bytes go to ``<file>.part``; an interrupted transfer is retried, and a later
  call continues, with an HTTP ``Range`` request from the end of that partial file. A server
  that ignores ``Range`` (answers 200) or cannot satisfy it (416) restarts the file cleanly.
* **Atomic**: the file gets its real name (``os.replace``) only once its hash matches, so a
  half-written file never sits under the real name; a lock file keeps two processes from
  writing the same ``.part`` at once.
* **Visible**: a progress bar on a terminal, one line per file otherwise, nothing with
  ``verbose=0``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
from dataclasses import dataclass, field

from unidl.errors import UnidlError

try:  # POSIX advisory locks; elsewhere downloads simply are not locked against each other
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

__all__ = [
    "ENV_DATA_DIR", "ENV_MIRROR", "DEFAULT_ROOT", "DatasetError", "DownloadError",
    "ChecksumError", "CorruptFileError", "DatasetNotFoundError", "Source", "data_root",
    "dataset_dir", "base_url", "find_file", "sha256_file", "fetch", "download_files",
]

ENV_DATA_DIR = "UNIDL_DATA_DIR"
ENV_MIRROR = "UNIDL_DATASETS_MIRROR"
DEFAULT_ROOT = os.path.join("~", ".unidl", "datasets")
_CHUNK = 1 << 16


class DatasetError(UnidlError):
    """Base class of the errors raised while finding, downloading or reading a dataset."""


class DownloadError(DatasetError, OSError):
    """A file could not be downloaded (no network, refused connection, HTTP error, a transfer
    that kept breaking off, a directory that cannot be written)."""


class ChecksumError(DatasetError, ValueError):
    """A downloaded file does not match its pinned SHA-256; it was deleted, not cached."""


class CorruptFileError(DatasetError, ValueError):
    """A local dataset file is truncated or corrupt (the message names it and says how)."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset's files are not on disk and could not be downloaded."""


@dataclass(frozen=True)
class Source:
    """Where a dataset's files come from.

    Attributes:
        name: sub-directory of the data root and of a mirror (``"mnist"``).
        title: name used in messages (``"MNIST"``).
        default_url: base URL of the public copy (ends with ``/``).
        sha256: file name -> pinned SHA-256 (the dataset module's ``SHA256`` table, read at
            download time, so patching the table changes what is accepted).
    """

    name: str
    title: str
    default_url: str
    sha256: dict = field(default_factory=dict)


def data_root() -> str:
    """``$UNIDL_DATA_DIR``, or ``~/.unidl/datasets`` when it is unset or empty."""
    return os.path.abspath(os.path.expanduser(os.environ.get(ENV_DATA_DIR) or DEFAULT_ROOT))


def dataset_dir(name: str, path=None) -> str:
    """The directory of dataset ``name``: ``path`` itself if given, else ``data_root()/name``."""
    if path is not None:
        return os.path.abspath(os.path.expanduser(os.fspath(path)))
    return os.path.join(data_root(), name)


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def base_url(source: Source, origin: str | None = None) -> str:
    """The base URL files are fetched from: ``origin``, else ``$UNIDL_DATASETS_MIRROR/<name>/``,
    else the public copy."""
    if origin:
        return _slash(origin)
    mirror = os.environ.get(ENV_MIRROR)
    if mirror:
        return _slash(mirror) + source.name + "/"
    return _slash(source.default_url)


def find_file(directory: str, names) -> str | None:
    """The first of ``names`` that is a file in ``directory``, or None."""
    for name in names:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate):
            return candidate
    return None


def sha256_file(path) -> str:
    """The SHA-256 of a file, as 64 lowercase hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _human(n: float | None) -> str:
    if n is None:
        return "? B"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""  # pragma: no cover


class _Progress:
    """A progress bar on a terminal, one line per file elsewhere, nothing at verbose=0."""

    def __init__(self, url, dest, start, total, verbose, stream):
        self.name, self.start, self.total = os.path.basename(dest), start, total
        self.stream = stream if stream is not None else sys.stderr
        self.on = bool(verbose)
        self.tty = self.on and bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = self.last = time.monotonic()
        if self.on and not self.tty:
            resumed = f", resuming at {_human(start)}" if start else ""
            self._write(f"Downloading {url} -> {dest} ({_human(total)}{resumed})\n")

    def _write(self, text):
        self.stream.write(text)
        self.stream.flush()

    def update(self, got, final=False):
        """Redraw the bar (at most ten times a second, and once at the end)."""
        now = time.monotonic()
        if not self.tty or (not final and now - self.last < 0.1):
            return
        self.last = now
        rate = (got - self.start) / max(now - self.t0, 1e-6)
        if self.total:
            frac = min(got / self.total, 1.0)
            bar = "#" * int(frac * 24)
            line = (f"{self.name[:30]:<30} {frac:4.0%} [{bar:<24}] {_human(got):>8} / "
                    f"{_human(self.total):<8} {_human(rate):>8}/s")
        else:
            line = f"{self.name[:30]:<30} {_human(got):>8} {_human(rate):>8}/s"
        self._write("\r" + line + ("\n" if final else ""))


class _Interrupted(Exception):
    """The connection broke off mid-file; the .part file holds what arrived."""


def _range_start(content_range: str | None) -> int | None:
    """The first byte of ``Content-Range: bytes A-B/T``, or None when it cannot be parsed."""
    try:
        unit, spec = content_range.split(" ", 1)
        return int(spec.split("-", 1)[0]) if unit.strip() == "bytes" else None
    except (AttributeError, ValueError):
        return None


def _open(url: str, have: int, timeout: float):
    """Open ``url`` asking for the bytes from ``have`` on; returns (response, first byte).

    The first byte is 0 whenever the server sends the whole file instead (no Range support,
    416, or a Content-Range that does not start at ``have``): the caller then starts over.
    """
    from http.client import HTTPException
    from urllib.error import HTTPError, URLError
    from urllib.request import Request, urlopen

    headers = {"User-Agent": "unidl-datasets", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as exc:
        exc.close()
        if exc.code == 416 and have:  # the partial file is not a prefix of this one
            return _open(url, 0, timeout)
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except URLError as exc:
        raise DownloadError(f"cannot reach {url}: {exc.reason}") from None
    except (HTTPException, OSError) as exc:
        raise DownloadError(f"cannot reach {url}: {exc!r}") from None
    if have and (getattr(resp, "status", None) or 200) == 206:
        if _range_start(resp.headers.get("Content-Range")) == have:
            return resp, have
        resp.close()
        return _open(url, 0, timeout)
    return resp, 0


def _copy(resp, out, got: int, progress: _Progress) -> int:
    """Stream the body of ``resp`` into ``out``; returns the byte count reached."""
    from http.client import HTTPException

    while True:
        try:
            chunk = resp.read(_CHUNK)
        except (HTTPException, OSError) as exc:
            progress.update(got, final=True)
            raise _Interrupted(f"{type(exc).__name__}: {exc}") from None
        if not chunk:
            return got
        out.write(chunk)
        got += len(chunk)
        progress.update(got)


def _transfer(url, part, *, timeout, verbose, stream) -> None:
    """One attempt: resume ``part`` from its end (or restart it) and read to the end."""
    have = os.path.getsize(part) if os.path.isfile(part) else 0
    resp, start = _open(url, have, timeout)
    with resp:
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        progress = _Progress(url, part[: -len(".part")], start, total, verbose, stream)
        with open(part, "ab" if start else "wb") as out:
            try:
                got = _copy(resp, out, start, progress)
            finally:
                out.flush()
                os.fsync(out.fileno())
    progress.update(got, final=True)
    if total is not None and got != total:
        raise _Interrupted(f"{got:,} of {total:,} bytes received")


def _download(url, part, *, timeout, verbose, stream, retries) -> None:
    """Transfer with up to ``retries`` automatic resumptions after a broken connection."""
    for attempt in range(retries + 1):
        try:
            return _transfer(url, part, timeout=timeout, verbose=verbose, stream=stream)
        except _Interrupted as exc:
            reason = exc
            if verbose and attempt < retries:
                print(f"{url}: transfer interrupted ({exc}); resuming", file=stream or sys.stderr)
    kept = os.path.getsize(part) if os.path.isfile(part) else 0
    times = "once" if retries == 0 else f"{retries + 1} times"
    raise DownloadError(f"{url}: the transfer broke off {times} (last: {reason}); "
                        f"the {kept:,} bytes received are kept in {part} and the next call "
                        "resumes from there")


def _fsync_dir(directory: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _verify_and_move(part: str, dest: str, expected: str, url: str) -> None:
    """Give ``part`` its real name if its SHA-256 is ``expected``; otherwise delete it."""
    got = sha256_file(part)
    if got != expected.lower():
        size = os.path.getsize(part)
        os.remove(part)
        raise ChecksumError(
            f"{os.path.basename(dest)}: the download from {url} is corrupt: expected SHA-256 "
            f"{expected.lower()}, got {got} ({size:,} bytes). It was deleted; nothing was saved "
            f"as {dest}. Try again; if it fails again, the server does not serve the published "
            "file (a mirror must serve it byte for byte).")
    os.replace(part, dest)
    _fsync_dir(os.path.dirname(dest))


def _acquire(path: str) -> int:
    """An fd holding an exclusive flock on ``path``, which still names the locked file."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DownloadError(f"cannot write to {os.path.dirname(path)}: "
                                f"{exc.strerror or exc}") from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        os.close(fd)  # the holder before us removed it: lock the new one


@contextlib.contextmanager
def _locked(path: str):
    """Hold ``path`` as a lock file (removed afterwards) so two processes never write the same
    ``.part`` file at once."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = _acquire(path)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)
        os.close(fd)


def fetch(url: str, dest, sha256: str, *, verbose=1, timeout: float = 30.0, retries: int = 2,
          stream=None) -> str:
    """Download ``url`` to ``dest`` unless ``dest`` exists; returns ``dest``.

    Resumes from ``dest + ".part"`` when present, retries a broken transfer ``retries`` times
    (each continuing where it stopped), checks the SHA-256 and only then moves the file to
    ``dest``. Raises :class:`DownloadError` (network, HTTP, directory not writable) or
    :class:`ChecksumError` (wrong hash; the file is deleted).
    """
    dest = os.path.abspath(os.fspath(dest))
    if os.path.isfile(dest):
        return dest
    if not sha256:
        raise ValueError(f"{os.path.basename(dest)}: no SHA-256 to check a download against")
    directory = os.path.dirname(dest)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create {directory}: {exc.strerror or exc}") from None
    with _locked(dest + ".lock"):
        if os.path.isfile(dest):  # another process finished it while we waited
            return dest
        part = dest + ".part"
        try:
            _download(url, part, timeout=timeout, verbose=verbose, stream=stream,
                      retries=retries)
        except OSError as exc:
            if isinstance(exc, DownloadError):
                raise
            raise DownloadError(f"cannot write {part}: {exc.strerror or exc}") from None
        _verify_and_move(part, dest, sha256, url)
    return dest


def _not_found(source: Source, directory: str, wanted: str, url: str, cause: str,
               hint: str = "") -> DatasetNotFoundError:
    """The error for files that are neither on disk nor downloadable: it names the files, the
    directory, and the arguments and variables that choose the directory and the mirror."""
    env_dir = os.environ.get(ENV_DATA_DIR)
    root = f"now {env_dir!r}" if env_dir else f"unset: {os.path.join(DEFAULT_ROOT, source.name)}"
    mirror = os.environ.get(ENV_MIRROR)
    mirror_now = f"now {mirror!r}" if mirror else "unset: the public copy"
    return DatasetNotFoundError(
        f"{source.title}: {wanted} not found in {directory} and could not be downloaded: "
        f"{cause}.\nPut the files in {directory}, or choose where they are looked for with "
        f"load_data(path=DIR) or ${ENV_DATA_DIR} (files in ${ENV_DATA_DIR}/{source.name}/; "
        f"{root}), and where they are downloaded from with load_data(origin=URL) or "
        f"${ENV_MIRROR} (files at MIRROR/{source.name}/FILE; {mirror_now}; tried {url})."
        + (f"\n{hint}" if hint else ""))


def download_files(source: Source, directory: str, files, *, wanted: str, origin=None,
                   sha256=None, verbose=1, download=True, hint: str = "") -> list[str]:
    """Download each of ``files`` (names on the mirror) into ``directory``; their paths.

    ``wanted`` describes what is missing for the error message (e.g. including the
    uncompressed names that would do as well). Raises :class:`DatasetNotFoundError` when a
    file cannot be fetched and :class:`ChecksumError` when one does not match its hash.
    """
    url = base_url(source, origin)
    hashes = {**source.sha256, **(sha256 or {})}
    if not download:
        raise _not_found(source, directory, wanted, url, "downloads are off (download=False)",
                         hint)
    paths = []
    for name in files:
        if not hashes.get(name):
            raise ValueError(f"{source.title}: no SHA-256 known for {name}; pass "
                             f"load_data(sha256={{{name!r}: HEX}})")
        try:
            paths.append(fetch(url + name, os.path.join(directory, name), hashes[name],
                               verbose=verbose))
        except DownloadError as exc:
            raise _not_found(source, directory, wanted, url, str(exc), hint) from exc
    return paths
