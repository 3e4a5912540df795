"""Sweep runner: train every combination of a grid, each in its own run folder, once.

A sweep is one or more config files (datasets) whose ``MODEL.NAME`` / ``MODEL.BACKBONE`` /
``MODEL.PRETRAINED`` may be lists (the reproduction study's ``*-auto.yaml``), times an optional list
of seeds. :func:`plan_sweep` expands it into :class:`PlannedRun` entries; :func:`run_sweep` trains
them one after another and keeps a small ledger per entry in ``SAVE_DIR/sweep/<key>.json``:

- ``finished``: skipped when the sweep is started again, as long as the entry's result settings
  (:func:`ssformer.config.fingerprint.result_settings`: every key but device, workers and
  folders) are the ones it finished with; an entry whose settings changed is a new entry,
  trained again in a new run folder (the earlier one is kept), and the sweep names the changed
  keys with their old and new values;
- ``running``: the sweep was stopped (killed, machine gone) during this entry; starting the sweep
  again resumes its newest run folder that has a ``last.pth`` (or starts it afresh when the run
  had not finished an epoch yet; the unfinished folder is left as it is);
- ``failed``: the error is recorded, the sweep goes on with the next entry and lists the failures
  at the end; starting the sweep again retries the entry in a new run folder.

With several seeds, each seed's runs live under ``SAVE_DIR/seed-<S>/`` so that the study's
``SAVE_DIR/<NAME>_<BACKBONE>_<DATASET>.pth`` files of different seeds never meet.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ssformer import run_files
from ssformer.config.fingerprint import describe_changes, result_settings
from ssformer.errors import ConfigError
from ssformer.io.atomic import write_text_atomic
from ssformer.registry import STUDY_SPLIT_RATIO

if TYPE_CHECKING:
    from ssformer.config import Config
    from ssformer.engine.train import RunResult

LEDGER_DIR = "sweep"


@dataclass(frozen=True)
class PlannedRun:
    """One entry of a sweep: a validated config and the key that names its ledger."""

    config: Config
    key: str

    @property
    def experiment_dir(self) -> Path:
        """``SAVE_DIR/<NAME>_<BACKBONE>_<DATASET>``, where the engine puts this entry's runs."""
        return self.config.experiment_dir

    @property
    def ledger_path(self) -> Path:
        return Path(self.config.save_dir) / LEDGER_DIR / f"{self.key}.json"


@dataclass
class SweepSummary:
    """What :func:`run_sweep` did, entry by entry."""

    finished: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    results: dict[str, Path] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def plan_sweep(
    config_files: Sequence[str | Path],
    overrides: Sequence[str] = (),
    seeds: Sequence[int] = (),
) -> list[PlannedRun]:
    """Expand config files x their model/backbone lists x ``seeds`` into planned runs.

    Raises :class:`ConfigError` when two entries would share a run folder (the same model,
    backbone and dataset twice), which would make "exactly once" ambiguous.
    """
    from ssformer.config import load_configs

    plan: list[PlannedRun] = []
    for config_file in config_files:
        for seed in seeds or (None,):
            extra = list(overrides)
            if seed is not None:
                base = load_configs(config_file, overrides)[0].save_dir
                extra += [f"SEED={seed}", f"SAVE_DIR={Path(base) / f'seed-{seed}'}"]
            for config in load_configs(config_file, extra):
                key = config.run_name if seed is None else f"{config.run_name}_seed-{seed}"
                plan.append(PlannedRun(config=config, key=key))
    seen: dict[Path, str] = {}
    for entry in plan:
        if entry.ledger_path in seen:
            raise ConfigError(
                f"the sweep lists {entry.key} twice ({seen[entry.ledger_path]} and "
                f"{entry.config.source}); each model/backbone/dataset/seed may appear once"
            )
        seen[entry.ledger_path] = str(entry.config.source)
    return plan


