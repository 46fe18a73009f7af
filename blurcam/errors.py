"""Error hierarchy. Library code raises these; only the CLI turns them into exit codes."""
from __future__ import annotations


class BlurcamError(Exception):
    """Base of every error blurcam reports to a user. ``exit_code`` is the CLI's status."""

    exit_code = 1


class UsageError(BlurcamError):
    """A bad option value or combination."""

    exit_code = 2


class SourceError(BlurcamError):
    """The input cannot be opened, is not media, or breaks while reading."""

    exit_code = 3


class UnsupportedMediaError(SourceError):
    """The input is media, but blurcam cannot decode its video."""

    exit_code = 4


class TruncatedInputError(SourceError):
    """The input ends early or is corrupt part-way through."""

    exit_code = 5


class SinkError(BlurcamError):
    """The output cannot be created or written."""

    exit_code = 6


class OutputExistsError(SinkError):
    """The output already exists and ``--overwrite`` was not given."""

    exit_code = 7


class SameFileError(SinkError):
    """The output (or the report) is the input itself, by any name: a symlink, another
    spelling of the path, or a hard link. Writing it would destroy the original."""

    exit_code = 11


class DiskFullError(SinkError):
    """The disk (or a size limit) filled up while writing the output."""

    exit_code = 8


class DetectorError(BlurcamError):
    """A detector failed to load or to run."""

    exit_code = 9


class ModelIntegrityError(DetectorError):
    """A model file is missing or its SHA-256 differs from the manifest."""

    exit_code = 10


# Folder runs and verification (exit codes 20-29).


class SomeFilesFailedError(BlurcamError):
    """A folder run finished, but at least one file could not be redacted."""

    exit_code = 20


class OutputCollisionError(UsageError):
    """Two inputs of a folder run would be written to the same output name."""

    exit_code = 21


class ResidualFacesError(BlurcamError):
    """``blurcam verify`` found facial detail in the output (or faces it could not check)."""

    exit_code = 22


class PairError(BlurcamError):
    """``blurcam verify``: the output is missing, or is not a redaction of the input."""

    exit_code = 23


class ManifestError(BlurcamError):
    """The folder's manifest cannot be read or was written by an unknown schema."""

    exit_code = 24


class ClusterError(BlurcamError):
    """Ray is not installed, or the cluster cannot be reached or lost the run."""

    exit_code = 25


# Not errors, but outcomes with their own exit status (the CLI's table in README.md):
EXIT_SALVAGED = 12  # --salvage wrote every frame that decoded, but some of the input was lost
