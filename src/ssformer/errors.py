"""Exceptions that the CLI reports as one clear line instead of a traceback."""

from __future__ import annotations


class SSFormerError(Exception):
    """Base class: a problem the user can fix; the message says what and how."""


class CheckpointError(SSFormerError):
    """A file is not a usable checkpoint for the model at hand."""


class ConfigError(SSFormerError):
    """A configuration file or override is invalid."""


class DataError(SSFormerError):
    """A dataset is missing, incomplete or broken."""


class DownloadError(SSFormerError):
    """A download failed or produced a file that is not what was expected."""


class StorageError(SSFormerError):
    """A file could not be written (disk full, read-only folder, permissions)."""


class ExportError(SSFormerError):
    """An export failed (or failed its check against torch), or an exported model file, its
    sidecar or the runtime to run it is missing or unusable."""