def read_ledger(path: Path) -> dict[str, Any]:
    """The ledger of one entry, or ``{}`` when it has none (or an unreadable one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_ledger(path: Path, data: dict[str, Any]) -> None:
    """Write a ledger atomically (a killed sweep never leaves half a file)."""
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


def _run_folders(experiment_dir: Path) -> set[str]:
    if not experiment_dir.is_dir():
        return set()
    return {p.name for p in experiment_dir.iterdir() if p.is_dir()}


def resumable_run(entry: PlannedRun, ledger: dict[str, Any]) -> Path | None:
    """The run folder an interrupted entry continues from: the newest folder created after the
    entry started (not one that was there before) that holds a ``last.pth``."""
    before = set(ledger.get("folders_before", []))
    runs = [run for run in run_files.resumable_runs(entry.experiment_dir) if run.name not in before]
    return runs[-1] if runs else None


def _recorded_settings(ledger: dict[str, Any]) -> dict[str, Any] | None:
    """The result settings an entry ran with: recorded in its ledger, or (a ledger written
    before they were recorded) read from its run folder's ``config.yaml``; None when neither."""
    if isinstance(ledger.get("settings"), dict):
        return ledger["settings"]
    run_dir = ledger.get("run_dir")
    if not run_dir or not run_files.is_run_folder(Path(run_dir)):
        return None
    from ssformer.config import load_config

    try:
        return result_settings(load_config(Path(run_dir) / run_files.CONFIG))
    except ConfigError:
        return None


@dataclass(frozen=True)
class EntryState:
    """What the sweep will do with one entry, and why.

    ``action`` is ``skip`` (finished with these settings), ``train`` (new, failed before, or
    changed since it finished or was interrupted), or ``resume`` (interrupted, same settings).
    """

    action: str
    status: str
    changes: tuple[str, ...] = ()
    resume: Path | None = None
    note: str = ""

    def describe(self, epochs_before: object = None) -> str:
        """One line for ``--dry-run`` and the sweep's log."""
        if self.action == "skip":
            return f"finished before ({epochs_before} ep), will be skipped{self.note}"
        if self.action == "resume":
            return f"interrupted, will resume {self.resume}"
        if self.changes:
            return (
                f"{self.status} with other settings ({'; '.join(self.changes)}): will be "
                "trained again as a new entry in a new run folder (the earlier one is kept)"
            )
        return {
            "failed": "failed before, will be retried",
            "running": "interrupted before its first epoch ended, will be trained afresh",
        }.get(self.status, "will be trained")


def entry_state(entry: PlannedRun, ledger: dict[str, Any] | None = None) -> EntryState:
    """Compare an entry's ledger and recorded settings with its config: what to do with it."""
    ledger = read_ledger(entry.ledger_path) if ledger is None else ledger
    status = str(ledger.get("status", "new"))
    if status not in ("finished", "running"):
        return EntryState("train", status)
    recorded = _recorded_settings(ledger)
    changes = (
        () if recorded is None else tuple(describe_changes(recorded, result_settings(entry.config)))
    )
    if changes:
        return EntryState("train", status, changes)
    if status == "finished":
        note = "" if recorded is not None else " (its settings were not recorded: not compared)"
        return EntryState("skip", status, note=note)
    resume = resumable_run(entry, ledger)
    return EntryState("train" if resume is None else "resume", status, resume=resume)


Trainer = Callable[..., "RunResult"]


