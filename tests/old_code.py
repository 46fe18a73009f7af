"""An earlier commit's version of a blurcam module, loaded beside today's, for tests that
compare the two frame by frame (a rewrite that must give the same output)."""
from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import blurcam

ROOT = Path(__file__).parent.parent


@functools.cache
def module_at(commit: str, module: str):
    """``blurcam.<module>`` (e.g. "track") as it was at ``commit``, as a module named
    ``blurcam._<module>_at_<commit>`` whose relative imports are today's blurcam.
    Skips the test when the checkout has no such history (a source archive)."""
    try:
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:blurcam/{module}.py"],
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"git history with {commit} is not available")
    name = f"blurcam._{module}_at_{commit}"
    path = Path(blurcam.__file__).with_name(f"_{module}_at_{commit}.py")  # for tracebacks only
    spec = importlib.util.spec_from_loader(name, loader=None)
    loaded = importlib.util.module_from_spec(spec)
    loaded.__package__ = "blurcam"
    loaded.__file__ = str(path)
    sys.modules[name] = loaded
    exec(compile(source, str(path), "exec"), loaded.__dict__)
    return loaded


# TrackUpdate's columns as the trackers before 85f9e2a's successor named them (flat
# attributes) -> where today's TrackUpdate keeps them (its Births and Gaps records).
TRACK_UPDATE_NAMES = {"births": ("born", "faces"), "births_age": ("born", "age"),
                      "births_now": ("born", "now_xyxy"), "births_velocity": ("born", "velocity"),
                      "gap_from": ("refound", "before_xyxy"), "gap_to": ("refound", "now_xyxy"),
                      "gaps": ("refound", "frames"), "gap_ids": ("refound", "track_id")}


def update_column(update, old_name: str):
    """The column an earlier tracker called ``old_name``, from an update of that tracker
    or of today's."""
    if not hasattr(update, "born"):  # an earlier tracker's: flat names
        return getattr(update, old_name)
    record, column = TRACK_UPDATE_NAMES[old_name]
    return getattr(getattr(update, record), column)
