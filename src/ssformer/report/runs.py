"""Find run folders and read what training and evaluation wrote into them.

A run folder (written by ``ssformer train``; evaluated by ``ssformer val``) holds:

- ``config.yaml``: the merged config (``MODEL.NAME``, ``MODEL.BACKBONE``, ``DATASET.NAME``,
  ``DATASET.ROOT``, ``DATASET.PROTOCOL``, ``TRAIN.*``); it marks a folder as a run folder;
- ``metrics.jsonl``: one JSON object per epoch (``epoch``, ``lr``, ``train_loss``, ``val/...``);
- ``eval_*.json``: ``{"split", "dataset", "metrics": {...}, "per_image": [...]}``;
- ``best.pth``: the best checkpoint (only needed for the predictions grid).

Problems (a missing or corrupt file) are collected in :attr:`RunRecord.problems` so that the
report flags the run instead of crashing; :func:`find_run_dirs` raises when nothing is found.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssformer.errors import ConfigError
from ssformer.registry import STUDY_SPLIT_RATIO, STUDY_SPLIT_SEED
from ssformer.report.published_conventions import (
    canonical_dataset,
    canonical_protocol,
    canonical_test_set,
    head_of,
)
from ssformer.run_files import BEST, CONFIG, EVAL_GLOB, METRICS_JSONL

TIMESTAMP = re.compile(r"\d{8}-\d{6}(-\d+)?")


@dataclass
class EvalResult:
    """One evaluation file: a split of one dataset, its metrics and optional per-image scores."""

    path: Path
    split: str
    test_set: str
    metrics: dict[str, float]
    per_image: list[dict[str, Any]]
    msf: bool = False
    num_images: int | None = None
    recipe: str | None = None  # EVAL.RECIPE of the evaluation (None: written before recipes)


@dataclass
class RunRecord:
    """Everything the report needs from one run folder."""

    path: Path
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    model: str = "unknown"
    backbone: str = "unknown"
    dataset: str = "unknown"
    dataset_root: str | None = None
    protocol: str = "unknown"
    epochs: list[dict[str, Any]] = field(default_factory=list)
    evals: list[EvalResult] = field(default_factory=list)
    checkpoint: Path | None = None
    problems: list[str] = field(default_factory=list)
    verified_data: str | None = None  # the published data set its files were verified as
    data_note: str = ""  # why the data is (not) verified

    @property
    def head(self) -> str:
        """``PLD`` or ``SeD``."""
        return head_of(self.model)

    @property
    def is_synthetic(self) -> bool:
        """True for runs on generated data, which have no published counterpart."""
        return self.dataset == "synthetic" or self.verified_data == "synthetic"

    @property
    def data_is_verified(self) -> bool:
        """The run's data was verified to be the published data set its name says."""
        return self.verified_data is not None and self.verified_data == self.dataset

    def test_evals(self) -> list[EvalResult]:
        """Evaluations of the test split (one per test set)."""
        return [result for result in self.evals if result.split == "test"]


def find_run_dirs(paths: list[Path]) -> list[Path]:
    """Run folders among ``paths``: each path itself or the folders below it with a config.yaml."""
    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise ConfigError(f"{path} does not exist; give run folders or folders that hold them")
        if path.is_file():
            raise ConfigError(f"{path} is a file; give a run folder (the one with {CONFIG})")
        if (path / CONFIG).is_file():
            found.append(path)
            continue
        for root, dirs, files in os.walk(path):
            dirs.sort()
            if CONFIG in files:
                found.append(Path(root))
                dirs.clear()
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        listed = ", ".join(str(p) for p in paths)
        raise ConfigError(
            f"no run folders under {listed}: a run folder holds {CONFIG} and {METRICS_JSONL} "
            "(written by `ssformer train`)"
        )
    return unique