def run_sweep(
    plan: Sequence[PlannedRun],
    *,
    trainer: Trainer | None = None,
    progress: bool | None = None,
    echo: TextIO | None = None,
) -> SweepSummary:
    """Train every planned entry that is not finished yet; never stop at a failed one."""
    if trainer is None:
        from ssformer.engine.train import run_training

        trainer = run_training

    def say(message: str) -> None:
        if echo is not None:
            print(message, file=echo, flush=True)

    summary = SweepSummary()
    for number, entry in enumerate(plan, start=1):
        label = f"[{number}/{len(plan)}] {entry.key}"
        ledger = read_ledger(entry.ledger_path)
        state = entry_state(entry, ledger)
        if state.action == "skip":
            say(f"{label}: finished before ({ledger.get('run_dir')}), skipped{state.note}")
            summary.skipped.append(entry.key)
            summary.results[entry.key] = Path(ledger.get("run_dir", ""))
            continue
        resume = state.resume
        if resume is None:
            if state.changes:
                say(f"{label}: {state.describe()}; before: {ledger.get('run_dir')}")
            ledger = {
                "status": "running",
                "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "folders_before": sorted(_run_folders(entry.experiment_dir)),
                "config": str(entry.config.source),
                "settings": result_settings(entry.config),
            }
            write_ledger(entry.ledger_path, ledger)
            say(f"{label}: training")
        else:
            say(f"{label}: resuming {resume}")
        try:
            result = trainer(entry.config, resume=resume, progress=progress, echo=echo)
        except KeyboardInterrupt:
            say(f"{label}: interrupted; run the sweep again to resume it")
            raise
        except Exception as error:  # a sweep records a failed run and goes on
            message = f"{type(error).__name__}: {error}"
            write_ledger(
                entry.ledger_path,
                {**ledger, "status": "failed", "error": message, "trace": traceback.format_exc()},
            )
            say(f"{label}: FAILED: {message}")
            summary.failed[entry.key] = message
            continue
        write_ledger(
            entry.ledger_path,
            {
                **ledger,
                "status": "finished",
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "run_dir": str(result.run_dir),
                "best_metric": result.best_metric,
                "best_metric_name": result.best_metric_name,
            },
        )
        summary.finished.append(entry.key)
        summary.results[entry.key] = Path(result.run_dir)
        say(f"{label}: finished in {result.run_dir}")
    return summary


def _train_images(config: Config) -> int | None:
    """How many training images the config's dataset has, where that can be counted cheaply."""
    from ssformer.data.layout import PROTOCOLS

    root = Path(config.dataset.root)
    for folder in PROTOCOLS[config.dataset.protocol].train_image_folders(root):
        if folder.is_dir():
            count = sum(1 for p in folder.iterdir() if p.is_file())
            if config.dataset.protocol != "split":
                count = round(count * (1 - config.dataset.val_fraction))
            return count
    return None


def _published_train_images(config: Config) -> int | None:
    """The training images the published data set gives when it is not here yet: the 80% train
    part of Kvasir-SEG's 1000 or CVC-ClinicDB's 612 frames (split-folders' 800 and 489), or
    PraNet's TrainDataset less the validation part; ``None`` for other data."""
    from ssformer.data.layout import CVC_CLINICDB, KVASIR_SEG, PRANET
    from ssformer.data.split import split_indices

    if config.dataset.protocol != "split":
        return round(PRANET.train_count * (1 - config.dataset.val_fraction))
    name = config.dataset.name.lower().replace("-", "")
    for layout in (KVASIR_SEG, CVC_CLINICDB):
        if name in layout.name.lower().replace("-", ""):
            return split_indices(layout.count, STUDY_SPLIT_RATIO)[0]
    return None


@dataclass
class CostEstimate:
    """A rough training cost of one entry, and what the entry still lacks to run."""

    step_seconds: float
    steps: int | None
    missing: list[str] = field(default_factory=list)
    how: str = ""
    assumed_images: int | None = None
    """Set when the data is not here: the published data set's training images, assumed."""

    @property
    def hours(self) -> float | None:
        return None if self.steps is None else self.step_seconds * self.steps / 3600


def missing_inputs(config: Config) -> list[str]:
    """What an entry needs and this machine lacks: the data folder, the backbone weights."""
    missing = []
    root = Path(config.dataset.root)
    if not root.is_dir():
        missing.append(f"data {root}")
    elif _train_images(config) is None:
        missing.append(f"training images under {root} (split it: `ssformer split {root}`)")
    if config.model.pretrained and not Path(config.model.pretrained).is_file():
        missing.append(f"weights {config.model.pretrained}")
    return missing


def _forward_flops(name: str, backbone: str, num_classes: int, size: int) -> int:
    """FLOPs of one forward pass of a model at ``size`` (counted on the meta device: no memory,
    no compute)."""
    import torch

    from ssformer.benchmark import count_flops
    from ssformer.models import build_model

    with torch.device("meta"):
        model = build_model(name, backbone, num_classes=num_classes)
    return count_flops(model, size)


