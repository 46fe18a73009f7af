"""Which file goes where: every media file under a folder run's inputs mapped to its
place under OUTPUT_DIR, and what could not be read."""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ...errors import OutputCollisionError, SameFileError, SourceError
from ...io.atomic import refuse_same_file, same_file
from ...io.media import is_image_path, is_media_path, output_suffix

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One file of a folder run. ``key``: the output's path relative to OUTPUT_DIR (posix),
    the manifest's key. ``source``: the input's path relative to the input it came from
    (what the manifest records). ``overwrite``: replace an output the manifest knows of."""

    input: Path
    output: Path
    key: str
    source: str
    overwrite: bool = False

    @property
    def is_image(self) -> bool:
        return is_image_path(self.input)


@dataclass(frozen=True)
class LeftOut:
    """Something under a folder run's inputs that could not be read (a folder that cannot
    be listed, a broken link, a media name that is not a regular file), and why. The
    run lists each one and exits 20: files in it may be unredacted."""

    path: Path
    reason: str


def plan_jobs(inputs: Iterable[str | Path], output_dir: str | Path) -> tuple[list[Job], int]:
    """:func:`scan_inputs` without what it left out: (jobs, non-media files left out)."""
    jobs, ignored, _left_out = scan_inputs(inputs, output_dir)
    return jobs, ignored


def scan_inputs(inputs: Iterable[str | Path], output_dir: str | Path) -> tuple[list[Job], int, list[LeftOut]]:
    """Map every media file under ``inputs`` to its place under ``output_dir``.

    A folder's tree is mirrored directly under ``output_dir``; a file goes to
    ``output_dir/NAME``. A video in a container blurcam reads but does not write (.mpg,
    .3gp: see :mod:`blurcam.io.media`) is written as NAME.mp4, as ``blurcam blur`` does.
    Symbolic links to folders are followed, except one back to a
    folder it is inside (a loop: its files are in the run already). Hidden files and
    folders, non-media files (camera sidecars such as .THM thumbnails and .XML are not
    copied) and anything inside ``output_dir`` are left out. Returns (jobs sorted by
    key, non-media files left out, what could not be read). Raises SourceError for a
    missing input, SameFileError when OUTPUT_DIR is an input folder, and
    OutputCollisionError when two inputs would share an output name (compared
    case-insensitively: macOS and Windows folders cannot hold both).
    """
    output_dir = Path(output_dir).absolute()
    out_resolved = output_dir.resolve()
    jobs: list[Job] = []
    left_out: list[LeftOut] = []
    ignored = 0
    for given in inputs:
        root = Path(given)
        if not root.exists():
            raise SourceError(f"{root}: no such file or folder")
        if same_file(root, out_resolved):
            raise SameFileError(f"{output_dir}: the output folder is the input {root}; "
                                "write it somewhere else")
        if root.is_file():
            candidates = [(root, root.name)]
        else:
            candidates = list(_walk(root, root, out_resolved, left_out, ()))
        for path, rel in candidates:
            if not is_media_path(path):
                ignored += 1
                log.info("left out %s: not a video or image", path)
                continue
            key = str(PurePosixPath(rel).with_suffix(output_suffix(rel)))  # clip.mpg -> clip.mp4
            jobs.append(Job(path.absolute(), output_dir / key, key, rel))
    # clip.mpg beside clip.mp4: the one whose container changes keeps its whole name (clip.mpg.mp4)
    own_names = {job.key.casefold() for job in jobs if job.key == job.source}
    jobs = [job if job.key == job.source or job.key.casefold() not in own_names else
            Job(job.input, output_dir / f"{job.source}{output_suffix(job.source)}",
                f"{job.source}{output_suffix(job.source)}", job.source) for job in jobs]
    seen: dict[str, Job] = {}
    for job in jobs:
        other = seen.setdefault(job.key.casefold(), job)
        if other is not job:
            raise OutputCollisionError(f"{other.input} and {job.input} would both be written to {job.output}")
        refuse_same_file(job.input, job.output)
    return sorted(jobs, key=lambda j: j.key), ignored, left_out


def _walk(folder: Path, root: Path, out_resolved: Path, left_out: list[LeftOut],
          above: tuple[tuple[int, int], ...]):
    """Yield (path, path relative to ``root``) of the visible regular files under
    ``folder``, sorted; record in ``left_out`` what cannot be read. ``above``: the
    (device, inode) of the folders being walked, to recognise a link back to one."""
    try:
        st = folder.stat()
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        left_out.append(LeftOut(folder, f"folder cannot be read: {exc.strerror or exc}"))
        return
    above = (*above, (st.st_dev, st.st_ino))
    for entry in entries:
        if entry.name.startswith("."):
            log.info("left out %s: hidden", entry.path)
            continue
        path = Path(entry.path)
        try:
            is_dir, is_file = entry.is_dir(), entry.is_file()
        except OSError as exc:
            left_out.append(LeftOut(path, f"cannot be read: {exc.strerror or exc}"))
            continue
        if is_dir:
            target = path.resolve()
            if target == out_resolved:
                continue
            try:
                target_st = path.stat()
            except OSError as exc:
                left_out.append(LeftOut(path, f"folder cannot be read: {exc.strerror or exc}"))
                continue
            if (target_st.st_dev, target_st.st_ino) in above:
                log.info("%s: not followed: a link back to %s, whose files are in the run", path, target)
                continue
            yield from _walk(path, root, out_resolved, left_out, above)
        elif is_file:
            yield path, path.relative_to(root).as_posix()
        elif entry.is_symlink():
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            left_out.append(LeftOut(path, f"broken symbolic link (to {target})"))
        elif is_media_path(path):
            left_out.append(LeftOut(path, "not a regular file (a pipe, socket or device)"))