def _lookup(config: dict[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _read_config(run: RunRecord) -> None:
    import yaml

    path = run.path / CONFIG
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        run.problems.append(f"{CONFIG} unreadable ({type(error).__name__}): {error}")
        return
    if not isinstance(config, dict):
        run.problems.append(f"{CONFIG} is not a mapping of settings")
        return
    run.config = config
    for attr, key in (("model", "MODEL.NAME"), ("backbone", "MODEL.BACKBONE")):
        value = _lookup(config, key)
        if isinstance(value, str) and value:
            setattr(run, attr, value)
        else:
            run.problems.append(f"{CONFIG} has no {key}")
    run.dataset = canonical_dataset(_lookup(config, "DATASET.NAME"))
    root = _lookup(config, "DATASET.ROOT")
    run.dataset_root = str(root) if root else None
    if run.dataset == "unknown":
        run.problems.append(f"{CONFIG} has no DATASET.NAME")
    protocol = _lookup(config, "DATASET.PROTOCOL")
    run.protocol = canonical_protocol(protocol if isinstance(protocol, str) else None)
    run.verified_data, run.data_note = verify_run_data(run.dataset_root, protocol, run.dataset)


def verify_run_data(root: str | None, protocol: Any, dataset: str) -> tuple[str | None, str]:
    """``(verified_as, note)``: what the run's data folder is, from evidence on disk.

    ``split``: the identity ``ssformer split`` recorded in ``ROOT/split.json`` (file names and
    count, :mod:`ssformer.data.identity`); ``pranet``: the PraNet benchmark's published counts
    of TrainDataset and the five test sets. Missing evidence gives ``None`` (unverified).
    """
    if not root or not Path(root).is_dir():
        return None, f"DATASET.ROOT {root} is not here to check"
    if protocol == "pranet":
        from ssformer.data.layout import PRANET, verify_pranet
        from ssformer.errors import DataError

        try:
            verify_pranet(Path(root), PRANET.train_count, PRANET.test_counts)
        except DataError as error:
            return None, f"not the PraNet benchmark: {error}"
        return dataset, "the PraNet benchmark's published counts"
    manifest = Path(root) / "split.json"
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        recorded = None
    identity = recorded.get("identity") if isinstance(recorded, dict) else None
    if not isinstance(identity, dict):
        return (
            None,
            f"no data identity in {manifest}: run `ssformer split {root}` again (it adds one)",
        )
    verified = identity.get("verified_as")
    verified = verified if isinstance(verified, str) else None
    parameters = recorded.get("parameters") or {}
    published_split = (
        parameters.get("ratio") == list(STUDY_SPLIT_RATIO)
        and parameters.get("seed") == STUDY_SPLIT_SEED
    )
    if verified not in (None, "synthetic") and not published_split:
        return None, (
            f"split {parameters.get('ratio')} with seed {parameters.get('seed')}, not the "
            "published 80/10/10 with seed 1337"
        )
    return verified, str(identity.get("reason", ""))


def _finite_numbers(values: dict[str, Any]) -> dict[str, float]:
    numbers = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(float(value)):
            numbers[key] = float(value)
    return numbers


def _read_metrics(run: RunRecord) -> None:
    path = run.path / METRICS_JSONL
    if not path.is_file():
        run.problems.append(f"{METRICS_JSONL} is missing (no training log)")
        return
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        run.problems.append(f"{METRICS_JSONL} unreadable: {error}")
        return
    bad = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            bad.append(number)
            continue
        if not isinstance(record, dict) or "epoch" not in record:
            bad.append(number)
            continue
        run.epochs.append(record)
    if bad:
        shown = ", ".join(str(n) for n in bad[:5]) + (" ..." if len(bad) > 5 else "")
        run.problems.append(f"{METRICS_JSONL}: {len(bad)} corrupt line(s) skipped (line {shown})")
    if not run.epochs:
        run.problems.append(f"{METRICS_JSONL} holds no epoch records")


def _read_evals(run: RunRecord) -> None:
    for path in sorted(run.path.glob(EVAL_GLOB)):
        if path.stem.endswith("_subset"):  # `ssformer val --metrics`: not the full table
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            run.problems.append(f"{path.name} unreadable ({type(error).__name__}): {error}")
            continue
        metrics = data.get("metrics") if isinstance(data, dict) else None
        if not isinstance(metrics, dict):
            run.problems.append(f"{path.name} has no 'metrics' mapping")
            continue
        split = str(data.get("split") or path.stem.removeprefix("eval_").split("_")[0])
        test_set = canonical_test_set(data.get("dataset") or run.dataset, run.protocol)
        per_image = data.get("per_image")
        msf = data.get("msf")
        count = data.get("num_images")
        run.evals.append(
            EvalResult(
                path=path,
                split=split,
                test_set=test_set,
                metrics=_finite_numbers(metrics),
                per_image=[p for p in per_image if isinstance(p, dict)]
                if isinstance(per_image, list)
                else [],
                msf=bool(msf) if isinstance(msf, bool) else path.stem.endswith("_msf"),
                num_images=count if isinstance(count, int) else None,
                recipe=data.get("recipe") if isinstance(data.get("recipe"), str) else None,
            )
        )
    if not run.test_evals():
        run.problems.append("no test evaluation (eval_test*.json); run `ssformer val` on it")


def read_run(path: Path) -> RunRecord:
    """Read one run folder; never raises for broken files, records them in ``problems``."""
    # the engine's layout is SAVE_DIR/<NAME>_<BACKBONE>_<DATASET>/<timestamp>: name both parts
    name = f"{path.parent.name}/{path.name}" if TIMESTAMP.fullmatch(path.name) else path.name
    run = RunRecord(path=path, name=name)
    _read_config(run)
    _read_metrics(run)
    _read_evals(run)
    for name in (BEST,):  # last.pth is a training state, not model weights
        if (path / name).is_file():
            run.checkpoint = path / name
            break
    return run


def read_runs(paths: list[Path]) -> list[RunRecord]:
    """All run folders found under ``paths``, read, with names made unique."""
    runs = [read_run(path) for path in find_run_dirs(paths)]
    seen: dict[str, int] = {}
    for run in runs:
        count = seen.get(run.name, 0)
        seen[run.name] = count + 1
        if count:
            run.name = f"{run.name}-{count + 1}"
    return runs


def best_epoch(run: RunRecord, key: str) -> dict[str, Any] | None:
    """The epoch record with the highest ``key`` (e.g. ``val/mDice_2cls``), if any has it."""
    scored = [e for e in run.epochs if isinstance(e.get(key), int | float)]
    return max(scored, key=lambda e: float(e[key])) if scored else None
