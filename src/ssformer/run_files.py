"""The files of a run folder, named here only.

A training run (``SAVE_DIR/<NAME>_<BACKBONE>_<DATASET.NAME>/<timestamp>/``) writes them and
``val``, ``report``, ``compare``, ``sweep``, ``--resume`` and the notebook read them, all by the
names below:

- ``config.yaml``: the merged config (its presence makes a folder a run folder);
- ``train.log``: the log, one line per event;
- ``metrics.jsonl`` / ``metrics.csv``: one row per epoch;
- ``last.pth``: the resumable training state, written after every epoch;
- ``best.pth``: the best weights, in the model checkpoint format;
- ``eval_<split>[_<set>][_msf][_subset].json``: a scoring of the best weights
  (:func:`eval_file_name`); an export's scoring is prefixed ``<weights stem>_<runtime>_``.

Torch-free, so that the report and the sweep's planning read run folders without torch.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "BEST",
    "CONFIG",
    "EVAL_GLOB",
    "LAST",
    "METRICS_CSV",
    "METRICS_JSONL",
    "TEST_EVAL_GLOB",
    "TRAIN_LOG",
    "UNSTARTED",
    "eval_file_name",
    "is_run_folder",
    "resumable_runs",
]

CONFIG = "config.yaml"
TRAIN_LOG = "train.log"
METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
LAST = "last.pth"
BEST = "best.pth"

UNSTARTED = (CONFIG, TRAIN_LOG, METRICS_JSONL, METRICS_CSV)
"""What a run folder holds before its first epoch ends (a run stopped then is removed)."""

EVAL_GLOB = "eval_*.json"
TEST_EVAL_GLOB = "eval_test*.json"


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` is a run folder (it holds the merged ``config.yaml``)."""
    return (Path(path) / CONFIG).is_file()


def eval_file_name(split: str, set_name: str = "", suffix: str = "", prefix: str = "") -> str:
    """``<prefix>eval_<split>[_<set>]<suffix>.json``.

    ``set_name``: a PraNet test set (``Kvasir``, ...); ``""``, ``"test"`` or ``"val"`` for the
    split itself. ``suffix``: ``_msf`` and/or ``_subset``. ``prefix``: ``<stem>_<runtime>_`` for
    an export scored in a run folder.
    """
    set_part = "" if set_name in ("", "test", "val") else f"_{set_name}"
    return f"{prefix}eval_{split}{set_part}{suffix}.json"


def resumable_runs(parent: Path, levels: int = 1) -> list[Path]:
    """The run folders under ``parent`` that hold a ``last.pth``, oldest first (by the time
    their ``last.pth`` was written). ``levels``: 1 under an experiment folder
    (``SAVE_DIR/<NAME>_<BACKBONE>_<DATASET>``), 2 under a ``SAVE_DIR``."""
    pattern = "/".join(["*"] * levels + [LAST])
    states = [path for path in Path(parent).glob(pattern) if path.is_file()]
    return [path.parent for path in sorted(states, key=lambda path: path.stat().st_mtime)]
