"""Output files that are complete or absent: hidden partials beside the target, renamed
into place on success, locked while written so a later run can remove those a killed
run left; and the checks made before any work (exists, writable, not the input)."""
from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import shutil
import time
from pathlib import Path

from ..errors import DiskFullError, OutputExistsError, SameFileError, SinkError

try:  # POSIX: a partial output is locked by the process writing it
    import fcntl
except ImportError:  # Windows: stale partials are not cleaned up automatically
    fcntl = None

log = logging.getLogger(__name__)

_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
# Exactly the names partial_name gives, and nothing a user is likely to own: any stem
# (dots, spaces, even a newline: DOTALL), 8 lowercase hex digits, then the target's
# suffix if it has one (a dot and at least one more character, none of them a dot).
# \Z, not $: a name ending in a newline is not a partial. Match whole names only.
PARTIAL_RE = re.compile(r"^\..+\.[0-9a-f]{8}\.partial(\.[^./]+)?\Z", re.DOTALL)
STALE_AFTER_S = 5.0  # a partial younger than this may not be locked by its writer yet


def disk_error(exc: BaseException, where: str) -> Exception:
    code = getattr(exc, "errno", None)
    if code in _DISK_FULL:
        return DiskFullError(f"{where}: disk full (or file size limit reached) while writing")
    return SinkError(f"{where}: write failed: {exc}")


def partial_name(path: Path) -> Path:
    """The hidden name beside ``path`` that it has while it is written:
    ``.STEM.<8 hex>.partial.EXT`` (``.STEM.<8 hex>.partial`` without an extension). The
    extension is kept so that tools which go by it (FFmpeg's muxer choice) still can."""
    return path.with_name(f".{path.stem}.{secrets.token_hex(4)}.partial{path.suffix}")


def is_partial_name(name: str) -> bool:
    """True for a file name :func:`partial_name` can give (what stale-partial cleanup removes)."""
    return PARTIAL_RE.match(name) is not None


def create_partial(path: Path) -> tuple[Path, int | None]:
    """Create and lock the hidden temporary file for ``path`` (after removing stale ones
    in its folder). Returns the name and the descriptor that holds the lock."""
    remove_stale_partials(path.parent if str(path.parent) else Path("."))
    tmp = partial_name(path)
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as exc:
        raise disk_error(exc, str(path)) from None
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return tmp, fd


def unlock(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)  # releases the lock
        except OSError:
            pass


def remove_stale_partials(folder: Path) -> list[Path]:
    """Delete blurcam's hidden partial outputs in ``folder`` whose writer is gone (a
    run killed with SIGKILL or by a power cut): no process holds their lock. Partials
    of runs still going are locked and left alone. No-op where locks are unavailable."""
    if fcntl is None:
        return []
    removed = []
    try:
        names = [n for n in os.listdir(folder) if is_partial_name(n)]
    except OSError:
        return []
    for name in names:
        path = folder / name
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            if time.time() - os.fstat(fd).st_mtime < STALE_AFTER_S:
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # locked: its writer is alive
            continue
        finally:
            os.close(fd)
        try:
            os.unlink(path)
            removed.append(path)
            log.info("removed %s, left by an interrupted run", path)
        except OSError:
            pass
    return removed


def _umask() -> int:
    """The process's umask (POSIX has no call that reads it without setting it)."""
    try:
        with open("/proc/self/status") as f:  # Linux: read it without touching it
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # set and restore at once; the partial is 0600 either way
    os.umask(mask)
    return mask


def move_into_place(tmp: Path, path: Path, overwrite: bool) -> None:
    """Rename the finished ``tmp`` to ``path``; without ``overwrite`` never clobber a
    file that appeared meanwhile (OutputExistsError).

    The partial is 0600 while it is written; the finished file gets the mode any other
    tool would give it (0666 less the umask), so a colleague or a web server can read it."""
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        if overwrite:
            os.replace(tmp, path)
            return
        try:
            # A hard link fails if ``path`` appeared meanwhile: no clobbering in a race.
            os.link(tmp, path)
        except FileExistsError:
            raise
        except OSError:  # a filesystem without hard links (FAT, some network mounts)
            os.replace(tmp, path)
        else:
            os.unlink(tmp)
    except FileExistsError:
        raise OutputExistsError(f"{path}: already exists (use --overwrite)") from None
    except OSError as exc:
        raise disk_error(exc, str(path)) from None


def write_atomically(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write ``data`` to a locked partial beside ``path``, flush it to the disk, then
    move it into place: a crash at any point leaves the old file or the new one, never
    a torn one. DiskFullError or SinkError (naming ``path``) when it cannot."""
    _fill_atomically(path, lambda f: f.write(data), overwrite)


def copy_atomically(source: Path, path: Path, *, overwrite: bool) -> None:
    """Copy the file ``source`` to ``path`` as :func:`write_atomically` writes. OSError
    when ``source`` cannot be opened; DiskFullError or SinkError when ``path`` cannot be written."""
    with open(source, "rb") as src:
        _fill_atomically(path, lambda f: shutil.copyfileobj(src, f), overwrite)


def _fill_atomically(path: Path, fill, overwrite: bool) -> None:
    """``fill(binary file)`` writes the content into a locked partial, which is then
    fsynced and moved into place (see :func:`move_into_place` for ``overwrite``)."""
    tmp, lock = create_partial(path)
    try:
        with open(tmp, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        move_into_place(tmp, path, overwrite)
    except OSError as exc:
        raise disk_error(exc, str(path)) from None
    finally:
        tmp.unlink(missing_ok=True)
        unlock(lock)


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` name one file, by any spelling (a symlink, ``./``, a hard
    link); for a path that does not exist yet, whether both resolve to the same place."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return Path(a).resolve() == Path(b).resolve()


def refuse_same_file(input_path: str | Path, output_path: str | Path, what: str = "output",
                     whose: str = "input") -> None:
    """SameFileError if ``output_path`` names the file ``input_path`` is (a symlink,
    another spelling, a hard link): writing it would destroy the original. ``whose``
    names ``input_path`` in the message (``input``, or ``output`` for a report)."""
    if same_file(input_path, output_path):
        raise SameFileError(f"{output_path}: the {what} would replace the {whose} {input_path}; "
                            "write it somewhere else")


def check_output_path(path: Path, overwrite: bool) -> None:
    """Fail early, before any work, if ``path`` cannot be written."""
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: already exists (use --overwrite)")
    if path.is_dir():
        raise SinkError(f"{path}: is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise SinkError(f"{parent}: output folder does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SinkError(f"{parent}: output folder is not writable")
