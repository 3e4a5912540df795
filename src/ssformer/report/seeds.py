"""Runs of one entry across seeds: mean, standard deviation, n and a bootstrap interval.

An *entry* is a model, backbone, data set, protocol, test set and evaluation recipe (with or
without MSF) trained with the same settings: runs whose ``config.yaml`` differ only in ``SEED``
(and in where and on what they ran: ``SAVE_DIR``, ``LOG_DIR``, ``DEVICE``, ``TRAIN.WORKERS``,
``EVAL.MODEL_PATH``, ``TEST``) are seeds of one entry; runs with other differences (a sweep's
variants) stay entries of their own. The report shows each entry's mean over its runs with the
sample standard deviation and n, and the 95 % percentile bootstrap interval over the test
images of that mean (:mod:`ssformer.report.statistics`).
"""

from __future__ import annotations

import copy
import json
import statistics as pystats
from dataclasses import dataclass, field
from typing import Any

from ssformer.errors import ConfigError
from ssformer.report.image_scores import align, image_data
from ssformer.report.runs import EvalResult, RunRecord
from ssformer.report.statistics import bootstrap_interval

__all__ = ["IGNORED_SETTINGS", "Entry", "group_entries", "settings_fingerprint"]

IGNORED_SETTINGS: tuple[str, ...] = (
    "SEED",
    "SAVE_DIR",
    "LOG_DIR",
    "DEVICE",
    "TEST",
    "TRAIN.WORKERS",
    "EVAL.MODEL_PATH",
)
"""Settings in which the seeds of one entry may differ."""


def settings_fingerprint(config: dict[str, Any]) -> str:
    """The run's settings without :data:`IGNORED_SETTINGS`, as canonical JSON."""
    settings = copy.deepcopy(config)
    for dotted in IGNORED_SETTINGS:
        *parents, last = dotted.split(".")
        node: Any = settings
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return json.dumps(settings, sort_keys=True, default=str)


@dataclass
class Entry:
    """The evaluations of one entry's runs on one test set (one per run)."""

    members: list[tuple[RunRecord, EvalResult]] = field(default_factory=list)

    @property
    def run(self) -> RunRecord:
        """The first run (its settings and labels stand for the entry's)."""
        return self.members[0][0]

    @property
    def result(self) -> EvalResult:
        return self.members[0][1]

    @property
    def name(self) -> str:
        """The runs' names, comma-separated."""
        return ", ".join(run.name for run, _ in self.members)

    @property
    def seeds(self) -> list[Any]:
        """Each run's ``SEED`` (``None`` where its config has none)."""
        return [run.config.get("SEED") for run, _ in self.members]

    def spread(self, key: str) -> tuple[float | None, float | None, int]:
        """``(mean, sd, n)`` of metric ``key`` over the runs that have it; ``sd`` is the
        sample standard deviation (``None`` for fewer than 2 runs)."""
        values = [result.metrics[key] for _, result in self.members if key in result.metrics]
        if not values:
            return None, None, 0
        sd = pystats.stdev(values) if len(values) > 1 else None
        return pystats.fmean(values), sd, len(values)

    def interval(self, key: str) -> tuple[float, float] | None:
        """95 % bootstrap interval over the shared test images of the mean over runs of
        ``key``; ``None`` when a run has no per-image data for it."""
        tables = [image_data(result.per_image, key) for _, result in self.members]
        if not all(tables):
            return None
        aligned = align(tables)
        if not aligned.names:
            return None
        try:
            return bootstrap_interval(aligned.arrays, key)
        except ConfigError:  # no resample gave a number: the cell shows no interval
            return None


def _entry_key(run: RunRecord, result: EvalResult) -> tuple[Any, ...]:
    return (
        run.protocol,
        run.dataset,
        run.verified_data,
        result.test_set,
        result.msf,
        result.recipe,
        result.path.name,  # one run's torch and export evaluations are not seeds
        run.model,
        run.backbone,
        settings_fingerprint(run.config),
    )


def group_entries(runs: list[RunRecord]) -> list[Entry]:
    """The test evaluations of ``runs`` grouped into entries, in the order first met."""
    entries: dict[tuple[Any, ...], Entry] = {}
    for run in runs:
        for result in run.test_evals():
            entries.setdefault(_entry_key(run, result), Entry()).members.append((run, result))
    return list(entries.values())