def estimate_costs(plan: Sequence[PlannedRun], repeats: int = 3) -> dict[str, CostEstimate]:
    """Seconds per train step and the whole run's steps of every entry, in seconds on any
    machine: one reference step (SegFormer on MiT-B0, 128 px, batch 2) is timed on each entry's
    device and precision (the CPU when its CUDA device is not here), and every entry's step is
    that time scaled by its forward FLOPs (counted on the meta device) and its batch."""
    from ssformer import benchmark
    from ssformer.engine.execution import config_autocast_dtype, resolve_device
    from ssformer.errors import ConfigError
    from ssformer.models import build_model

    rates: dict[tuple[str, bool], float] = {}
    estimates: dict[str, CostEstimate] = {}
    for entry in plan:
        config = entry.config
        try:
            device, where = resolve_device(config.device), ""
        except ConfigError:  # e.g. DEVICE: cuda0 on a machine without a GPU
            device, where = resolve_device("cpu"), f" (DEVICE={config.device} absent: the CPU)"
        amp = config_autocast_dtype(config, device) is not None
        key = (str(device), amp)
        if key not in rates:
            reference = build_model("SegFormer", "MiT-B0", num_classes=2)
            timing = benchmark.measure(
                reference,
                mode="train",
                batch=2,
                size=128,
                device=device,
                amp=amp,
                warmup=1,
                repeats=repeats,
            ).timing
            rates[key] = timing.median / (2 * _forward_flops("SegFormer", "MiT-B0", 2, 128))
        flops = _forward_flops(
            config.model.name,
            config.model.backbone,
            int(config.model.num_classes or 1),
            max(config.train.image_size),
        )
        step = rates[key] * flops * config.train.batch_size
        images, assumed = _train_images(config), False
        if images is None:
            images, assumed = _published_train_images(config), True
        steps = (
            None if images is None else -(-images // config.train.batch_size) * config.train.epochs
        )
        how = f"{device}{where}, {'AMP' if amp else 'fp32'}: MiT-B0 step timed, scaled by FLOPs"
        estimates[entry.key] = CostEstimate(
            step, steps, missing_inputs(config), how, images if assumed else None
        )
    return estimates


def describe_plan(plan: Sequence[PlannedRun], estimates: dict[str, CostEstimate] | None) -> str:
    """A table of the planned entries, their state and (optionally) their estimated cost and
    what each still lacks."""
    rows = []
    total = 0.0
    for entry in plan:
        ledger = read_ledger(entry.ledger_path)
        state = entry_state(entry, ledger)
        status = "finished" if state.action == "skip" else state.action
        cost = ""
        if estimates is not None:
            estimate = estimates[entry.key]
            hours = estimate.hours
            if hours is None:
                cost = f"{estimate.step_seconds:.2f} s/step (training images not found)"
            else:
                total += hours if status != "finished" else 0.0
                cost = f"{estimate.step_seconds:.2f} s/step x {estimate.steps} = {hours:.2f} h"
                if estimate.assumed_images is not None:
                    cost += f" (data not here: {estimate.assumed_images} training images assumed)"
            if estimate.missing:
                cost += "; missing: " + ", ".join(estimate.missing)
        config = entry.config
        rows.append(
            f"{entry.key:<44} {status:<9} {config.train.epochs:>4} ep  "
            f"bs {config.train.batch_size:<3} {cost}"
        )
        done_epochs = (ledger.get("settings") or {}).get("TRAIN.EPOCHS", config.train.epochs)
        rows.append(f"    {state.describe(done_epochs)}")
    text = "\n".join(rows)
    if estimates is not None:
        hows = sorted({estimate.how for estimate in estimates.values()})
        text += (
            f"\nestimated time of what is left: {total:.2f} h (rough: {'; '.join(hows)}; "
            "data not here counted at the published data set's size)"
        )
    return text
